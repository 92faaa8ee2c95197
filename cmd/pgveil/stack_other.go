//go:build !unix

package main

// ensureStack checks nothing where threads' stacks are not sized by
// RLIMIT_STACK.
func ensureStack() error { return nil }
