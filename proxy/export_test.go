package proxy

import "time"

// DelayPooledFlushes makes every pooled flush wait d between its write
// and its bookkeeping, until the returned func undoes it.
func DelayPooledFlushes(d time.Duration) (undo func()) {
	f := func() { time.Sleep(d) }
	afterPooledFlush.Store(&f)
	return func() { afterPooledFlush.Store(nil) }
}
