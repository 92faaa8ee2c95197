package server

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestAdminReadiness holds /readyz to its cache: a verdict is reused for
// readyTTL, however often the endpoint is probed, and checked again
// after. The clock is injected: no test waits for a second to pass.
func TestAdminReadiness(t *testing.T) {
	var (
		mu     sync.Mutex
		checks int
		down   error
		now    = time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	)
	a := NewAdmin(prometheus.NewRegistry(), func(context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		checks++
		return down
	})
	a.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	h := a.Handler()
	probe := func() (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		return rec.Code, rec.Body.String()
	}
	step := func(d time.Duration, err error) {
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(d)
		down = err
	}

	steps := []struct {
		name    string
		advance time.Duration
		// upstream is what a check of the upstream returns at this step.
		upstream   error
		wantCode   int
		wantBody   string
		wantChecks int
	}{
		{name: "the first probe checks the upstream", wantCode: 200, wantBody: "ready", wantChecks: 1},
		{name: "a probe within the TTL reuses the verdict", advance: readyTTL / 2, wantCode: 200, wantBody: "ready", wantChecks: 1},
		{name: "a failure within the TTL is not seen yet", advance: readyTTL/2 - time.Nanosecond,
			upstream: errors.New("upstream unreachable: refused"), wantCode: 200, wantBody: "ready", wantChecks: 1},
		{name: "a probe at the TTL checks again and sees the failure", advance: time.Nanosecond,
			upstream: errors.New("upstream unreachable: refused"), wantCode: 503, wantBody: "not ready: upstream unreachable", wantChecks: 2},
		{name: "the failure is reused within the TTL", advance: time.Millisecond, wantCode: 503, wantBody: "not ready", wantChecks: 2},
		{name: "the recovery is seen after the TTL", advance: readyTTL, wantCode: 200, wantBody: "ready", wantChecks: 3},
	}
	for _, s := range steps {
		step(s.advance, s.upstream)
		code, body := probe()
		if code != s.wantCode || !strings.Contains(body, s.wantBody) {
			t.Fatalf("%s: /readyz = %d %q; want %d %q", s.name, code, body, s.wantCode, s.wantBody)
		}
		mu.Lock()
		n := checks
		mu.Unlock()
		if n != s.wantChecks {
			t.Fatalf("%s: %d checks of the upstream; want %d", s.name, n, s.wantChecks)
		}
	}
}

// TestAdminReadinessDraining holds /readyz to answering 503 once
// shutdown has begun, even with a fresh verdict of ready in its cache,
// without checking the upstream again.
func TestAdminReadinessDraining(t *testing.T) {
	checks := 0
	a := NewAdmin(prometheus.NewRegistry(), func(context.Context) error { checks++; return nil })
	h := a.Handler()
	probe := func() (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		return rec.Code, rec.Body.String()
	}
	if code, body := probe(); code != http.StatusOK {
		t.Fatalf("before Drain: /readyz = %d %q; want 200", code, body)
	}
	a.Drain()
	if code, body := probe(); code != http.StatusServiceUnavailable || !strings.Contains(body, "not ready: shutting down") {
		t.Fatalf("after Drain: /readyz = %d %q; want 503 \"not ready: shutting down\"", code, body)
	}
	if checks != 1 {
		t.Fatalf("%d checks of the upstream; want 1 (none after Drain)", checks)
	}
}

// TestAdminHealthz holds /healthz to answering without any check.
func TestAdminHealthz(t *testing.T) {
	a := NewAdmin(prometheus.NewRegistry(), func(context.Context) error {
		t.Error("/healthz checked the upstream")
		return nil
	})
	rec := httptest.NewRecorder()
	a.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	if rec.Code != http.StatusOK || strings.TrimSpace(rec.Body.String()) != "ok" {
		t.Fatalf("/healthz = %d %q; want 200 \"ok\"", rec.Code, rec.Body.String())
	}
}

// TestAdminListenerBounds holds one address's idle connections to the
// admin listener past its bound: a probe from another address still gets
// its answer.
func TestAdminListenerBounds(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := &limitListener{Listener: inner, byHost: map[string]int{}}
	a := NewAdmin(prometheus.NewRegistry(), func(context.Context) error { return nil })
	hs := &http.Server{Handler: a.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go hs.Serve(ln)
	defer hs.Close()
	for range maxAdminConnsPerHost + 20 {
		c, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}).Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	client := &http.Client{Timeout: 3 * time.Second}
	resp, err := client.Get("http://" + inner.Addr().String() + "/healthz")
	if err != nil {
		t.Fatalf("a probe from another address: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz = %d", resp.StatusCode)
	}
}
