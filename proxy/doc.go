// Package proxy is pgveil's PostgreSQL wire-protocol proxy: the sessions.
// The process around it (enforcement loading, reload, audit trail, admin
// endpoint) is package server's; the framing beneath it package wire's.
//
// A Server, made by New from a Config of its own, accepts client
// connections and runs each through three phases:
//
//   - startup (startup.go): SSLRequest/GSSENCRequest negotiation, TLS, and
//     the StartupMessage, whose parameters are checked against an
//     allow-list; a CancelRequest is matched against the keys pgveil issued
//     (cancel.go) and forwarded upstream.
//   - authentication (auth.go): SCRAM-SHA-256, optionally channel-bound,
//     against the verifiers of the configuration; then the upstream session
//     is dialed with pgconn as the service account and hijacked
//     (upstream.go).
//   - relay (relay.go): messages move between client and upstream. Only
//     the messages the proxy must understand are decoded: statement texts
//     (Query, Parse) pass through the Rewriter hook; the results stream
//     back undecoded through fixed buffers (package wire). On Linux a
//     plaintext session relays on an event loop (loop_linux.go), which
//     hands what it must not do inline to worker goroutines; a TLS session
//     relays on two goroutines of its own. Both run the same per-message
//     code (clientMessage, upstreamHeader, upstreamMessage).
//
// A Rewriter refuses a statement by returning an error; the refusal reaches
// the client in the statement's place with PostgreSQL's own error
// semantics (see session.refuse).
//
// NOTE: every error a client can provoke ends in an ErrorResponse and, for
// session-level errors, a closed connection; none panics, and every
// goroutine a session starts ends with it.
package proxy
