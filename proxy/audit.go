package proxy

import (
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgveil/pgveil/internal/audit"
	"github.com/pgveil/pgveil/internal/firewall"
	"github.com/pgveil/pgveil/proxy/statement"
	"github.com/pgveil/pgveil/proxy/wire"
	"github.com/pgveil/pgveil/rewrite"
)

// Auditor receives the audit trail: one record per statement execution
// or refusal and per session event. *audit.Log implements it.
//
// NOTE: Write is called from sessions' relay goroutines (an event
// loop's, shared by its sessions); it may block (an audited system does
// not drop records) but must not do heavy work: *audit.Log's does no
// parse, only a pass over a text longer than it keeps, the session
// having read that text already.
type Auditor interface {
	Write(r *audit.Record)
}

// auditResult accounts an ErrorResponse of total bytes to the execution
// it answers, and records the execution when it ends it (backend relay).
// errCode and errMsg describe the error as the client received it;
// refused says it was a refusal's marker.
func (ss *session) auditResult(typ byte, total int, errCode, errMsg string, refused bool) {
	if _, done := ss.track.OnAnswer(typ, total, errCode, errMsg, refused); done != nil {
		ss.finish(done, "")
	}
}

// auditRefused records the answer of total bytes of a refusal's marker,
// in whose place the client was sent r (statement.Tracker.OnRefusedAnswer).
func (ss *session) auditRefused(total int, r *Refusal) {
	if done := ss.track.OnRefusedAnswer(total, r); done != nil {
		ss.finish(done, "")
	}
}

// auditParams is the Server's auditParams for opts: none without an
// audit trail.
func auditParams(opts Options) int {
	if opts.Audit == nil || opts.AuditParameters < 0 {
		return 0
	}
	return opts.AuditParameters
}

// auditUnavailable is the refusal of a statement about to run while the
// audit trail cannot be written, when the server must not run what it
// cannot record (audit.on_error = "refuse"); nil otherwise. The refusal
// is recorded like any other: it waits in the queue with the rest.
// Transaction control (res, when known, holds only BEGIN, COMMIT,
// ROLLBACK, SAVEPOINT…) still runs, so that a client can end the
// transaction the refusal aborted.
func (ss *session) auditUnavailable(res *rewrite.Result) *Refusal {
	if res != nil && transactionControl(res) {
		return nil
	}
	if f := ss.srv.auditFailing; f != nil && f() {
		return firewall.New("audit_unavailable",
			"pgveil refused the statement: the audit trail cannot be written, and statements that cannot be recorded do not run")
	}
	return nil
}

// ExecuteOfRefusedParse starts the message of the record of an Execute
// of a statement refused at its Parse: the refusal is the Parse's, whose
// record comes first; this one is not a refusal of its own, and an
// auditor counting denials leaves it out.
const ExecuteOfRefusedParse = "Execute of a statement refused at its Parse (not run, not a second refusal): "

// finish writes the audit record of a finished execution.
func (ss *session) finish(x *statement.Execution, note string) {
	info := x.Info
	ss.statements.Add(1)
	r := ss.auditRecord("statement")
	r.SQL, r.Params = info.SQL, x.Params
	if info.Result != nil {
		r.Fingerprint = info.Result.Fingerprint
	}
	r.PolicyVersion, r.ActingFor = splitVersion(info.Version)
	if r.ActingFor != "" {
		// NOTE: the roles of the statement's own rewrite, not the
		// session's now: a switch or a reload since does not relabel it.
		r.ActingRoles = info.Roles
	}
	// NOTE: an execution kept for its batch's ReadyForQuery ended
	// before it (statement.Tracker.finished): its record says when.
	end := x.End
	if end.IsZero() {
		end = time.Now()
	} else {
		r.Time = end
	}
	r.Rows, r.Bytes, r.Duration = x.Rows, x.Bytes, end.Sub(x.Start)
	r.Affected = x.Affected
	refusal := info.Refusal
	if refusal == nil {
		// A statement pgveil prepared in its place failed with the
		// refusal's marker (statement.Execution.Refusal).
		refusal = x.Refusal
	}
	if refusal != nil {
		if r.Fingerprint == "" {
			r.Fingerprint = refusal.Fingerprint
		}
		r.Decision = "denied"
		r.Kind = refusal.Kind
		r.Reason = refusal.Rule
		r.SQLState = refusal.Code
		r.Message = refusal.Message
		if x.OfRefusedParse && refusal == info.Refusal {
			r.Message = ExecuteOfRefusedParse + refusal.Message
		}
		r.Tables = refusal.Tables
		ss.srv.audit.Write(r)
		return
	}
	r.Decision = "allowed"
	r.BackendPID = x.BackendPID
	if res := info.Result; res != nil {
		r.Kind = strings.Join(res.Kinds, ",")
		r.Tables, r.Rules, r.Columns, r.Masked = res.Tables, res.Rules, res.Columns, res.MaskedRead
		if res.Rewritten {
			r.Decision = "rewritten"
			r.Rewritten = res.SQL
		}
	}
	if x.SQLState != "" {
		r.SQLState = x.SQLState
		r.UpstreamError = x.SQLState + ": " + x.UpstreamError
	}
	r.Message = note
	ss.srv.audit.Write(r)
}

