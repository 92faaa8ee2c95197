package proxy

import "fmt"

// PoolRedStats reports s's pool (open, free, waiting) and, for each
// transaction-mode session holding a backend, what holds it.
func PoolRedStats(s *Server) string {
	open, free, waiting := s.pool.stats()
	out := fmt.Sprintf("pool: %d open, %d free, %d waiting;", open, free, waiting)
	for _, ss := range s.pooledSessions() {
		pl := ss.pl
		pl.mu.Lock()
		if pl.b != nil {
			out += fmt.Sprintf(" [session %s: keeps %q open %v flushing %v parked %v ended %v sent %d done %d tx %c copyIn %v swallow %d pending %d]",
				ss.info.User, pl.keeps, pl.open, pl.flushing, pl.parked, pl.ended, ss.sent.Load(), ss.done.Load(), rune(ss.txStatus.Load()), ss.serverCopyIn.Load(), pl.swallow, pl.b.out.Pending())
		}
		pl.mu.Unlock()
	}
	return out
}
