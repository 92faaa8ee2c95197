//go:build !linux

package proxy

// Outside Linux every session relays on its goroutines: the event loops
// (loop_linux.go) are built on epoll.

type eventLoops struct{}

// eventLoop is never made outside Linux.
type eventLoop struct{}

func newEventLoops(*Server) *eventLoops { return nil }

func (*eventLoops) adopt(*session) bool { return false }

func (*eventLoops) stopAll() {}

// loopState is never set outside Linux.
type loopState struct{ inline bool }

func (*loopState) endLoop(*session, []byte) {}

func (*loopState) backendMode(*backend) {}

func (*eventLoops) reclaim() {}

// returnUnused gives back a backend the session took and did not use.
func (pl *poolLink) returnUnused(b *backend) { pl.pool.release(b) }
