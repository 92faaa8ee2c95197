package proxy_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/rewrite"
)

// TestTransactionPoolCopyDoubtAlreadyAnswered: a Sync sent within a COPY
// that fails before the server reads it is answered, and the client sees
// that answer; Syncs it sends afterwards are surely answered, and it must
// get every one of them.
func TestTransactionPoolCopyDoubtAlreadyAnswered(t *testing.T) {
	onEveryRelay(t, testTransactionPoolCopyDoubtAlreadyAnswered)
}

func testTransactionPoolCopyDoubtAlreadyAnswered(t *testing.T, relay string) {
	setupDemo(t)
	direct(t, "CREATE SCHEMA IF NOT EXISTS pool_scratch")
	direct(t, "CREATE TABLE IF NOT EXISTS pool_scratch.sink (note text)")
	direct(t, "GRANT USAGE ON SCHEMA pool_scratch TO pgveil_svc")
	direct(t, "GRANT SELECT, INSERT ON pool_scratch.sink TO pgveil_svc")
	// refuses fails every COPY before it reads any data.
	direct(t, "CREATE TABLE IF NOT EXISTS pool_scratch.refuses (note text)")
	direct(t, "CREATE OR REPLACE FUNCTION pool_scratch.refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'no rows here'; END $$")
	direct(t, "CREATE OR REPLACE TRIGGER refuse BEFORE INSERT ON pool_scratch.refuses FOR EACH STATEMENT EXECUTE FUNCTION pool_scratch.refuse()")
	direct(t, "GRANT SELECT, INSERT ON pool_scratch.refuses TO pgveil_svc")
	p, _ := startDemoWith(t, "../configs/demo.hcl", func(c *policy.Config) {
		c.Upstream.Pool = policy.Pool{Mode: policy.PoolTransaction, Size: 1, WaitTimeout: time.Second, IdleTimeout: time.Minute}
		c.Listen.Relay = relay
		c.Schemas["pool_scratch"] = &policy.Schema{Name: "pool_scratch", Allow: true}
		c.Roles["central_analyst"].Statements = append(c.Roles["central_analyst"].Statements, rewrite.KindInsert)
	})
	isG := func(m pgproto3.BackendMessage) bool { _, ok := m.(*pgproto3.CopyInResponse); return ok }
	isZ := func(m pgproto3.BackendMessage) bool { _, ok := m.(*pgproto3.ReadyForQuery); return ok }
	exec := func(sql string) []pgproto3.FrontendMessage {
		return []pgproto3.FrontendMessage{&pgproto3.Parse{Query: sql}, &pgproto3.Bind{}, &pgproto3.Execute{}}
	}
	type step struct {
		send  []pgproto3.FrontendMessage
		until func(pgproto3.BackendMessage) bool
	}
	// After the COPY failed and the client saw its Sync answered: a Sync,
	// a late CopyDone, a Sync: both Syncs are answered.
	after := step{[]pgproto3.FrontendMessage{&pgproto3.Sync{}, &pgproto3.CopyDone{}, &pgproto3.Sync{}}, isZ}
	for _, c := range []struct {
		name  string
		steps []step
	}{
		{"bad data and a Sync, answered, then Sync, CopyDone, Sync", []step{
			{exec("COPY pool_scratch.sink FROM STDIN"), isG},
			{[]pgproto3.FrontendMessage{&pgproto3.CopyData{Data: []byte("a\tb\tc\n")}, &pgproto3.Sync{}}, isZ},
			after, {nil, isZ},
		}},
		{"libpq's Sync answered after a statement trigger failed the COPY, then Sync, CopyDone, Sync", []step{
			{append(exec("COPY pool_scratch.refuses FROM STDIN"), &pgproto3.Sync{}), isZ},
			after, {nil, isZ},
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			for i := range 10 {
				loader := p.simpleConn(t, "hq")
				_ = loader.PgConn().Conn().SetDeadline(time.Now().Add(5 * time.Second))
				fe := loader.PgConn().Frontend()
				for j, s := range c.steps {
					for _, m := range s.send {
						fe.Send(m)
					}
					if err := fe.Flush(); err != nil {
						t.Fatal(err)
					}
					for {
						m, err := fe.Receive()
						if err != nil {
							t.Fatalf("round %d, step %d: %v", i, j, err)
						}
						if s.until(m) {
							break
						}
					}
				}
				want := fmt.Sprintf("loader %d", i)
				if got, err := one(t.Context(), loader, "SELECT '"+want+"'"); err != nil || got != want {
					t.Fatalf("round %d: the loader's next statement: %q, %v", i, got, err)
				}
				loader.Close(t.Context())
			}
		})
	}
}
