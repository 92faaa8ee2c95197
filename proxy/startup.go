package proxy

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5/pgproto3"
)

// Startup-phase request codes (the int32 after the length).
const (
	sslRequestCode    = 80877103
	gssEncRequestCode = 80877104
	cancelRequestCode = 80877102
)

// maxStartupPacket is PostgreSQL's MAX_STARTUP_PACKET_LENGTH.
const maxStartupPacket = 10000

// startupResult is what the startup phase hands to authentication.
type startupResult struct {
	// conn is the client connection, a *tls.Conn once TLS is negotiated.
	conn net.Conn
	// tls reports whether conn is encrypted.
	tls bool
	// cancel is set when the client sent a CancelRequest instead of a
	// StartupMessage; params is nil then.
	cancel *pgproto3.CancelRequest
	// params are the validated startup parameters; when negotiate
	// refuses the StartupMessage, those it claims (claimedParams), for
	// the audit record of the refusal.
	params startupParams
	// minor is the protocol minor version the client asked for.
	minor uint16
	// unrecognized lists _pq_. protocol options to report in
	// NegotiateProtocolVersion.
	unrecognized []string
}

// startupParams are the client's validated startup parameters.
type startupParams struct {
	user            string
	database        string
	applicationName string
	// forward are the parameters passed on to the upstream session, with
	// the client's spelling of their names.
	forward map[string]string
}

// readStartupPacket reads exactly one startup-phase packet. It never reads
// past the packet, so no plaintext byte can be carried across a TLS
// handshake: the class of CVE-2021-23214 (PostgreSQL) and
// CVE-2021-3935 (PgBouncer). Plaintext sent before the ClientHello lands in
// the TLS handshake, which fails.
//
// A packet starting with a TLS handshake record's first byte is no
// packet (its length would exceed maxStartupPacket): it is returned as
// errDirectTLS, with the four bytes read in body.
func readStartupPacket(r io.Reader) (code uint32, body []byte, err error) {
	var hdr [8]byte
	if _, err := io.ReadFull(r, hdr[:4]); err != nil {
		return 0, nil, err
	}
	if hdr[0] == tlsHandshakeRecord {
		return 0, hdr[:4], errDirectTLS
	}
	n := binary.BigEndian.Uint32(hdr[:4])
	if n < 8 || n > maxStartupPacket {
		return 0, nil, fatalErr(CodeProtocolViolation, "invalid length of startup packet", "", nil)
	}
	buf := make([]byte, n-4)
	if _, err := io.ReadFull(r, buf); err != nil {
		return 0, nil, err
	}
	return binary.BigEndian.Uint32(buf[:4]), buf[4:], nil
}

