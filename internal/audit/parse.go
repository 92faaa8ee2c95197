package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// lineEndLen is the length of `,"mac":"<64 hex>"}`.
const lineEndLen = len(macField) + 64 + 2

// wireEntry is a line as encoding/json sees it.
type wireEntry struct {
	Seq              *uint64     `json:"seq"`
	Time             string      `json:"time"`
	Chain            string      `json:"chain"`
	Event            string      `json:"event"`
	Session          string      `json:"session"`
	User             string      `json:"user"`
	ActingFor        string      `json:"acting_for"`
	ActingForBefore  string      `json:"acting_for_before"`
	Roles            []string    `json:"roles"`
	ActingRoles      []string    `json:"acting_roles"`
	Client           string      `json:"client"`
	ApplicationName  string      `json:"application_name"`
	Database         string      `json:"database"`
	BackendPID       uint32      `json:"backend_pid"`
	Kind             string      `json:"kind"`
	SQL              string      `json:"sql"`
	Params           string      `json:"params"`
	Fingerprint      string      `json:"fingerprint"`
	Rewritten        string      `json:"rewritten"`
	RewrittenSHA256  string      `json:"rewritten_sha256"`
	Tables           []string    `json:"tables"`
	Rules            []string    `json:"rules"`
	Columns          []string    `json:"columns"`
	Masked           []string    `json:"masked"`
	Decision         string      `json:"decision"`
	Reason           string      `json:"reason"`
	SQLState         string      `json:"sqlstate"`
	Message          string      `json:"message"`
	Rows             int64       `json:"rows"`
	Affected         int64       `json:"affected"`
	Bytes            int64       `json:"bytes"`
	DurationMS       json.Number `json:"duration_ms"`
	UpstreamError    string      `json:"upstream_error"`
	PolicyVersion    string      `json:"policy_version"`
	OldPolicyVersion string      `json:"old_policy_version"`
	Count            int64       `json:"count"`
	Prev             string      `json:"prev"`
	MAC              string      `json:"mac"`
}

