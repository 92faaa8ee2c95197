package adversarial_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5"
)

// pseudonymDB is the database of TestHashPseudonyms: customers and their
// orders keyed by integers (an integer primary key, a domain over
// integer, a bigint and a smallint copy) and uuids, and a text column
// holding an id's digits.
const pseudonymDB = "pseudo21"

const pseudonymSchema = `
CREATE DOMAIN public.customer_ref AS int CHECK (VALUE > 0);
CREATE TABLE public.customers(id int PRIMARY KEY, ref uuid, code text, name text);
INSERT INTO public.customers VALUES
 (1, '11111111-1111-1111-1111-111111111111', '1', 'Ann'),
 (2, '22222222-2222-2222-2222-222222222222', '2', 'Bob'),
 (42, '42424242-4242-4242-4242-424242424242', '42', 'Zed');
CREATE TABLE public.orders(id int PRIMARY KEY, customer_id public.customer_ref, customer_ref uuid, amount int);
INSERT INTO public.orders VALUES
 (1, 42, '42424242-4242-4242-4242-424242424242', 10),
 (2, 42, '42424242-4242-4242-4242-424242424242', 20),
 (3, 42, '42424242-4242-4242-4242-424242424242', 30),
 (4, 1, '11111111-1111-1111-1111-111111111111', 40),
 (5, 2, '22222222-2222-2222-2222-222222222222', 50),
 (6, 2, '22222222-2222-2222-2222-222222222222', 60);
CREATE TABLE public.events(customer_id bigint, small_id smallint);
INSERT INTO public.events VALUES (42, 42), (1, 1), (7, 7), (NULL, NULL);
GRANT SELECT ON ALL TABLES IN SCHEMA public TO pgveil_svc;
`

// pseudonymSecret is the one secret of every hash mask of pseudonymPolicy.
const pseudonymSecret = "pseudo21-secret"

// pseudonymPolicy hides every key of pseudonymDB behind a hash mask of
// one secret; analyst_al (password demo-analyst_al) reads every row.
const pseudonymPolicy = `
listen {
  address  = "127.0.0.1:6432"
  database = "pseudo21"
}
upstream {
  address  = env("PGVEIL_DEMO_UPSTREAM")
  database = "pseudo21"
  user     = "pgveil_svc"
  password = env("PGVEIL_DEMO_UPSTREAM_PASSWORD")
}
user "analyst_al" {
  password = "SCRAM-SHA-256$4096:fB7j1w+FU9bVCUdq1//EEA==$9ssjDFSNpy8w/q4LjDSRDTvTlsVF5uGn0kuy5O7pxmg=:N9ynHfovrd0g+mUbxcrH22omwJEsVpBypsGfndouDTU="
  roles    = ["analyst"]
}
role "analyst" { statements = ["select"] }
schema "public" { default = "deny" }
table "public.customers" {
  column "id" {
    class  = "key"
    mask   = "hash"
    secret = "` + pseudonymSecret + `"
  }
  column "ref" {
    class  = "key"
    mask   = "hash"
    secret = "` + pseudonymSecret + `"
  }
  column "code" {
    class  = "key"
    mask   = "hash"
    secret = "` + pseudonymSecret + `"
  }
}
table "public.orders" {
  column "customer_id" {
    class  = "key"
    mask   = "hash"
    secret = "` + pseudonymSecret + `"
  }
  column "customer_ref" {
    class  = "key"
    mask   = "hash"
    secret = "` + pseudonymSecret + `"
  }
}
table "public.events" {
  column "customer_id" {
    class  = "key"
    mask   = "hash"
    secret = "` + pseudonymSecret + `"
  }
  column "small_id" {
    class  = "key"
    mask   = "hash"
    secret = "` + pseudonymSecret + `"
  }
}
rule "all" {
  tables = ["public.*"]
  roles  = ["analyst"]
  scope  = "all"
}
`

// pseudonymData is the database and policy startPseudonyms serves.
var pseudonymData = &proxytest.PolicyDB{DB: pseudonymDB, What: "pseudonym", Schema: pseudonymSchema, Policy: pseudonymPolicy, MaskKeys: true}

// startPseudonyms loads pseudonymDB once and serves pseudonymPolicy in front of it.
func startPseudonyms(t *testing.T) *proxytest.Proxy {
	t.Helper()
	return pseudonymData.Start(t)
}