// negotiate runs the startup phase up to a StartupMessage or a
// CancelRequest: SSLRequest and GSSENCRequest are answered, TLS is set up
// when configured, and startup parameters are checked against the rules
// of parseStartupParams. The result is never nil: on error its conn is the
// connection to report the error on.
func (s *Server) negotiate(conn net.Conn) (*startupResult, error) {
	res := &startupResult{conn: conn}
	sawSSL, sawGSS := false, false
	for first := true; ; first = false {
		code, body, err := readStartupPacket(res.conn)
		if errors.Is(err, errDirectTLS) && first {
			// A ClientHello with no SSLRequest before it: PostgreSQL 17's
			// sslnegotiation=direct.
			sawSSL = true
			if err := s.directTLS(res, body); err != nil {
				return res, err
			}
			continue
		}
		if err != nil {
			if errors.Is(err, errDirectTLS) {
				err = fatalErr(CodeProtocolViolation, "invalid length of startup packet", "", nil)
			}
			return res, err
		}
		switch code {
		case sslRequestCode:
			if sawSSL || res.tls || len(body) != 0 {
				return res, fatalErr(CodeProtocolViolation, "unexpected SSLRequest", "", nil)
			}
			sawSSL = true
			if s.tlsConfig == nil {
				if _, err := res.conn.Write([]byte{'N'}); err != nil {
					return res, err
				}
				continue
			}
			if _, err := res.conn.Write([]byte{'S'}); err != nil {
				return res, err
			}
			tc := tls.Server(res.conn, s.tlsConfig)
			if err := tc.Handshake(); err != nil {
				// Nothing more can be said to a client whose handshake failed.
				return res, fmt.Errorf("tls handshake: %w", err)
			}
			res.conn, res.tls = tc, true
		case gssEncRequestCode:
			if sawGSS || res.tls || len(body) != 0 {
				return res, fatalErr(CodeProtocolViolation, "unexpected GSSENCRequest", "", nil)
			}
			sawGSS = true
			if _, err := res.conn.Write([]byte{'N'}); err != nil {
				return res, err
			}
		case cancelRequestCode:
			var cr pgproto3.CancelRequest
			// CancelRequest.Decode expects the code too.
			full := make([]byte, 4+len(body))
			binary.BigEndian.PutUint32(full, code)
			copy(full[4:], body)
			if err := cr.Decode(full); err != nil || len(cr.SecretKey) != 4 {
				return res, fmt.Errorf("malformed cancel request")
			}
			res.cancel = &cr
			return res, nil
		default:
			major, minor := code>>16, code&0xffff
			if major != 3 {
				return res, fatalErr(CodeFeatureNotSupported,
					fmt.Sprintf("unsupported frontend protocol %d.%d: server supports 3.0", major, minor), "", nil)
			}
			res.minor = uint16(minor)
			if s.tlsConfig != nil && s.cfg.TLS.Require && !res.tls {
				// NOTE: what the client claims, for the audit record
				// of the refusal only.
				res.params = claimedParams(body)
				return res, fatalErr(CodeInvalidAuthorization,
					"pgveil requires an encrypted connection",
					"Connect with sslmode=require (or stronger).", nil)
			}
			params, unrecognized, err := parseStartupParams(body, s.cfg.Upstream.SearchPath)
			if err != nil {
				res.params = claimedParams(body)
				return res, err
			}
			res.params, res.unrecognized = params, unrecognized
			return res, nil
		}
	}
}

// tlsHandshakeRecord is the first byte of a TLS handshake record, hence of
// a ClientHello.
const tlsHandshakeRecord = 0x16

// errDirectTLS reports a ClientHello where a startup packet was expected.
var errDirectTLS = errors.New("TLS handshake instead of a startup packet")

// alpnPostgreSQL is the ALPN protocol of PostgreSQL's direct TLS.
const alpnPostgreSQL = "postgresql"

// directTLS sets up TLS on a connection that opened with a ClientHello
// (hello, its first bytes, already read), as PostgreSQL 17 accepts with
// sslnegotiation=direct: only when TLS is configured, and only with the
// "postgresql" ALPN protocol, which keeps a client of another protocol
// (an HTTPS client led to pgveil's port) from talking to it.
func (s *Server) directTLS(res *startupResult, hello []byte) error {
	if s.directTLSConfig == nil {
		// The client speaks TLS: a plaintext ErrorResponse would be
		// garbage to it. PostgreSQL closes the connection likewise.
		return errors.New("direct TLS connection, but the listen block has no tls block")
	}
	tc := tls.Server(&replayConn{Conn: res.conn, pending: hello}, s.directTLSConfig)
	if err := tc.Handshake(); err != nil {
		return fmt.Errorf("tls handshake (direct): %w", err)
	}
	if tc.ConnectionState().NegotiatedProtocol != alpnPostgreSQL {
		// PostgreSQL refuses the same way, with a TLS alert: a client
		// that did not ask for the "postgresql" protocol is not one.
		_ = tc.Close()
		return errors.New("direct TLS connection without the \"postgresql\" ALPN protocol")
	}
	res.conn, res.tls = tc, true
	return nil
}

