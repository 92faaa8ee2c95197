// Package wire frames the PostgreSQL protocol for the proxy's sessions:
// a Reader that reads messages through one fixed buffer and streams the
// ones the proxy does not decode, a Writer that batches what a session
// sends, and NewRawIO, the socket I/O beneath them.
//
// The raw system calls of NewRawIO are Linux's (rawio_linux.go); every
// other system reads and writes through the ordinary net.Conn
// (rawio_other.go), so the package builds without cgo everywhere. So is
// FD (fd_linux.go), a socket taken out of Go's poller for the proxy's
// event loops: non-blocking for the loop, waiting in poll(2) for a worker.
// Readers and Writers on an FD never block: a Writer keeps what the
// socket would not take, and both give their buffers back to a pool when
// a session goes idle (pool.go).
//
// NOTE: the package knows framing only: a type byte and a length. What
// the messages mean is the session's business (package proxy).
package wire
