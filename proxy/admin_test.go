package proxy_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/pgveil/pgveil/proxy"
	"github.com/pgveil/pgveil/proxy/server"
)

// scrape fetches url and parses the Prometheus text exposition.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing metrics: %v", err)
	}
	return fams
}

// value returns the value of the sample of family name whose labels
// include want.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	t.Helper()
	f, ok := fams[name]
	if !ok {
		t.Fatalf("no metric %s", name)
	}
next:
	for _, m := range f.Metric {
		for k, v := range want {
			found := false
			for _, l := range m.Label {
				found = found || (l.GetName() == k && l.GetValue() == v)
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	t.Fatalf("no sample of %s with %v", name, want)
	return 0
}

// get returns the status and body of url.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// fakeClock is a clock that moves only when told.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

// newFakeClock returns a fakeClock at the present time.
func newFakeClock() *fakeClock { return &fakeClock{now: time.Now()} }

// Now returns the clock's time.
func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock d forward.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestAdminEndpoints(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := proxy.NewMetrics(reg)
	p, pols := proxytest.StartDemoFrom(t, "../configs/demo.hcl", func(o *proxy.Options) { o.Metrics = m })
	server.RegisterPolicies(reg, pols)
	m.SetPolicyVersion(pols.Current().Version)
	admin := server.NewAdmin(reg, server.UpstreamReady(p.Config, pols))
	clock := newFakeClock()
	admin.Now = clock.Now
	hs := httptest.NewServer(admin.Handler())
	defer hs.Close()

	ctx := context.Background()
	c := p.Connect(t, "marie")
	for i := 0; i < 3; i++ {
		if _, err := c.Exec(ctx, "SELECT count(*) FROM responses"); err != nil {
			t.Fatal(err)
		}
	}
	_, _ = c.Exec(ctx, "SELECT * FROM employees")

	t.Run("metrics count sessions, decisions, cache and latency", func(t *testing.T) {
		fams := scrape(t, hs.URL+"/metrics")
		if v := value(t, fams, "pgveil_sessions", nil); v != 1 {
			t.Errorf("sessions %v", v)
		}
		if v := value(t, fams, "pgveil_statements_total", map[string]string{"decision": "rewritten"}); v < 1 {
			t.Errorf("rewritten statements %v", v)
		}
		if v := value(t, fams, "pgveil_statements_total", map[string]string{"decision": "denied"}); v != 1 {
			t.Errorf("denied statements %v", v)
		}
		if v := value(t, fams, "pgveil_rewrite_cache_hits_total", nil); v < 1 {
			t.Errorf("cache hits %v", v)
		}
		if v := value(t, fams, "pgveil_rewrite_seconds", nil); v < 4 {
			t.Errorf("rewrite latency samples %v", v)
		}
		if v := value(t, fams, "pgveil_upstream_seconds", nil); v < 1 {
			t.Errorf("upstream latency samples %v", v)
		}
		if v := value(t, fams, "pgveil_client_bytes_sent_total", nil); v <= 0 {
			t.Errorf("bytes %v", v)
		}
		if v := value(t, fams, "pgveil_policy_info", map[string]string{"version": pols.Current().Version}); v != 1 {
			t.Errorf("policy info %v", v)
		}
	})
	t.Run("healthz answers while the process runs", func(t *testing.T) {
		if code, _ := get(t, hs.URL+"/healthz"); code != http.StatusOK {
			t.Fatalf("healthz %d", code)
		}
	})
	t.Run("readyz flips when the upstream stops and back when it returns", func(t *testing.T) {
		if code, body := get(t, hs.URL+"/readyz"); code != http.StatusOK {
			t.Fatalf("readyz %d %s", code, body)
		}
		if proxytest.Cluster.External() {
			t.Skip("an external server is not stopped by tests")
		}
		c.Close(ctx)
		if err := proxytest.Cluster.StopServer(); err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := proxytest.Cluster.StartServer(); err != nil {
				t.Fatal(err)
			}
		}()
		clock.Advance(2 * time.Second) // past the cached verdict
		code, body := get(t, hs.URL+"/readyz")
		if code != http.StatusServiceUnavailable || strings.TrimSpace(body) != "not ready: upstream unreachable" {
			t.Fatalf("readyz with the upstream down: %d %s", code, body)
		}
		if err := proxytest.Cluster.StartServer(); err != nil {
			t.Fatal(err)
		}
		clock.Advance(2 * time.Second)
		if code, body := get(t, hs.URL+"/readyz"); code != http.StatusOK {
			t.Fatalf("readyz after the upstream returned: %d %s", code, body)
		}
	})
}

func TestSessionsAreCountedBeforeTheClientIsReady(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := proxy.NewMetrics(reg)
	p, _ := proxytest.StartDemoFrom(t, "../configs/demo.hcl", func(o *proxy.Options) { o.Metrics = m })
	for i := 1; i <= 20; i++ {
		p.Connect(t, "marie")
		fams, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fams {
			if f.GetName() == "pgveil_sessions" {
				if v := f.GetMetric()[0].GetGauge().GetValue(); v != float64(i) {
					t.Fatalf("after %d connections the gauge says %v", i, v)
				}
			}
		}
	}
}
