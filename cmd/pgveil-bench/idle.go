package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// idleSettle is how long idle clients are left before the proxy's RSS is
// read: pgveil's event loops give the buffers of idle sessions back
// within a second or two.
const idleSettle = 3 * time.Second

// idleSample measures the RSS t's proxy gains with n idle client
// connections, each having run one statement, opened parallel at a time,
// and records it in into under t's name. The connections are closed
// before it returns.
func (b *bench) idleSample(ctx context.Context, t *target, n, parallel int, into map[string]idleCost) {
	if err := b.checkAlive(t); err != nil {
		return
	}
	before, err := readMem(t.proc.pid())
	if err != nil {
		b.res.errs = append(b.res.errs, fmt.Errorf("%s: %w", t.name, err))
		return
	}
	begin := time.Now()
	conns, err := openIdle(ctx, t, n, parallel)
	defer func() {
		for _, c := range conns {
			c.Close(context.Background())
		}
	}()
	if err != nil {
		if ctx.Err() == nil {
			b.res.errs = append(b.res.errs, fmt.Errorf("idle clients of %s: %w", t.name, err))
			b.logf("idle      %-15s  failed: %v", t.name, firstLineOf(err))
		}
		return
	}
	opened := time.Since(begin)
	select {
	case <-ctx.Done():
		return
	case <-time.After(idleSettle):
	}
	after, err := readMem(t.proc.pid())
	if err != nil {
		b.res.errs = append(b.res.errs, fmt.Errorf("%s: %w", t.name, err))
		return
	}
	c := idleCost{clients: n, before: before.Current, after: after.Current}
	into[t.name] = c
	b.logf("idle      %-15s  %d clients (opened in %v): RSS %.1f -> %.1f MiB (%.1f KiB each)", t.name, n,
		opened.Round(100*time.Millisecond), float64(c.before)/(1<<20), float64(c.after)/(1<<20), c.perClient()/1024)
}

// openIdle opens n connections to t, parallel at a time, and runs
// SELECT 1 on each. On failure it closes those it opened and returns the
// first error.
func openIdle(ctx context.Context, t *target, n, parallel int) ([]*pgconn.PgConn, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	conns := make([]*pgconn.PgConn, n)
	var (
		next     atomic.Int64
		opened   atomic.Int64
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	for range min(max(parallel, 1), n) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				c, err := t.connect(ctx)
				if err == nil {
					if err = c.Exec(ctx, "SELECT 1").Close(); err != nil {
						c.Close(context.Background())
					}
				}
				if err != nil {
					errOnce.Do(func() {
						firstErr = fmt.Errorf("%d of %d connections open: %w", opened.Load(), n, err)
						cancel()
					})
					return
				}
				conns[i] = c
				opened.Add(1)
			}
		})
	}
	wg.Wait()
	err := firstErr
	if err == nil {
		err = ctx.Err() // NOTE: the caller's context ended
	}
	if err != nil {
		for _, c := range conns {
			if c != nil {
				c.Close(context.Background())
			}
		}
		return nil, err
	}
	return conns, nil
}