// intPseudonym is the documented pseudonym of an integer under
// pseudonymSecret: the first 64 bits of HMAC-SHA256(secret, decimal
// text), sign bit cleared.
func intPseudonym(v int64) int64 {
	mac := hmac.New(sha256.New, []byte(pseudonymSecret))
	mac.Write([]byte(strconv.FormatInt(v, 10)))
	return int64(binary.BigEndian.Uint64(mac.Sum(nil)[:8]) &^ (1 << 63))
}

// uuidPseudonym is the documented pseudonym of a uuid under
// pseudonymSecret: the first 128 bits of HMAC-SHA256(secret, the uuid's
// canonical text), as a uuid.
func uuidPseudonym(u string) string {
	mac := hmac.New(sha256.New, []byte(pseudonymSecret))
	mac.Write([]byte(u))
	h := hex.EncodeToString(mac.Sum(nil))
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// TestHashPseudonyms: a hash mask on an integer or uuid column serves a
// pseudonym of the same HMAC as a text column's digest, as a bigint or a
// uuid, that joins across tables and counts distinct values, on both
// protocols; predicates, casts, sorts and errors see the pseudonym only.
func TestHashPseudonyms(t *testing.T) {
	p := startPseudonyms(t)
	ctx := context.Background()
	c := p.Connect(t, "analyst_al")
	// answer runs sql on both protocols (the extended one with binary
	// results) and returns its rows, one line each, or ERROR <sqlstate>.
	answer := func(t *testing.T, sql string) string {
		t.Helper()
		var got [2]string
		for i, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeCacheDescribe} {
			rs, err := c.Query(ctx, sql, mode)
			var b strings.Builder
			if err == nil {
				for rs.Next() {
					v, _ := rs.Values()
					fmt.Fprintf(&b, "%v\n", v)
				}
				rs.Close()
				err = rs.Err()
			}
			if err != nil {
				b.Reset()
				fmt.Fprintf(&b, "ERROR %s", proxytest.SQLState(err))
			}
			got[i] = strings.TrimSpace(b.String())
		}
		if got[0] != got[1] {
			t.Fatalf("%s: the protocols differ:\nsimple:   %s\nextended: %s", sql, got[0], got[1])
		}
		return got[0]
	}
	p42, p1, p2 := intPseudonym(42), intPseudonym(1), intPseudonym(2)
	cases := []struct {
		name, sql, want string
	}{
		{"an integer key reads as its pseudonym", "SELECT id FROM customers ORDER BY name", fmt.Sprintf("[%d]\n[%d]\n[%d]", p1, p2, p42)},
		{"a key over a domain reads as the same pseudonym", "SELECT DISTINCT customer_id FROM orders WHERE amount = 10", fmt.Sprintf("[%d]", p42)},
		{"a bigint and a smallint key read as the same pseudonym", "SELECT customer_id, small_id FROM events WHERE customer_id = " + strconv.FormatInt(p42, 10),
			fmt.Sprintf("[%d %d]", p42, p42)},
		{"a uuid key reads as its uuid pseudonym", "SELECT ref::text FROM customers WHERE name = 'Zed'", "[" + uuidPseudonym("42424242-4242-4242-4242-424242424242") + "]"},
		{"pseudonyms join across tables under one secret", "SELECT count(*) FROM orders o JOIN customers c ON c.id = o.customer_id", "[6]"},
		{"uuid pseudonyms join across tables under one secret", "SELECT count(*) FROM orders o JOIN customers c ON c.ref = o.customer_ref", "[6]"},
		{"integer types join each other's pseudonyms", "SELECT count(*) FROM events e JOIN customers c ON c.id = e.customer_id AND c.id = e.small_id", "[2]"},
		{"a NULL key stays NULL", "SELECT count(*) FROM events WHERE customer_id IS NULL AND small_id IS NULL", "[1]"},
		{"pg_typeof says bigint and uuid", "SELECT DISTINCT pg_typeof(customer_id)::text, pg_typeof(customer_ref)::text FROM orders", "[bigint uuid]"},
		{"COUNT(DISTINCT) counts the values", "SELECT count(DISTINCT customer_id), count(DISTINCT customer_ref) FROM orders", "[3 3]"},
		{"GROUP BY groups by the value", "SELECT count(*) FROM orders GROUP BY customer_id ORDER BY 1", "[1]\n[2]\n[3]"},
		{"a predicate on the real value finds nothing", "SELECT count(*) FROM orders WHERE customer_id = 42", "[0]"},
		{"a predicate on the value's text finds nothing", "SELECT count(*) FROM orders WHERE customer_id::text = '42'", "[0]"},
		{"arithmetic sees the pseudonym", "SELECT count(*) FROM orders WHERE customer_id + 0 = 42 OR customer_id - 42 = 0", "[0]"},
		{"a range on the real value finds nothing", "SELECT count(*) FROM customers WHERE id BETWEEN 1 AND 100", "[0]"},
		{"the pseudonym is never negative", "SELECT count(*) FROM customers WHERE id < 0", "[0]"},
		{"a predicate on the pseudonym finds the rows", "SELECT amount FROM orders WHERE customer_id = " + strconv.FormatInt(p42, 10) + " ORDER BY amount", "[10]\n[20]\n[30]"},
		{"the integer pseudonym is not the text column's digest of the same digits", "SELECT count(*) FROM customers WHERE code = id::text", "[0]"},
		{"a uuid predicate on the real value finds nothing", "SELECT count(*) FROM orders WHERE customer_ref = '42424242-4242-4242-4242-424242424242'", "[0]"},
		{"ORDER BY sorts by the pseudonym", "SELECT amount FROM orders ORDER BY customer_id, amount", sortedByPseudonym()},
		{"a division by zero fails on the pseudonym as on any value", "SELECT customer_id / 0 FROM orders", "ERROR 22012"},
		{"a cast to a narrower type fails on the pseudonym, not the value", "SELECT customer_id::int4 FROM orders", "ERROR 22003"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := answer(t, tc.sql); got != tc.want {
				t.Errorf("%s:\n got: %s\nwant: %s", tc.sql, got, tc.want)
			}
		})
	}
	t.Run("a binary-format client reads an int8 for an integer column, and a uuid for a uuid column", func(t *testing.T) {
		res := c.PgConn().ExecParams(ctx, "SELECT customer_id, customer_ref FROM orders WHERE amount = 10", nil, nil, nil, []int16{1}).Read()
		if res.Err != nil {
			t.Fatal(res.Err)
		}
		if len(res.FieldDescriptions) != 2 || res.FieldDescriptions[0].DataTypeOID != 20 || res.FieldDescriptions[1].DataTypeOID != 2950 {
			t.Fatalf("fields %+v, want int8 (20) and uuid (2950)", res.FieldDescriptions)
		}
		if len(res.Rows) != 1 || len(res.Rows[0][0]) != 8 || len(res.Rows[0][1]) != 16 {
			t.Fatalf("rows %v, want one row of 8 and 16 bytes", res.Rows)
		}
		if got := int64(binary.BigEndian.Uint64(res.Rows[0][0])); got != p42 {
			t.Errorf("pseudonym %d, want %d", got, p42)
		}
		if got, want := hex.EncodeToString(res.Rows[0][1]), strings.ReplaceAll(uuidPseudonym("42424242-4242-4242-4242-424242424242"), "-", ""); got != want {
			t.Errorf("uuid pseudonym %s, want %s", got, want)
		}
		var v int64
		if err := c.QueryRow(ctx, "SELECT customer_id FROM orders WHERE amount = 40").Scan(&v); err != nil || v != p1 {
			t.Errorf("scanned %d (%v), want %d", v, err, p1)
		}
	})
	t.Run("a pseudonym is neither the value nor the same for different values", func(t *testing.T) {
		seen := map[int64]bool{}
		for _, v := range []int64{1, 2, 42} {
			pv := intPseudonym(v)
			if pv == v || pv < 0 || seen[pv] {
				t.Errorf("pseudonym of %d is %d", v, pv)
			}
			seen[pv] = true
		}
	})
}

// sortedByPseudonym is the answer of SELECT amount FROM orders ORDER BY
// customer_id, amount: the orders grouped by their customer's pseudonym's
// order, which is not the ids' order.
func sortedByPseudonym() string {
	groups := map[int64][]int{42: {10, 20, 30}, 1: {40}, 2: {50, 60}}
	ids := []int64{1, 2, 42}
	for i := range ids {
		for j := i + 1; j < len(ids); j++ {
			if intPseudonym(ids[j]) < intPseudonym(ids[i]) {
				ids[i], ids[j] = ids[j], ids[i]
			}
		}
	}
	var lines []string
	for _, id := range ids {
		for _, a := range groups[id] {
			lines = append(lines, fmt.Sprintf("[%d]", a))
		}
	}
	return strings.Join(lines, "\n")
}
