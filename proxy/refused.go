package proxy

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgveil/pgveil/internal/audit"
)

// Audit records of refused startups.
//
// A startup refused before its client authenticated (a startup parameter
// pgveil refuses, a plaintext client where TLS is required, one past
// listen.max_connections, a protocol error) is written to the audit
// trail as a connect_refused record: the client's address, the user,
// database and application_name it claimed, and the reason. Such a client
// can open connections at will, so those records are bounded as the
// failed-login throttle bounds its own (throttle.go): per client address
// (an IPv6 address's /64, as listen.max_startup_per_address counts
// them), the first refusalAuditBurst refusals within refusalAuditWindow
// are recorded, the last of them saying so, and the others until the
// window ends are not, only counted: by the metric
// pgveil_audit_refusals_unrecorded_total, and in the count field of the
// address's next record. At most maxRefusalHosts addresses are
// remembered: past that, refusals of others go unrecorded (counted by
// the metric) until windows end.
const (
	refusalAuditWindow = time.Minute
	refusalAuditBurst  = 10
	maxRefusalHosts    = 10000
)

// refusalWindow is an address's current window: when it began, the
// refusals recorded in it, and those left unrecorded since.
type refusalWindow struct {
	since      time.Time
	recorded   int
	unrecorded int64
}

// refusalAudit decides which refused startups are recorded (see above).
type refusalAudit struct {
	mu sync.Mutex
	// NOTE: guarded by mu. swept is when m was last cleared of windows
	// that have passed.
	m     map[string]*refusalWindow
	swept time.Time
}

// refusalVerdict is what admit says of a refusal.
type refusalVerdict struct {
	// record says to record it; last that it is the last recorded
	// before until.
	record, last bool
	until        time.Time
	// unrecorded counts the refusals of the address not recorded before
	// this one (in its previous window).
	unrecorded int64
}

// admit says whether a refusal of a client of host at now is recorded.
func (a *refusalAudit) admit(host string, now time.Time) refusalVerdict {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.m == nil {
		a.m = map[string]*refusalWindow{}
	}
	w := a.m[host]
	if w != nil && now.Sub(w.since) < refusalAuditWindow && !now.Before(w.since) {
		if w.recorded >= refusalAuditBurst {
			w.unrecorded++
			return refusalVerdict{}
		}
		w.recorded++
		return refusalVerdict{record: true, last: w.recorded == refusalAuditBurst, until: w.since.Add(refusalAuditWindow)}
	}
	if w == nil && len(a.m) >= maxRefusalHosts {
		// NOTE: at most one sweep a second: while more addresses than
		// that are refused within a window, the others go unrecorded
		// rather than each costing a pass over the map.
		if now.Sub(a.swept) < time.Second && !now.Before(a.swept) {
			return refusalVerdict{}
		}
		a.swept = now
		for h, o := range a.m {
			if now.Sub(o.since) >= refusalAuditWindow || now.Before(o.since) {
				delete(a.m, h)
			}
		}
		if len(a.m) >= maxRefusalHosts {
			return refusalVerdict{}
		}
	}
	v := refusalVerdict{record: true, last: refusalAuditBurst == 1, until: now.Add(refusalAuditWindow)}
	if w != nil {
		v.unrecorded = w.unrecorded
	}
	a.m[host] = &refusalWindow{since: now, recorded: 1}
	return v
}

// claimedParams reads, for the audit record of a startup refused while
// its parameters were read, the user, database and application_name a
// StartupMessage body claims, whatever else it holds: the first value of
// each, bounded as a session's are. It stops at the first malformed pair.
func claimedParams(body []byte) startupParams {
	var p startupParams
	seen := map[string]bool{}
	for len(body) > 0 {
		key, rest, ok := cstring(body)
		if !ok || key == "" {
			break
		}
		val, rest, ok := cstring(rest)
		if !ok {
			break
		}
		body = rest
		lk := asciiLower(key)
		if seen[lk] {
			continue
		}
		seen[lk] = true
		switch lk {
		case "user":
			p.user = truncateUTF8(val, maxLoginLen)
		case "database":
			p.database = truncateUTF8(val, maxNameLen)
		case "application_name":
			p.applicationName = truncateAppName(val)
		}
	}
	if p.database == "" {
		p.database = p.user
	}
	return p
}

// asciiLower lowers the ASCII letters of s.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// truncateUTF8 cuts s to at most n bytes, at a character boundary.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xc0 == 0x80 {
		n--
	}
	return s[:n]
}

// auditRefused writes r, the connect_refused record of a startup of
// client refused before it authenticated, unless refusals of its address
// are past their bound (see above).
func (s *Server) auditRefused(r *audit.Record, client net.Addr) {
	if s.audit == nil {
		return
	}
	v := s.refusals.admit(startupHostOf(client), time.Now())
	if !v.record {
		s.metrics.refusalUnrecorded()
		return
	}
	var notes []string
	if v.unrecorded > 0 {
		r.Count = v.unrecorded
		notes = append(notes, fmt.Sprintf("%d earlier refused startups of this client address were not recorded", v.unrecorded))
	}
	if v.last {
		notes = append(notes, fmt.Sprintf("%d refused startups of this client address within %s: its next ones are not recorded until %s, only counted",
			refusalAuditBurst, refusalAuditWindow, v.until.UTC().Format(time.RFC3339)))
	}
	r.Message = strings.Join(notes, "; ")
	s.audit.Write(r)
}

// refusedRecord starts the connect_refused record of a startup of client
// refused, before any session existed, for reason (what the client was
// told: resp, its message and SQLSTATE); params are what it claimed, if
// known.
func refusedRecord(client net.Addr, params startupParams, resp *pgproto3.ErrorResponse) *audit.Record {
	r := &audit.Record{
		Event:           "connect_refused",
		User:            params.user,
		Database:        params.database,
		ApplicationName: truncateAppName(params.applicationName),
		Reason:          resp.Message,
		SQLState:        resp.Code,
	}
	if client != nil {
		r.Client = client.String()
	}
	return r
}
