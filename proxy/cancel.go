package proxy

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"sync"
)

// cancelRegistry maps the BackendKeyData pgveil gave each client to its
// session. Clients never learn the upstream backend's own key, so a
// CancelRequest reaches the upstream only through a key pgveil issued.
//
// NOTE: keys are random; a forged or stale key matches nothing, and the
// secret is compared in constant time.
type cancelRegistry struct {
	mu sync.Mutex
	m  map[uint32]*session
}

// register issues a fresh key for ss.
func (r *cancelRegistry) register(ss *session) (pid uint32, secret [4]byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = map[uint32]*session{}
	}
	var b [8]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			panic("pgveil: crypto/rand failed: " + err.Error())
		}
		// Positive, non-zero, like a real pid.
		pid = binary.BigEndian.Uint32(b[:4]) & 0x7fffffff
		if pid != 0 && r.m[pid] == nil {
			break
		}
	}
	copy(secret[:], b[4:])
	r.m[pid] = ss
	return pid, secret
}

// lookup returns the session whose key is (pid, secret), or nil.
func (r *cancelRegistry) lookup(pid uint32, secret []byte) *session {
	r.mu.Lock()
	ss := r.m[pid]
	r.mu.Unlock()
	if ss == nil || subtle.ConstantTimeCompare(ss.secret[:], secret) != 1 {
		return nil
	}
	return ss
}

// remove forgets the key of ss.
func (r *cancelRegistry) remove(ss *session) {
	r.mu.Lock()
	if r.m[ss.pid] == ss {
		delete(r.m, ss.pid)
	}
	r.mu.Unlock()
}