// replayConn is a connection whose first reads return pending, bytes
// already read from it.
type replayConn struct {
	net.Conn
	pending []byte
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// forwardedParams are the startup parameters pgveil accepts from clients
// and passes on to the upstream session (keys in lower case, as PostgreSQL
// matches GUC names case-insensitively). They change how values are
// formatted, never how SQL parses or resolves names.
var forwardedParams = map[string]bool{
	"datestyle":                           true,
	"timezone":                            true,
	"intervalstyle":                       true,
	"extra_float_digits":                  true,
	"bytea_output":                        true,
	"lc_monetary":                         true,
	"lc_numeric":                          true,
	"lc_time":                             true,
	"statement_timeout":                   true,
	"lock_timeout":                        true,
	"idle_in_transaction_session_timeout": true,
	"default_transaction_isolation":       true,
	"default_transaction_read_only":       true,
	"default_transaction_deferrable":      true,
	"geqo":                                true,
	"jit":                                 true,
	"work_mem":                            true,
}

// pinnedParams are refused with a message saying pgveil pins them.
//
// NOTE: dialBackend's startup packet pins search_path,
// standard_conforming_strings and client_encoding of these (read back or
// watched); the others keep the server's, database's or service account's
// default, which only the DBA can change (role too): a client can neither
// send them nor SET them (allowedSettings). That holds: pgveil adds no
// comparison with a bare NULL (transform_null_equals: a rule or mask
// reading a missing attribute is FALSE or NULL as a whole, a date or time
// it cannot pin a typed NULL; one a rule's text writes is the DBA's, read
// as the DBA's server reads it), writes no array literal holding NULL
// (array_nulls: lists are ARRAY[…]), and pin standard_conforming_strings on
// (backslash_quote, escape_string_warning); session_replication_role needs
// a superuser, and row_security off fails a read of a table with
// row-level security rather than pass it.
var pinnedParams = map[string]bool{
	"search_path":                 true,
	"standard_conforming_strings": true,
	"client_encoding":             true, // handled before the check, for its values
	"options":                     true,
	"replication":                 true,
	"role":                        true,
	"session_authorization":       true,
	"transform_null_equals":       true,
	"backslash_quote":             true,
	"array_nulls":                 true,
	"escape_string_warning":       true,
	"session_replication_role":    true,
	"row_security":                true,
}

// refusedEncodings are client-only encodings whose multibyte characters
// can contain the bytes of a quote or a backslash: a parser that reads the
// text as UTF-8 and a server converting from the client encoding would see
// different statements.
var refusedEncodings = map[string]string{
	"sjis": "SJIS", "shiftjis": "SJIS", "mskanji": "SJIS", "win932": "SJIS", "windows932": "SJIS",
	"big5": "BIG5", "win950": "BIG5", "windows950": "BIG5",
	"gbk": "GBK", "win936": "GBK", "windows936": "GBK", "cp936": "GBK",
	"gb18030": "GB18030",
	"uhc":     "UHC", "win949": "UHC", "windows949": "UHC", "cp949": "UHC",
}

// normEncoding lowers name and drops what PostgreSQL ignores when it
// matches encoding names (anything but letters and digits).
func normEncoding(name string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// maxNameLen is PostgreSQL's NAMEDATALEN-1, the longest database name;
// maxLoginLen the longest login.
const (
	maxNameLen  = 63
	maxLoginLen = 256
)

// maxParamValueLen bounds the value of a startup parameter pgveil
// forwards: none of them needs more (a time zone's name, a DateStyle), and
// in transaction mode each distinct set of values is a key of the pool.
const maxParamValueLen = 256

// parseStartupParams decodes the key/value pairs of a StartupMessage and
// applies pgveil's startup rules, given pinnedSearch, the search_path
// pgveil pins upstream. It returns a FATAL clientError for the first rule
// broken.
func parseStartupParams(body []byte, pinnedSearch string) (startupParams, []string, error) {
	p := startupParams{forward: map[string]string{}}
	var unrecognized []string
	seen := map[string]bool{}
	for {
		i := bytes.IndexByte(body, 0)
		if i < 0 {
			return p, nil, fatalErr(CodeProtocolViolation, "invalid startup packet layout: expected terminator as last byte", "", nil)
		}
		if i == 0 {
			if len(body) != 1 {
				return p, nil, fatalErr(CodeProtocolViolation, "invalid startup packet layout: expected terminator as last byte", "", nil)
			}
			break
		}
		key := string(body[:i])
		body = body[i+1:]
		j := bytes.IndexByte(body, 0)
		if j < 0 {
			return p, nil, fatalErr(CodeProtocolViolation, "invalid startup packet layout: expected terminator as last byte", "", nil)
		}
		val := string(body[:j])
		body = body[j+1:]
		lk := strings.ToLower(key)
		if seen[lk] {
			return p, nil, fatalErr(CodeProtocolViolation, fmt.Sprintf("duplicate startup parameter %q", key), "", nil)
		}
		seen[lk] = true

		switch {
		case strings.HasPrefix(key, "_pq_."):
			unrecognized = append(unrecognized, key)
		case lk == "user":
			p.user = val
		case lk == "database":
			p.database = val
		case lk == "application_name":
			p.applicationName = val
		case lk == "client_encoding":
			switch e := normEncoding(val); {
			case e == "utf8" || e == "unicode" || e == "sqlascii" || e == "auto":
			case refusedEncodings[e] != "":
				return p, nil, fatalErr(CodeInsufficientPrivilege,
					fmt.Sprintf("client_encoding %q is refused by pgveil", val),
					"Its multibyte characters can hide quote and backslash bytes from the SQL parser. Use UTF8.", nil)
			default:
				return p, nil, fatalErr(CodeFeatureNotSupported,
					fmt.Sprintf("client_encoding %q is not supported by pgveil", val),
					"pgveil speaks UTF8 to clients. Use client_encoding=UTF8.", nil)
			}
		case lk == "options":
			if err := startupOptions(val, p.forward, seen); err != nil {
				return p, nil, err
			}
		case lk == "ssl_renegotiation_limit" && val == "0":
			// Npgsql 4 (Power BI's) and older drivers send it on TLS
			// connections; PostgreSQL accepts 0 only, and renegotiates
			// nothing. pgveil owns the upstream connection: dropped.
		case lk == "search_path" && samePath(val, pinnedSearch):
			// PgJDBC's currentSchema=public: the value pinned already.
		case lk == "replication":
			return p, nil, fatalErr(CodeInsufficientPrivilege,
				"replication connections are not allowed through pgveil", "", nil)
		case pinnedParams[lk]:
			return p, nil, fatalErr(CodeInsufficientPrivilege,
				fmt.Sprintf("the startup parameter %q is pinned by pgveil and cannot be set", key),
				"Remove it from the connection settings.", nil)
		case forwardedParams[lk]:
			if len(val) > maxParamValueLen {
				return p, nil, fatalErr(CodeInvalidParameterValue,
					fmt.Sprintf("the value of startup parameter %q is longer than %d bytes", key, maxParamValueLen), "", nil)
			}
			p.forward[key] = val
		default:
			return p, nil, fatalErr(CodeInsufficientPrivilege,
				fmt.Sprintf("the startup parameter %q is not allowed through pgveil", key),
				"Remove it from the connection settings; see the README for the parameters pgveil accepts.", nil)
		}
	}
	if p.user == "" {
		return p, nil, fatalErr(CodeInvalidAuthorization, "no PostgreSQL user name specified in startup packet", "", nil)
	}
	// Bounded, to keep them out of the logs and the audit trail. A login
	// is pgveil's, not a PostgreSQL role: an e-mail address may be one.
	// The database is PostgreSQL's, at most NAMEDATALEN-1 bytes.
	if len(p.user) > maxLoginLen {
		return p, nil, fatalErr(CodeInvalidAuthorization, fmt.Sprintf("the user name is longer than %d bytes", maxLoginLen), "", nil)
	}
	if len(p.database) > maxNameLen {
		return p, nil, fatalErr(CodeInvalidCatalogName, fmt.Sprintf("the database name is longer than %d bytes", maxNameLen), "", nil)
	}
	if p.database == "" {
		p.database = p.user
	}
	return p, unrecognized, nil
}

// startupOptions applies the startup parameter options, command-line
// switches for the server: only "-c name=value" and "--name=value" of a
// setting pgveil forwards (forwardedParams), each set once, which it adds
// to forward. seen holds the names set so far, in lower case.
func startupOptions(options string, forward map[string]string, seen map[string]bool) error {
	refuse := func(what string) error {
		// NOTE: what echoes the client's text: at most a name's length.
		if len(what) > 2*maxNameLen {
			what = what[:2*maxNameLen] + "…"
		}
		return fatalErr(CodeInsufficientPrivilege,
			fmt.Sprintf("the startup parameter \"options\" is not allowed through pgveil with %s", what),
			"Only -c name=value of a setting pgveil accepts at startup may be given in options (or PGOPTIONS); see the README.", nil)
	}
	args := splitOptions(options)
	for i := 0; i < len(args); i++ {
		var set string
		switch a := args[i]; {
		case a == "-c":
			if i+1 == len(args) {
				return refuse(`"-c" and no setting`)
			}
			i++
			set = args[i]
		case strings.HasPrefix(a, "-c"):
			set = a[2:]
		case strings.HasPrefix(a, "--"):
			set = a[2:]
		default:
			return refuse(fmt.Sprintf("%q", a))
		}
		name, val, ok := strings.Cut(set, "=")
		if !ok {
			return refuse(fmt.Sprintf("%q", set))
		}
		// PostgreSQL reads dashes in the name as underscores.
		lk := strings.ToLower(strings.ReplaceAll(name, "-", "_"))
		if !forwardedParams[lk] {
			return refuse(fmt.Sprintf("the setting %q", name))
		}
		if seen[lk] {
			return fatalErr(CodeProtocolViolation, fmt.Sprintf("duplicate startup parameter %q", name), "", nil)
		}
		if len(val) > maxParamValueLen {
			return fatalErr(CodeInvalidParameterValue,
				fmt.Sprintf("the value of setting %q in options is longer than %d bytes", name, maxParamValueLen), "", nil)
		}
		seen[lk] = true
		forward[lk] = val
	}
	return nil
}

// splitOptions splits options into arguments as PostgreSQL does
// (pg_split_opts): at unescaped white space, a backslash escaping the
// character after it.
func splitOptions(options string) []string {
	var out []string
	var b strings.Builder
	in, esc := false, false
	for _, r := range options {
		switch {
		case esc:
			b.WriteRune(r)
			esc = false
		case r == '\\':
			esc, in = true, true
		case r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '\f' || r == '\v':
			if in {
				out = append(out, b.String())
				b.Reset()
				in = false
			}
		default:
			b.WriteRune(r)
			in = true
		}
	}
	if in {
		out = append(out, b.String())
	}
	return out
}

// samePath reports whether the search_path settings a and b name the
// same schemas in the same order.
func samePath(a, b string) bool {
	sa := searchPathSchemas(a)
	return sa != nil && slices.Equal(sa, searchPathSchemas(b))
}

// searchPathSchemas reads a search_path setting as PostgreSQL does: a
// list of names, separated by commas, an unquoted name downcased and a
// quoted one kept as written. It returns nil for a list it cannot read.
func searchPathSchemas(setting string) []string {
	var out []string
	s := strings.TrimSpace(setting)
	for s != "" {
		var name string
		if s[0] == '"' {
			var b strings.Builder
			i := 1
			for {
				j := strings.IndexByte(s[i:], '"')
				if j < 0 {
					return nil
				}
				b.WriteString(s[i : i+j])
				i += j + 1
				if i < len(s) && s[i] == '"' {
					b.WriteByte('"')
					i++
					continue
				}
				break
			}
			name, s = b.String(), strings.TrimSpace(s[i:])
		} else {
			j := strings.IndexByte(s, ',')
			if j < 0 {
				j = len(s)
			}
			name, s = strings.ToLower(strings.TrimSpace(s[:j])), s[j:]
			if name == "" || strings.ContainsAny(name, " \t\"") {
				return nil
			}
		}
		out = append(out, name)
		if s == "" {
			break
		}
		if s[0] != ',' {
			return nil
		}
		s = strings.TrimSpace(s[1:])
		if s == "" {
			return nil
		}
	}
	return out
}

// isClosedConn reports whether err only says the peer went away.
func isClosedConn(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed)
}
