//go:build !linux

package proxy

import (
	"net"
)

// watchHangUp is nil outside Linux: a session waiting for a pooled
// backend learns that its client left at the end of its wait.
func watchHangUp(stop <-chan struct{}, c net.Conn) <-chan struct{} { return nil }

func (*loopState) watchClientHangUp(stop <-chan struct{}) <-chan struct{} { return nil }