// ParseLine parses one line of the audit trail (with or without its
// newline). It checks the line's shape — one JSON object ending with the
// mac field, seq, time, event and prev present — but not its MAC: see
// Verify. The error says what is wrong, without the line's content.
func ParseLine(line []byte) (*Entry, error) {
	line = bytes.TrimSuffix(line, []byte("\n"))
	if _, err := signedPart(line); err != nil {
		return nil, err
	}
	var w wireEntry
	if err := json.Unmarshal(line, &w); err != nil {
		return nil, fmt.Errorf("not a JSON object: %w", jsonProblem(err))
	}
	e := &Entry{
		Record: Record{
			Event:            w.Event,
			Session:          w.Session,
			User:             w.User,
			ActingFor:        w.ActingFor,
			ActingForBefore:  w.ActingForBefore,
			Roles:            w.Roles,
			ActingRoles:      w.ActingRoles,
			Client:           w.Client,
			ApplicationName:  w.ApplicationName,
			Database:         w.Database,
			BackendPID:       w.BackendPID,
			Kind:             w.Kind,
			SQL:              w.SQL,
			Params:           w.Params,
			Rewritten:        w.Rewritten,
			Tables:           w.Tables,
			Rules:            w.Rules,
			Columns:          w.Columns,
			Masked:           w.Masked,
			Decision:         w.Decision,
			Reason:           w.Reason,
			SQLState:         w.SQLState,
			Message:          w.Message,
			Rows:             w.Rows,
			Affected:         w.Affected,
			Bytes:            w.Bytes,
			UpstreamError:    w.UpstreamError,
			PolicyVersion:    w.PolicyVersion,
			OldPolicyVersion: w.OldPolicyVersion,
			Count:            w.Count,
			Fingerprint:      w.Fingerprint,
		},
		Chain:           w.Chain,
		RewrittenSHA256: w.RewrittenSHA256,
		Prev:            w.Prev,
		MAC:             w.MAC,
	}
	switch {
	case w.Seq == nil:
		return nil, errors.New(`no "seq" field`)
	case w.Time == "":
		return nil, errors.New(`no "time" field`)
	case w.Event == "":
		return nil, errors.New(`no "event" field`)
	case !isHexMAC(w.Prev):
		return nil, errors.New(`"prev" is not 64 hex digits`)
	case !isHexMAC(w.MAC):
		return nil, errors.New(`"mac" is not 64 hex digits`)
	}
	e.Seq = *w.Seq
	t, err := time.Parse(time.RFC3339Nano, w.Time)
	if err != nil || !strings.HasSuffix(w.Time, "Z") {
		return nil, fmt.Errorf(`"time" is not an RFC 3339 time in UTC: %q`, w.Time)
	}
	e.Time = t.UTC()
	if w.DurationMS != "" {
		if e.Duration, err = parseMilliseconds(string(w.DurationMS)); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// signedPart returns the bytes of a line (without newline) that its MAC
// covers, after checking that the line ends with the mac field.
func signedPart(line []byte) ([]byte, error) {
	n := len(line) - lineEndLen
	if n < 1 || line[0] != '{' || !bytes.HasPrefix(line[n:], []byte(macField)) ||
		!bytes.HasSuffix(line, []byte(`"}`)) || !isHexMAC(string(line[n+len(macField):len(line)-2])) {
		return nil, notRecord(line)
	}
	return line[:n], nil
}

// recordStart is how every line the writer writes begins.
const recordStart = `{"seq":`

// notRecord describes a line that does not end with a mac field: the
// beginning of a record cut short (by a crash), or something else.
func notRecord(line []byte) error {
	switch {
	case len(line) == 0:
		return errors.New("an empty line, not a record")
	case bytes.HasPrefix(line, []byte{0x1f, 0x8b}):
		return errors.New("not a record: gzip data (decompress rotated files before verifying or searching them)")
	case !utf8.Valid(line) || bytes.IndexByte(line, 0) >= 0:
		return errors.New("not a record: binary data (a compressed or foreign file?)")
	case bytes.HasPrefix(line, []byte(recordStart)) || bytes.HasPrefix([]byte(recordStart), line):
		return errors.New(`the line does not end with a "mac" field (a partial line?)`)
	default:
		return fmt.Errorf("not a record: the line does not begin with %s and end with a \"mac\" field", recordStart)
	}
}

// jsonProblem keeps the useful part of an encoding/json error.
func jsonProblem(err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("%s at byte %d", strings.TrimPrefix(se.Error(), "json: "), se.Offset)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Errorf("field %q has the wrong type (%s)", te.Field, te.Value)
	}
	return err
}

// parseMilliseconds parses duration_ms. Decimals of at most six digits
// are read exactly; other numbers are rounded to the nanosecond.
func parseMilliseconds(s string) (time.Duration, error) {
	bad := fmt.Errorf(`"duration_ms" is not a number of milliseconds: %q`, s)
	neg := strings.HasPrefix(s, "-")
	digits := strings.TrimPrefix(s, "-")
	whole, frac, hasFrac := strings.Cut(digits, ".")
	if !strings.ContainsAny(digits, "eE") && len(frac) <= 6 && (!hasFrac || frac != "") {
		w, err := strconv.ParseUint(whole, 10, 64)
		if err != nil || w > math.MaxInt64/1_000_000 {
			return 0, bad
		}
		var f uint64
		if frac != "" {
			if f, err = strconv.ParseUint(frac+strings.Repeat("0", 6-len(frac)), 10, 64); err != nil {
				return 0, bad
			}
		}
		d := time.Duration(w*1e6 + f)
		if d < 0 {
			return 0, bad
		}
		if neg {
			d = -d
		}
		return d, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.Abs(f*1e6) >= math.MaxInt64 {
		return 0, bad
	}
	return time.Duration(math.Round(f * 1e6)), nil
}
