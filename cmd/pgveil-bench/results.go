package main

import (
	"slices"
	"time"
)

// samples are the repeated measurements of one quantity, with the errors of
// the attempts that produced none.
type samples struct {
	values []float64
	errs   []error
}

// add records one measurement or its failure.
func (s *samples) add(v float64, err error) {
	if err != nil {
		s.errs = append(s.errs, err)
		return
	}
	s.values = append(s.values, v)
}

// median returns the median of the values; ok is false when there are
// none.
func (s *samples) median() (m float64, ok bool) {
	if s == nil || len(s.values) == 0 {
		return 0, false
	}
	v := slices.Clone(s.values)
	slices.Sort(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2], true
	}
	return (v[n/2-1] + v[n/2]) / 2, true
}

// tpsKey names a throughput measurement.
type tpsKey struct {
	target string
	mode   string
}

// results holds everything the benchmark measured.
type results struct {
	// tps are pgbench's transactions per second.
	tps map[tpsKey]*samples
	// stream are the streaming rates in value bytes per second, by target.
	stream map[string]*samples
	// cpu is the proxies' CPU time over the measured pgbench runs.
	cpu map[tpsKey]*cpuUse
	// memAfterPgbench and memAfterStream are the proxies' memory after the
	// pgbench runs and after the streamed results, by target.
	memAfterPgbench map[string]memStats
	memAfterStream  map[string]memStats
	// idle is the RSS an idle client connection adds to each proxy.
	idle map[string]idleCost
	// backends is, by pooling proxy, the most upstream backends it was
	// seen holding during its measured pgbench runs.
	backends map[string]int
	// poolIdle is the RSS idle client connections add to each pooling
	// proxy.
	poolIdle map[string]idleCost
	// audit is pgveil-audited's trail after the pgbench runs; nil when it
	// could not be read.
	audit *auditTrail
	// errs are the failures outside any one measurement (reading memory,
	// a proxy that exited).
	errs []error
}

// newResults returns empty results.
func newResults() *results {
	return &results{
		tps:             map[tpsKey]*samples{},
		stream:          map[string]*samples{},
		cpu:             map[tpsKey]*cpuUse{},
		memAfterPgbench: map[string]memStats{},
		memAfterStream:  map[string]memStats{},
		idle:            map[string]idleCost{},
		backends:        map[string]int{},
		poolIdle:        map[string]idleCost{},
	}
}

// tpsOf returns the samples of (target, mode), creating them.
func (r *results) tpsOf(target, mode string) *samples {
	k := tpsKey{target, mode}
	if r.tps[k] == nil {
		r.tps[k] = &samples{}
	}
	return r.tps[k]
}

// addCPU adds a proxy's CPU time over one measured run of (target, mode)
// and the transactions the run processed.
func (r *results) addCPU(target, mode string, cpu time.Duration, txns int64) {
	k := tpsKey{target, mode}
	if r.cpu[k] == nil {
		r.cpu[k] = &cpuUse{}
	}
	r.cpu[k].cpu += cpu
	r.cpu[k].txns += txns
}

// addBackends records that target was seen holding n upstream backends.
func (r *results) addBackends(target string, n int) {
	if old, ok := r.backends[target]; !ok || n > old {
		r.backends[target] = n
	}
}

// streamOf returns the streaming samples of target, creating them.
func (r *results) streamOf(target string) *samples {
	if r.stream[target] == nil {
		r.stream[target] = &samples{}
	}
	return r.stream[target]
}

// allErrors returns every recorded failure.
func (r *results) allErrors() []error {
	errs := slices.Clone(r.errs)
	for _, s := range r.tps {
		errs = append(errs, s.errs...)
	}
	for _, s := range r.stream {
		errs = append(errs, s.errs...)
	}
	return errs
}

// ratio returns a/b of two medians; ok is false when either is missing or
// b is zero.
func ratio(a, b *samples) (float64, bool) {
	x, okA := a.median()
	y, okB := b.median()
	if !okA || !okB || y == 0 {
		return 0, false
	}
	return x / y, true
}

// cpuUse is a proxy's CPU time summed over runs, and the transactions those
// runs processed.
type cpuUse struct {
	cpu  time.Duration
	txns int64
}

// perTxn returns the CPU time per transaction; ok is false without data.
func (c *cpuUse) perTxn() (d time.Duration, ok bool) {
	if c == nil || c.txns == 0 {
		return 0, false
	}
	return c.cpu / time.Duration(c.txns), true
}
