// Package wire frames the PostgreSQL protocol for the proxy's sessions:
// a Reader that reads messages through one fixed buffer and streams the
// ones the proxy does not decode, a Writer that batches what a session
// sends, and NewRawIO, the socket I/O beneath them.
//
// The raw system calls of NewRawIO are Linux's (rawio_linux.go); every
// other system reads and writes through the ordinary net.Conn
// (rawio_other.go), so the package builds without cgo everywhere.
//
// NOTE: the package knows framing only: a type byte and a length. What
// the messages mean is the session's business (package proxy).
package wire
