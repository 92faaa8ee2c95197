package proxy

// This file holds the tracker's events of the backend relay: the
// upstream's answers (ParseComplete, BindComplete, CloseComplete,
// ErrorResponse, ReadyForQuery) and the executions they finish.

// bindComplete notes a BindComplete the upstream sent (backend relay).
func (t *tracker) bindComplete() {
	t.shared.mu.Lock()
	if len(t.shared.awaitingBinds) > 0 && t.shared.awaitingBinds[0].pos == t.bindSeen {
		t.shared.awaitingBinds[0].e.confirmed.Store(true)
		t.shared.awaitingBinds[0].e = nil
		t.shared.awaitingBinds = t.shared.awaitingBinds[1:]
	}
	t.bindSeen++
	t.shared.mu.Unlock()
}

// next returns the execution the upstream's next answer belongs to,
// taking it from the queue when it belongs to the batch being answered
// (backend relay). It returns nil when nothing is awaited.
func (t *tracker) next(answering int64) *execution {
	if t.cur != nil {
		return t.cur
	}
	t.shared.mu.Lock()
	if len(t.shared.pending) > 0 && t.shared.pending[0].batch <= answering {
		t.cur = t.shared.pending[0]
		t.shared.pending[0] = nil
		t.shared.pending = t.shared.pending[1:]
	}
	t.shared.mu.Unlock()
	return t.cur
}

// closeBatch returns the executions of the batches answered so far that
// are still waiting: the server skipped them after an error (backend
// relay).
func (t *tracker) closeBatch(done int64) []*execution {
	t.shared.mu.Lock()
	defer t.shared.mu.Unlock()
	n := 0
	for n < len(t.shared.pending) && t.shared.pending[n].batch <= done {
		n++
	}
	if n == 0 {
		return nil
	}
	out := make([]*execution, n)
	copy(out, t.shared.pending[:n])
	clear(t.shared.pending[:n])
	t.shared.pending = t.shared.pending[n:]
	return out
}

// swallow reports whether a ParseComplete or CloseComplete answers an
// injected message, which the client must not see (backend relay).
func (t *tracker) swallow(answering int64) bool {
	t.shared.mu.Lock()
	defer t.shared.mu.Unlock()
	if len(t.shared.injected) > 0 {
		in := t.shared.injected[0]
		if in.batch == answering && in.after == t.pcSeen {
			in.answers--
			if in.answers == 0 {
				// The Parse is answered: the upstream holds the
				// statement of in.info's policy.
				in.info.confirmed.Store(true)
				t.shared.injected = t.shared.injected[1:]
			}
			return true
		}
	}
	if len(t.shared.awaiting) > 0 && t.shared.awaiting[0].pos == t.pcSeen {
		t.shared.awaiting[0].confirmed.Store(true)
		t.shared.awaiting = t.shared.awaiting[1:]
	}
	t.pcSeen++
	return false
}

// readyForQuery closes batch number done: the object changes of its
// statements are resolved, injections the server skipped after an error
// are dropped (their statements stay unconfirmed and are prepared again
// at their next Bind), and the client's skipped Parse and Close messages
// are counted as answered (backend relay).
func (t *tracker) readyForQuery(done int64) {
	t.shared.mu.Lock()
	defer t.shared.mu.Unlock()
	for len(t.shared.objPending) > 0 && t.shared.objPending[0].batch <= done {
		c := t.shared.objPending[0]
		c.failed = t.batchErr
		t.shared.objResolved = append(t.shared.objResolved, c)
		t.shared.resolvedN.Add(1)
		t.shared.objPending = t.shared.objPending[1:]
	}
	t.batchErr = false
	if t.versions == nil {
		return
	}
	for len(t.shared.injected) > 0 && t.shared.injected[0].batch <= done {
		t.shared.injected = t.shared.injected[1:]
	}
	for len(t.shared.awaiting) > 0 && t.shared.awaiting[0].batch <= done {
		t.shared.awaiting = t.shared.awaiting[1:]
	}
	for len(t.shared.awaitingBinds) > 0 && t.shared.awaitingBinds[0].batch <= done {
		t.shared.awaitingBinds[0].e = nil
		t.shared.awaitingBinds = t.shared.awaitingBinds[1:]
	}
	for len(t.shared.batchPC) > 0 && t.shared.batchPC[0].batch <= done {
		t.pcSeen, t.bindSeen = t.shared.batchPC[0].pc, t.shared.batchPC[0].binds
		t.shared.batchPC = t.shared.batchPC[1:]
	}
}

// sawError notes an ErrorResponse of the batch being answered (backend
// relay).
func (t *tracker) sawError() {
	t.batchErr = true
}
