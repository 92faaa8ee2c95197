//go:build !linux

package wire

import "net"

// Takeable reports false: outside Linux no socket leaves Go's poller (see
// fd_linux.go).
func Takeable(net.Conn) bool { return false }
