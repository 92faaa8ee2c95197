package server

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/pgveil/pgveil/internal/audit"
	"github.com/pgveil/pgveil/rewrite"
)

// minKickInterval is the shortest time between two catalog reads that
// failing statements ask for: a client can fail statements at will, and
// each read costs the upstream a few catalog queries.
const minKickInterval = 5 * time.Second

// catalogWatch keeps the catalog snapshot of the policies in force close
// to the upstream's: it reads the catalog again every
// upstream.catalog_refresh, and soon after a statement failed upstream on
// a relation or a column that does not exist (Kick). A snapshot that
// changed is put in force, and the rewrite caches emptied; an unchanged
// one changes nothing (rewrite.Engine.Refresh).
//
// Without it a DBA's DDL reached pgveil only at a reload: a column
// dropped from a governed table made every statement on the table fail,
// since its scoped subquery still listed the column, and a column added
// stayed out of reach.
type catalogWatch struct {
	policies *Policies
	log      *zap.Logger
	// audit records each snapshot put in force; nil without an audit
	// trail.
	audit *audit.Log
	// reads counts the reads by outcome; nil without metrics.
	reads *prometheus.CounterVec
	// kick asks for a read; rearm for the timer to be set again from
	// the configuration in force.
	// NOTE: buffered, capacity 1: kicks while one is pending are one.
	kick, rearmc chan struct{}
	// stop ends run, which closes done.
	stop, done chan struct{}
}

// newCatalogWatch starts a catalogWatch over p, exporting its counter in
// reg unless nil; stop it with close.
func newCatalogWatch(p *Policies, log *zap.Logger, reg *prometheus.Registry, trail *audit.Log) *catalogWatch {
	w := &catalogWatch{policies: p, log: log, audit: trail, kick: make(chan struct{}, 1), rearmc: make(chan struct{}, 1),
		stop: make(chan struct{}), done: make(chan struct{})}
	if reg != nil {
		w.reads = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgveil_catalog_reads_total",
			Help: "Reads of the upstream catalog after the first, by result: changed, unchanged or failed.",
		}, []string{"result"})
		reg.MustRegister(w.reads)
	}
	go w.run()
	return w
}

// Kick asks for a read of the catalog soon, at most every
// minKickInterval; it never blocks.
func (w *catalogWatch) Kick() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// rearm sets the period again from the configuration in force, after a
// reload; it never blocks.
func (w *catalogWatch) rearm() {
	select {
	case w.rearmc <- struct{}{}:
	default:
	}
}

// close stops the watch and waits for a read in progress.
func (w *catalogWatch) close() {
	close(w.stop)
	<-w.done
}

// run reads the catalog at each period and kick until stop.
//
// NOTE: due is when the period ends; the timer fires then, or sooner
// for a kick that came within minKickInterval of the last read.
func (w *catalogWatch) run() {
	defer close(w.done)
	// The catalog was read as the policies were loaded, a moment ago.
	last := time.Now()
	due := last.Add(w.interval())
	timer := time.NewTimer(time.Until(due))
	defer timer.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-w.rearmc:
			due = last.Add(w.interval())
			timer.Reset(time.Until(due))
			continue
		case <-w.kick:
			if wait := minKickInterval - time.Since(last); wait > 0 {
				timer.Reset(min(wait, time.Until(due)))
				continue
			}
		case <-timer.C:
		}
		last = time.Now()
		w.read()
		due = time.Now().Add(w.interval())
		timer.Reset(w.interval())
	}
}

// interval is upstream.catalog_refresh of the configuration in force;
// a minute for a configuration that was not decoded from HCL.
func (w *catalogWatch) interval() time.Duration {
	if d := w.policies.Current().Config.Upstream.CatalogRefresh; d > 0 {
		return d
	}
	return time.Minute
}

// read reads the catalog once for the policies in force.
func (w *catalogWatch) read() {
	e := w.policies.Current()
	ctx, cancel := context.WithTimeout(context.Background(), e.Config.Upstream.ConnectTimeout+time.Minute)
	defer cancel()
	changed, err := e.Engine.Refresh(ctx)
	result := "unchanged"
	switch {
	case err != nil:
		result = "failed"
		w.log.Warn("reading the upstream catalog again failed; the snapshot in force stays", zap.Error(err))
	case changed:
		result = "changed"
		cat := e.Engine.Catalog()
		w.log.Info("the upstream catalog changed: statements are now checked against the new snapshot",
			zap.Int("relations", len(cat.Relations)))
		if w.audit != nil {
			msg := fmt.Sprintf("catalog snapshot %x: %d relations", cat.Digest[:8], len(cat.Relations))
			if r := refusedRelations(cat); len(r) > 0 {
				msg += fmt.Sprintf("; refused, the policies no longer matching them: %s", strings.Join(r, ", "))
			}
			w.audit.Write(&audit.Record{Event: audit.EventCatalog, PolicyVersion: e.Version, Message: msg})
		}
		logWarnings(w.log, e.Config.CheckUnseenCalls(e.Engine.Catalog()))
	}
	// NOTE: at every read, not only at the change: until the DBA updates
	// the policies and reloads, users are refused these relations.
	if r := refusedRelations(e.Engine.Catalog()); len(r) > 0 {
		w.log.Error("relations refused: the policies no longer match them since DDL upstream; "+
			"update the policies (pgveil check --upstream shows the problems) and reload pgveil",
			zap.Strings("relations", r))
	}
	if w.reads != nil {
		w.reads.WithLabelValues(result).Inc()
	}
}

// refusedRelations returns the names of the relations cat refuses
// (rewrite.Relation.Refused), in name order.
func refusedRelations(cat *rewrite.Catalog) []string {
	var out []string
	for _, rel := range cat.Relations {
		if rel.Refused != "" {
			out = append(out, rel.QName.String())
		}
	}
	slices.Sort(out)
	return out
}
