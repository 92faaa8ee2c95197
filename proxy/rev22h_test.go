package proxy_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgveil/pgveil/proxy"
)

// TestRev22hPooledSwitch holds a pool of one backend shared by a BI
// service's sessions to the viewer each acts for, in the shapes a switch
// follows the session in and around them: another session takes the
// backend between every step, so each step of the first runs after a
// RESET ALL and its replay.
func TestRev22hPooledSwitch(t *testing.T) {
	proxytest.OnEveryRelay(t, rev22hPooledSwitch)
}

func rev22hPooledSwitch(t *testing.T, relay string) {
	ctx := context.Background()
	proxytest.SetupDemo(t)
	want := map[string]string{"marie": proxytest.Direct(t, "SELECT count(*) FROM responses WHERE "+proxytest.Scopes["marie"])[0][0]}

	// check holds c to acting for viewer ("" for the service) in its
	// rows and upstream, after other took the backend and saw none of it.
	check := func(t *testing.T, c, other *pgx.Conn, viewer string) {
		t.Helper()
		if act, err := actShow(ctx, other); err != nil || act != "" {
			t.Fatalf("another session reads pgveil.act_for %q (%v) on the shared backend", act, err)
		}
		if got := fmt.Sprint(proxytest.Count(t, c, "SELECT count(*) FROM responses")); got != want[viewer] {
			t.Fatalf("the session read %s responses, want %s (acting for %q)", got, want[viewer], viewer)
		}
		if act, err := actShow(ctx, c); err != nil || act != viewer {
			t.Fatalf("pgveil.act_for upstream is %q (%v), want %q", act, err, viewer)
		}
	}
	start := func(t *testing.T, size int) (*proxytest.Proxy, *pgx.Conn, *pgx.Conn) {
		p := startPooled(t, relay, size, 5*time.Second)
		a, b := p.Connect(t, "metabase"), p.Connect(t, "metabase")
		want[""] = fmt.Sprint(proxytest.Count(t, b, "SELECT count(*) FROM responses"))
		return p, a, b
	}
	noneKept := func(t *testing.T, p *proxytest.Proxy) {
		t.Helper()
		if n, why := proxy.KeptBackends(p.Server); n != 0 {
			t.Errorf("%d sessions keep their backend: %q", n, why)
		}
	}

	t.Run("a switch with statements pipelined after it in later batches follows the session", func(t *testing.T) {
		p, a, b := start(t, 1)
		rows, err := proxytest.RoundTrip(t, a, &pgproto3.Query{String: "SET ROLE marie"},
			&pgproto3.Query{String: "SELECT count(*) FROM responses"}, &pgproto3.Query{String: "SHOW pgveil.act_for"})
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(rows) != fmt.Sprint([]string{want["marie"], "marie"}) {
			t.Fatalf("pipelined after the switch: %v, want [%s marie]", rows, want["marie"])
		}
		check(t, a, b, "marie")
		check(t, a, b, "marie")
		// As PgJDBC pipelines: the switch's batch, then a query's.
		rows, err = proxytest.RoundTrip(t, a, &pgproto3.Parse{Query: "SET ROLE NONE"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{},
			&pgproto3.Parse{Query: "SELECT count(*) FROM responses"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{},
			&pgproto3.Parse{Query: "SELECT coalesce(current_setting('pgveil.act_for', true), '')"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(rows) != fmt.Sprint([]string{want[""], ""}) {
			t.Fatalf("pipelined after the extended switch: %v, want [%s ]", rows, want[""])
		}
		check(t, a, b, "")
		noneKept(t, p)
	})

	t.Run("a PgJDBC session whose statement is refused after a switch keeps no backend", func(t *testing.T) {
		p, a, b := start(t, 1)
		if err := actExec(ctx, a, "SET ROLE marie", true); err != nil {
			t.Fatal(err)
		}
		// Refused at its Parse: pgveil sends a marker Parse in its
		// place, which drops the unnamed statement upstream.
		for _, q := range []string{"SELECT set_config('pgveil.act_for', 'hq', false)", "SET ROLE nobody_at_all"} {
			if err := actExec(ctx, a, q, true); err == nil {
				t.Fatalf("%s passed", q)
			}
			noneKept(t, p)
			check(t, a, b, "marie")
		}
	})

	t.Run("a switch refused after one made leaves the session with the viewer it had, on every backend", func(t *testing.T) {
		p, a, b := start(t, 1)
		if err := actExec(ctx, a, "SET ROLE marie", true); err != nil {
			t.Fatal(err)
		}
		for _, extended := range []bool{false, true} {
			if err := actExec(ctx, a, "SET ROLE nobody_at_all", extended); err == nil {
				t.Fatal("a switch to a user the service may not act for passed")
			}
			check(t, a, b, "marie")
		}
		noneKept(t, p)
	})

	t.Run("a switch refused at its Execute, after another statement of its batch, changes nothing", func(t *testing.T) {
		// NOTE: its Parse, after another of its batch, keeps the backend
		// (notePoolState): no other session shares it.
		_, a, b := start(t, 2)
		_, err := proxytest.RoundTrip(t, a, &pgproto3.Parse{Query: "SELECT 1"}, &pgproto3.Bind{}, &pgproto3.Execute{},
			&pgproto3.Parse{Query: "SET ROLE marie"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
		if err == nil {
			t.Fatal("a switch pipelined after another statement passed")
		}
		check(t, a, b, "")
	})

	t.Run("the unnamed switch bound again in a later batch keeps the viewer it names", func(t *testing.T) {
		p, a, b := start(t, 2)
		if _, err := proxytest.RoundTrip(t, a, &pgproto3.Parse{Query: "SET ROLE marie"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}); err != nil {
			t.Fatal(err)
		}
		check(t, a, b, "marie")
		if _, err := proxytest.RoundTrip(t, a, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}); err != nil {
			t.Fatal(err)
		}
		check(t, a, b, "marie")
		_ = p
	})

	t.Run("RESET ALL while acting drops the viewer and the other settings on the next backend", func(t *testing.T) {
		p, a, b := start(t, 1)
		for _, q := range []string{"SET TimeZone = 'Asia/Tokyo'", "SET ROLE marie", "RESET ALL"} {
			if err := actExec(ctx, a, q, false); err != nil {
				t.Fatal(err)
			}
		}
		check(t, a, b, "")
		var tz string
		if err := a.QueryRow(ctx, "SHOW TimeZone").Scan(&tz); err != nil || tz == "Asia/Tokyo" {
			t.Fatalf("TimeZone %q (%v) after RESET ALL", tz, err)
		}
		noneKept(t, p)
	})
}
