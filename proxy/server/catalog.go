package server

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/pgveil/pgveil/internal/audit"
	"github.com/pgveil/pgveil/internal/ddlnotify"
	"github.com/pgveil/pgveil/proxy"
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
	// notified asks for a read as an upstream notification on
	// DDLChannel does (listen).
	// NOTE: buffered, capacity 1, like kick.
	notified chan struct{}
	// stop ends run, which closes done, and listen, which closes
	// listened.
	stop, done, listened chan struct{}
}

// DDLChannel is the channel pgveil listens on upstream for DDL: an event
// trigger the DBA installs (ddlnotify.TriggerSQL) notifies it at the end
// of every DDL command, and pgveil reads the catalog at once instead of
// within upstream.catalog_refresh.
const DDLChannel = ddlnotify.Channel

// DDLTriggerSQL is ddlnotify.TriggerSQL.
const DDLTriggerSQL = ddlnotify.TriggerSQL

// minNotifyInterval is the shortest time between two catalog reads that
// DDL notifications ask for: a migration runs many commands, each
// notifying.
const minNotifyInterval = 500 * time.Millisecond

// newCatalogWatch starts a catalogWatch over p, exporting its counter in
// reg unless nil; stop it with close.
func newCatalogWatch(p *Policies, log *zap.Logger, reg *prometheus.Registry, trail *audit.Log) *catalogWatch {
	w := &catalogWatch{policies: p, log: log, audit: trail, kick: make(chan struct{}, 1), rearmc: make(chan struct{}, 1),
		notified: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}), listened: make(chan struct{})}
	if reg != nil {
		w.reads = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgveil_catalog_reads_total",
			Help: "Reads of the upstream catalog after the first, by result: changed, unchanged or failed.",
		}, []string{"result"})
		reg.MustRegister(w.reads)
	}
	go w.run()
	go w.listen()
	return w
}

// listen holds a connection upstream listening on DDLChannel and asks
// for a catalog read at each notification, until stop. A connection
// that breaks is opened again, after a wait that doubles up to 30 s; a
// read is asked for once it listens again, for the DDL it may have
// missed.
func (w *catalogWatch) listen() {
	defer close(w.listened)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-w.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	wait := time.Second
	for again := false; ; again = true {
		listening, err := w.listenOnce(ctx, again)
		if ctx.Err() != nil {
			return
		}
		var refused listenRefused
		if errors.As(err, &refused) {
			// LISTEN itself was refused (a pooler in transaction
			// mode, a server without it): the periodic reads remain.
			// (A connection ended by the server, a restart, a bad
			// password are tried again.)
			w.log.Warn("listening for DDL notifications upstream was refused; the catalog is read every upstream.catalog_refresh only",
				zap.Error(err))
			return
		}
		if listening {
			wait = time.Second
		}
		w.log.Warn("listening for DDL notifications upstream failed; trying again", zap.Error(err), zap.Duration("in", wait))
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, 30*time.Second)
	}
}

// listenOnce connects, listens on DDLChannel and asks for a read at
// each notification (and once at once when again), until the connection
// fails or ctx ends; listening reports that LISTEN succeeded.
func (w *catalogWatch) listenOnce(ctx context.Context, again bool) (listening bool, err error) {
	conn, err := proxy.ConnectService(ctx, w.policies.Current().Config, "catalog-notify")
	if err != nil {
		return false, err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "LISTEN "+DDLChannel).ReadAll(); err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Severity == "ERROR" {
			return false, listenRefused{err}
		}
		return false, err
	}
	if again {
		w.notify()
	}
	for {
		if err := conn.WaitForNotification(ctx); err != nil {
			return true, err
		}
		w.notify()
	}
}

// listenRefused is the server's ERROR to LISTEN itself.
type listenRefused struct{ error }

func (e listenRefused) Unwrap() error { return e.error }

// notify asks for a read as a DDL notification does; it never blocks.
func (w *catalogWatch) notify() {
	select {
	case w.notified <- struct{}{}:
	default:
	}
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
	<-w.listened
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
		case <-w.notified:
			if wait := minNotifyInterval - time.Since(last); wait > 0 {
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
