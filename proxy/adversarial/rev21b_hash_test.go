package adversarial_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5"
)

// rev21bDB is the database of TestHashPseudonymsReview: a hash-masked
// integer key beside a hashed text column of its digits, a partitioned
// table and a view with hash-masked keys, and an unmasked table holding
// the real keys.
const rev21bDB = "rev21b"

const rev21bSchema = `
CREATE TABLE public.accounts(id int PRIMARY KEY, ids int[], code text, note text);
INSERT INTO public.accounts VALUES (1, '{1,2}', '1', 'a'), (2, '{3}', '2', 'b'), (42, NULL, '42', 'c');
CREATE TABLE public.parts(id int, region text) PARTITION BY LIST (region);
CREATE TABLE public.parts_eu PARTITION OF public.parts FOR VALUES IN ('eu');
INSERT INTO public.parts VALUES (42, 'eu'), (1, 'eu');
CREATE VIEW public.accounts_v AS SELECT id, note FROM public.accounts;
CREATE TABLE public.refs(account_id int, n int);
INSERT INTO public.refs VALUES (42, 1), (1, 2);
GRANT SELECT, UPDATE, INSERT ON ALL TABLES IN SCHEMA public TO pgveil_svc;
`

// rev21bSecret is the one secret of rev21bPolicy's hash masks.
const rev21bSecret = "rev21b-secret"

// rev21bPolicy hashes every key of rev21bDB but refs'; analyst_al reads
// every row, and may update and copy out.
const rev21bPolicy = `
listen {
  address  = "127.0.0.1:6432"
  database = "rev21b"
}
upstream {
  address  = env("PGVEIL_DEMO_UPSTREAM")
  database = "rev21b"
  user     = "pgveil_svc"
  password = env("PGVEIL_DEMO_UPSTREAM_PASSWORD")
}
user "analyst_al" {
  password = "SCRAM-SHA-256$4096:fB7j1w+FU9bVCUdq1//EEA==$9ssjDFSNpy8w/q4LjDSRDTvTlsVF5uGn0kuy5O7pxmg=:N9ynHfovrd0g+mUbxcrH22omwJEsVpBypsGfndouDTU="
  roles    = ["analyst"]
}
role "analyst" { statements = ["select", "update", "insert", "copy_out"] }
schema "public" { default = "deny" }
table "public.accounts" {
  column "id" {
    class  = "key"
    mask   = "hash"
    secret = "` + rev21bSecret + `"
  }
  column "code" {
    class  = "key"
    mask   = "hash"
    secret = "` + rev21bSecret + `"
  }
}
table "public.accounts_v" {
  column "id" {
    class  = "key"
    mask   = "hash"
    secret = "` + rev21bSecret + `"
  }
}
table "public.parts" {
  column "id" {
    class  = "key"
    mask   = "hash"
    secret = "` + rev21bSecret + `"
  }
}
table "public.refs" {}
rule "all" {
  tables = ["public.*"]
  roles  = ["analyst"]
  scope  = "all"
}
`

// rev21bData is the database and policy startRev21b serves.
var rev21bData = &proxytest.PolicyDB{DB: rev21bDB, What: "rev21b", Schema: rev21bSchema, Policy: rev21bPolicy, MaskKeys: true}

// startRev21b loads rev21bDB once and serves rev21bPolicy in front of it.
func startRev21b(t *testing.T) *proxytest.Proxy {
	t.Helper()
	return rev21bData.Start(t)
}

// rev21bPseudonym is the documented pseudonym of an integer under
// rev21bSecret.
func rev21bPseudonym(v int64) int64 {
	mac := hmac.New(sha256.New, []byte(rev21bSecret))
	mac.Write([]byte(strconv.FormatInt(v, 10)))
	return int64(binary.BigEndian.Uint64(mac.Sum(nil)[:8]) &^ (1 << 63))
}

// TestHashPseudonymsReview: through pgveil, a hash-masked integer key
// reads as its pseudonym in partitions, views, joins with an unmasked
// copy of the keys, window functions, cursors, COPY and governed writes;
// and a hashed text column of the same digits derives it, as
// configs/README.md says.
func TestHashPseudonymsReview(t *testing.T) {
	p := startRev21b(t)
	ctx := context.Background()
	c := p.Connect(t, "analyst_al")
	p1, p2, p42 := rev21bPseudonym(1), rev21bPseudonym(2), rev21bPseudonym(42)
	lo := min(p1, p2, p42)
	cases := []struct{ name, sql, want string }{
		{"a hashed text of an integer's digits derives the integer's pseudonym", "SELECT count(*) FROM accounts WHERE ('x' || left(code, 16))::bit(64)::int8 & 9223372036854775807 = id", "[3]"},
		{"a partitioned table's key reads as its pseudonym", "SELECT id, pg_typeof(id)::text FROM parts WHERE region = 'eu' ORDER BY id",
			fmt.Sprintf("[%d bigint]\n[%d bigint]", min(p1, p42), max(p1, p42))},
		{"a view's key reads as its pseudonym", "SELECT count(*) FROM accounts_v WHERE id IN (" + fmt.Sprint(p1, ",", p2, ",", p42) + ")", "[3]"},
		{"a generate_series join meets no real key", "SELECT count(*) FROM accounts a JOIN generate_series(1, 100) g ON g = a.id", "[0]"},
		{"a join to an unmasked copy of the keys meets none", "SELECT count(*) FROM accounts a JOIN refs r ON r.account_id = a.id", "[0]"},
		{"to_hex shows the pseudonym", "SELECT to_hex(id) FROM accounts WHERE note = 'c'", "[" + strconv.FormatInt(p42, 16) + "]"},
		{"window functions and DISTINCT ON see pseudonyms", "SELECT DISTINCT ON (id) min(id) OVER () FROM accounts ORDER BY id LIMIT 1", fmt.Sprintf("[%d]", lo)},
		{"a governed write's WHERE compares pseudonyms", "UPDATE accounts SET note = note WHERE id IN (SELECT account_id FROM refs)", ""},
		{"an unmasked table's write compares real keys with pseudonyms", "UPDATE refs SET n = n WHERE account_id IN (SELECT id FROM accounts) RETURNING n", ""},
		{"a pseudonym written to an integer column fails on the pseudonym", "INSERT INTO refs SELECT id, 0 FROM accounts", "ERROR 22003"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeCacheDescribe} {
				rs, err := c.Query(ctx, tc.sql, mode)
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
				if got := strings.TrimSpace(b.String()); got != tc.want {
					t.Errorf("%s (mode %v):\n got: %s\nwant: %s", tc.sql, mode, got, tc.want)
				}
			}
		})
	}
	t.Run("a cursor fetches pseudonyms in their order", func(t *testing.T) {
		res, err := c.PgConn().Exec(ctx, "BEGIN; DECLARE cur CURSOR FOR SELECT id FROM accounts ORDER BY id; FETCH 1 FROM cur; COMMIT").ReadAll()
		if err != nil || len(res) != 4 || len(res[2].Rows) != 1 {
			t.Fatalf("%v %v", res, err)
		}
		if got := string(res[2].Rows[0][0]); got != strconv.FormatInt(lo, 10) {
			t.Errorf("fetched %s, want %d", got, lo)
		}
	})
	t.Run("COPY TO writes pseudonyms", func(t *testing.T) {
		var buf strings.Builder
		if _, err := c.PgConn().CopyTo(ctx, &buf, "COPY accounts (id) TO STDOUT"); err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("%d\n%d\n%d\n", p1, p2, p42); buf.String() != want {
			t.Errorf("COPY wrote %q, want %q", buf.String(), want)
		}
	})
}
