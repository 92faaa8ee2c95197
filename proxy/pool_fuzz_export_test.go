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

// PoolLoginsHeld reports the backends each login with a count holds
// (upstream.pool.max_per_user), by login.
func PoolLoginsHeld(s *Server) map[string]int32 {
	p := s.pool
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]int32{}
	for name, lg := range p.logins {
		out[name] = lg.held.Load()
	}
	return out
}

// PoolStats reports s's pool: open, free and waiting (pool.stats).
func PoolStats(s *Server) (open, free, waiting int) { return s.pool.stats() }
