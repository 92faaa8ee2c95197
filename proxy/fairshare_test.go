package proxy_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestParseSlotsFairShare: one login floods the rewriter from a dozen
// sessions with statements it must parse each time (too long for its
// cache) and with a red team's 1.8 MB statement; another login's new
// statements are still served. The flood is held to its login's share of
// the parse slots and queues behind its own statements, and the 1.8 MB
// statement is refused by the complexity rule before any parse.
func TestParseSlotsFairShare(t *testing.T) {
	p, pols := proxytest.StartDemoFrom(t, "../configs/demo.hcl")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	analyst := p.Connect(t, "hq")
	var b strings.Builder
	b.WriteString("SELECT 1 FROM ")
	for i := range 100000 {
		fmt.Fprintf(&b, "responses r%d, ", i)
	}
	b.WriteString("employees")
	huge := b.String()
	// Over 64 KiB, within the guard's limits: parsed and rewritten each
	// time it is sent.
	heavy := "SELECT count(*) FROM responses WHERE id IN (" + strings.Repeat("100000, ", 15000) + "2)"

	const attackers = 12
	stop := make(chan struct{})
	var once sync.Once
	halt := func() { once.Do(func() { close(stop) }) }
	var wg sync.WaitGroup
	var sent, refused atomic.Int64
	failures := make(chan error, attackers)
	for a := range attackers {
		c := p.Connect(t, "marie").PgConn()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				sql, isHuge := heavy, a%4 == 0 && i%2 == 0
				if isHuge {
					sql = huge
				}
				_, err := c.Exec(ctx, sql).ReadAll()
				sent.Add(1)
				var pe *pgconn.PgError
				switch {
				case isHuge && errors.As(err, &pe) && pe.Code == "42501" && strings.Contains(pe.Message, "complexity") && strings.Contains(pe.Message, "longer than"):
					refused.Add(1)
				case !isHuge && err == nil:
				case ctx.Err() != nil:
					return
				default:
					failures <- fmt.Errorf("attacker %d, statement %d (huge %v): %v", a, i, isHuge, err)
					return
				}
			}
		}()
	}
	defer func() {
		halt()
		wg.Wait()
	}()

	// The attacker's statements queue behind its own share; sample its
	// slots meanwhile.
	var mostHeld, mostWaiting atomic.Int64
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
			held, waiting, _ := pols.Current().Engine.ParseSlots("marie")
			mostHeld.Store(max(mostHeld.Load(), int64(held)))
			mostWaiting.Store(max(mostWaiting.Load(), int64(waiting)))
		}
	}()
	for deadline := time.Now().Add(time.Minute); mostWaiting.Load() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			h, w, sh := pols.Current().Engine.ParseSlots("marie")
			t.Fatalf("the attacker's statements never queued for a parse slot (sent %d, held %d/%d waiting %d, most held %d)", sent.Load(), h, sh, w, mostHeld.Load())
		}
	}
	// The analyst's new statements (each a new text, so parsed) pass
	// while the flood goes on.
	// NOTE: their times are logged, not checked: the machine may be
	// shared.
	var slowest time.Duration
	for i := range 20 {
		var n int
		began := time.Now()
		if err := analyst.QueryRow(ctx, fmt.Sprintf("SELECT count(*) FROM surveys s%d", i)).Scan(&n); err != nil {
			t.Fatalf("the analyst's statement %d: %v", i, err)
		}
		slowest = max(slowest, time.Since(began))
		select {
		case err := <-failures:
			t.Fatal(err)
		default:
		}
	}
	_, waiting, share := pols.Current().Engine.ParseSlots("marie")
	if held := mostHeld.Load(); held > int64(share) || held == 0 {
		t.Fatalf("the attacker held up to %d parse slots, its share is %d", held, share)
	}
	t.Logf("%d attacker statements, %d refused for complexity; attacker held at most %d slots (share %d), up to %d waiting (%d now); the analyst's slowest new statement %v",
		sent.Load(), refused.Load(), mostHeld.Load(), share, mostWaiting.Load(), waiting, slowest.Round(time.Millisecond))
	halt()
	wg.Wait()
	<-sampled
	select {
	case err := <-failures:
		t.Fatal(err)
	default:
	}
	if refused.Load() == 0 {
		t.Fatal("no 1.8 MB statement was answered")
	}
}
