package adversarial_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"
)

// TestRev20fDomainChecksWhereNoCastShows: PostgreSQL converts a value
// the user writes to a type the statement names outside any ::, an
// XMLTABLE column, a column definition list, XMLSERIALIZE's type, a
// PREPARE's parameters, or a parameter type a Parse message declares by
// OID; the conversion runs the domain's CHECK, and the function it calls
// as the service account. Through pgveil each is refused as x::d is.
func TestRev20fDomainChecksWhereNoCastShows(t *testing.T) {
	ctx := context.Background()
	proxytest.SetupDemo(t)
	drop := `DROP DOMAIN IF EXISTS public.rev20f_inner; DROP FUNCTION IF EXISTS public.rev20f_known(text)`
	for _, sql := range []string{drop,
		`CREATE FUNCTION public.rev20f_known(x text) RETURNS boolean LANGUAGE plpgsql STABLE AS
		  $$BEGIN RAISE EXCEPTION 'MARKER %', (SELECT string_agg(email, ',') FROM public.responses); END$$`,
		`CREATE DOMAIN public.rev20f_inner AS text CHECK (public.rev20f_known(VALUE))`,
	} {
		if err := proxytest.Cluster.Exec(ctx, proxytest.DemoDB, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	t.Cleanup(func() { _ = proxytest.Cluster.Exec(context.Background(), proxytest.DemoDB, drop) })
	oid, err := strconv.ParseUint(proxytest.Direct(t, "SELECT 'public.rev20f_inner'::regtype::oid")[0][0], 10, 32)
	if err != nil {
		t.Fatal(err)
	}
	conn := proxytest.StartDemo(t).Connect(t, "marie").PgConn()
	for _, c := range []struct{ name, sql string }{
		{"an XMLTABLE column of the domain is refused", "SELECT * FROM xmltable('/a' PASSING '<a>x</a>' COLUMNS e rev20f_inner PATH '.')"},
		{"a column definition list naming the domain is refused", `SELECT * FROM json_to_record('{"e":"x"}') AS x(e rev20f_inner)`},
		{"XMLSERIALIZE to the domain is refused", "SELECT XMLSERIALIZE(CONTENT '<a/>'::xml AS rev20f_inner)"},
		{"PREPARE with a parameter of the domain is refused", "PREPARE rev20f_p(rev20f_inner) AS SELECT $1; EXECUTE rev20f_p('x')"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := proxytest.Answer(ctx, conn, c.sql)
			if strings.Contains(got, "MARKER") || !strings.HasPrefix(got, "error 42501") {
				t.Fatalf("%s\n  => %s\nwant a refusal (42501): the CHECK reads every row as the service account", c.sql, got)
			}
		})
	}
	t.Run("a Parse declaring a parameter of the domain is refused", func(t *testing.T) {
		_, err := conn.Prepare(ctx, "rev20f_parse", "SELECT $1", []uint32{uint32(oid)})
		if err == nil {
			res := conn.ExecPrepared(ctx, "rev20f_parse", [][]byte{[]byte("x")}, nil, nil).Read()
			err = res.Err
		}
		if err == nil || strings.Contains(err.Error(), "MARKER") || !strings.Contains(err.Error(), "42501") {
			if len(err.Error()) > 300 {
				err = errors.New(err.Error()[:300])
			}
			t.Fatalf("got %v, want a refusal (42501): Bind runs the CHECK as the service account", err)
		}
	})
}
