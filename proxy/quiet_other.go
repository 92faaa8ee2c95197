//go:build !unix

package proxy

import "net"

// connQuiet reports whether c is open with nothing to read; without a
// non-blocking peek it trusts the connection, and a closed one fails
// the transaction that uses it.
func connQuiet(net.Conn) bool { return true }