// auditRecord starts a record of event for this session.
func (ss *session) auditRecord(event string) *audit.Record {
	r := &audit.Record{
		Event:   event,
		Session: ss.info.ID,
		User:    ss.info.User,
		Roles:   ss.info.Roles,
		// NOTE: as pg_stat_activity shows it: a client could
		// otherwise make each record, a failed login's included, as
		// long as its startup packet.
		ApplicationName: truncateAppName(ss.applicationName()),
		Database:        ss.info.Database,
		Client:          ss.clientAddr,
	}
	return r
}

// applicationName is the client's application_name now: the one it set
// last, or the startup one.
func (ss *session) applicationName() string {
	if v := ss.appName.Load(); v != nil {
		return *v
	}
	return ss.info.ApplicationName
}

// auditAuthFailure writes the auth_failure record of a failed login for
// reason, bounded per client address as the records of refused startups
// are (refused.go): whoever reaches the port can fail logins at will,
// each with a login of its own, which the login throttle counts apart.
// Those past the
// bound are counted (pgveil_audit_refusals_unrecorded_total, and count of
// the address's next record). code is the SQLSTATE the client was sent.
func (ss *session) auditAuthFailure(reason, code string) {
	srv := ss.srv
	if srv.audit == nil {
		return
	}
	v := srv.authFailures.admit(startupHostOf(ss.info.ClientAddr), time.Now())
	if !v.record {
		srv.metrics.refusalUnrecorded()
		return
	}
	r := ss.auditRecord("auth_failure")
	r.Reason, r.SQLState = reason, code
	var notes []string
	if v.unrecorded > 0 {
		r.Count = v.unrecorded
		notes = append(notes, fmt.Sprintf("%d earlier failed logins of this client address were not recorded", v.unrecorded))
	}
	if v.last {
		notes = append(notes, fmt.Sprintf("%d failed logins of this client address within %s: its next ones are not recorded until %s, only counted",
			refusalAuditBurst, refusalAuditWindow, v.until.UTC().Format(time.RFC3339)))
	}
	r.Message = strings.Join(notes, "; ")
	srv.audit.Write(r)
}

// auditPoolRefused writes the pool_refused record of the client message
// of type typ and total bytes, refused with resp because no backend was
// free: who (the end user a BI service acts for too), what the client
// got (reason, sqlstate) and, for a Query or a Parse, the statement text
// that did not run.
func (ss *session) auditPoolRefused(typ byte, total int, resp *pgproto3.ErrorResponse) {
	if ss.srv.audit == nil {
		return
	}
	r := ss.auditRecord("pool_refused")
	r.Reason, r.SQLState, r.ActingFor = resp.Message, resp.Code, ss.actingFor()
	if typ == 'Q' || typ == 'P' {
		// NOTE: a peek: answerUnheld skips the message after.
		if b, err := ss.cin.PeekAtMost(total, total); err == nil {
			body := b[wire.HeaderLen:]
			if typ == 'P' {
				_, body, _ = cstring(body)
			}
			r.SQL, _, _ = cstring(body)
		}
	}
	ss.srv.audit.Write(r)
}

// auditRefusal writes the event of a session refused or failed with
// resp (connect_failed, connect_refused), if the server audits: reason
// and sqlstate are what the client was sent, so that an auditor tells an
// upstream outage (08001) from a full server (53300) or a cap (53300,
// 3D000…) without the diagnostic log.
func (ss *session) auditRefusal(event string, resp *pgproto3.ErrorResponse) {
	if ss.srv.audit == nil {
		return
	}
	r := ss.auditRecord(event)
	r.Reason, r.SQLState = resp.Message, resp.Code
	ss.srv.audit.Write(r)
}

// auditEvent writes a session event, if the server audits.
func (ss *session) auditEvent(event, reason string, d time.Duration) {
	if ss.srv.audit == nil {
		return
	}
	r := ss.auditRecord(event)
	r.Reason, r.Duration = reason, d
	ss.srv.audit.Write(r)
}

// auditActFor writes the act_for record of a change of whom the session
// acts for, from prev to login ("" for its own login), made for reason
// (actAs), if the server audits. The record's acting_for is login: whom
// the statements after it run for; its policy version is the one in
// force. A switch is recorded when pgveil makes it, ahead of its
// statement's answer: should the upstream skip or fail that statement,
// a second record ("not made upstream") takes it back, as a transaction
// rolled back does ("rolled back").
// NOTE: user names only, unquoted: a redacted trail (redact_literals)
// scrubs quoted parts of messages, and the change is what it must keep.
// A ROLLBACK TO SAVEPOINT returning to another user is recorded
// ("rolled back to a savepoint"); while one leaves whom the session
// acts for unknown, nothing is recorded: every statement but a switch
// and transaction control is refused until one settles it.
// unknown says whom it acted for before was not known: prev is only
// whom pgveil last knew of.
func (ss *session) auditActFor(login, prev, reason string, unknown bool) {
	if ss.srv.audit == nil {
		return
	}
	r := ss.auditRecord(audit.EventActFor)
	r.ActingFor, r.ActingForBefore, r.Reason = login, prev, reason
	if ss.track != nil && ss.track.Versions() != nil {
		r.PolicyVersion, _ = splitVersion(ss.track.Versions().PolicyVersion())
	}
	from := "its login " + ss.info.User
	if prev != "" {
		from = prev
	}
	to := "its login " + ss.info.User
	if login != "" {
		to = login
	}
	r.Message = "acting for " + to + " from then on, no longer for " + from
	if unknown {
		r.Message = "acting for " + to + " from then on; whom it acted for before was not known (a ROLLBACK TO SAVEPOINT may have undone a change of it), last known " + from
	}
	ss.srv.audit.Write(r)
}
