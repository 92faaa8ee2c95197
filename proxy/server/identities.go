package server

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// identityWatch keeps the identities read upstream (identity blocks)
// close to the rows: it reads them again every refresh of the identity
// blocks in force (Reloader.RefreshIdentities), and rows that changed
// are put in force as a reload puts them.
//
// Without it the identity rows reached pgveil only at a reload: an
// employee who left kept her access, and an agent moved to another team
// kept reading the old team's rows, until someone sent SIGHUP.
//
// NOTE: the identities are one read of every identity block, in one
// transaction (LoadIdentities merges the blocks' rows): with several
// blocks, all are read at the shortest of their refresh intervals.
type identityWatch struct {
	reloader *Reloader
	log      *zap.Logger
	// reads counts the reads by outcome; nil without metrics.
	reads *prometheus.CounterVec
	// rearmc asks for the timer to be set again from the configuration
	// in force, after a reload (which read the identities itself).
	// NOTE: buffered, capacity 1: requests while one is pending are one.
	rearmc chan struct{}
	// ctx ends a read in progress at close; cancel ends ctx.
	ctx    context.Context
	cancel context.CancelFunc
	// done is closed when run returns.
	done chan struct{}
	// read is what a tick runs; r.RefreshIdentities but in tests.
	read func(ctx context.Context) (bool, error)
}

// newIdentityWatch starts an identityWatch over r, exporting its counter
// in reg unless nil; stop it with close.
func newIdentityWatch(r *Reloader, log *zap.Logger, reg *prometheus.Registry) *identityWatch {
	ctx, cancel := context.WithCancel(context.Background())
	w := &identityWatch{reloader: r, log: log, rearmc: make(chan struct{}, 1), ctx: ctx, cancel: cancel,
		done: make(chan struct{}), read: r.RefreshIdentities}
	if reg != nil {
		w.reads = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgveil_identity_reads_total",
			Help: "Reads of the identity blocks' rows after the first (their refresh), by result: changed (put in force), unchanged or failed (the identities in force kept serving).",
		}, []string{"result"})
		reg.MustRegister(w.reads)
	}
	go w.run()
	return w
}

// rearm sets the period again from the configuration in force; it never
// blocks.
func (w *identityWatch) rearm() {
	select {
	case w.rearmc <- struct{}{}:
	default:
	}
}

// close stops the watch, ending a read in progress, and waits for it.
func (w *identityWatch) close() {
	w.cancel()
	<-w.done
}

// run reads the identities at each period until close.
func (w *identityWatch) run() {
	defer close(w.done)
	// The identities were read as the policies were loaded, a moment ago.
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	arm := func() <-chan time.Time {
		d := w.interval()
		if d <= 0 {
			return nil
		}
		timer.Reset(d)
		return timer.C
	}
	tick := arm()
	for {
		select {
		case <-w.ctx.Done():
			return
		case <-w.rearmc:
			timer.Stop()
			tick = arm()
			continue
		case <-tick:
		}
		w.once()
		tick = arm()
	}
}

// interval is the shortest refresh of the identity blocks in force; 0
// when there are none (nothing to read).
func (w *identityWatch) interval() time.Duration {
	var d time.Duration
	for _, src := range w.reloader.Policies.Current().Config.IdentitySources {
		if r := src.Refresh; r > 0 && (d == 0 || r < d) {
			d = r
		}
	}
	return d
}

// once reads the identities once, within the upstream connect timeout
// and a minute.
func (w *identityWatch) once() {
	cfg := w.reloader.Policies.Current().Config
	ctx, cancel := context.WithTimeout(w.ctx, cfg.Upstream.ConnectTimeout+time.Minute)
	defer cancel()
	changed, err := w.read(ctx)
	if w.ctx.Err() != nil {
		// Stopped while reading: nothing was read.
		return
	}
	result := "unchanged"
	switch {
	case err != nil:
		result = "failed"
		w.log.Error("reading the identities again failed; the identities in force keep serving until a read succeeds",
			zap.Error(err))
	case changed:
		result = "changed"
	}
	if w.reads != nil {
		w.reads.WithLabelValues(result).Inc()
	}
}
