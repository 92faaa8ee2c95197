//go:build !unix

package main

import "math"

// raiseFileLimit does nothing: there is no RLIMIT_NOFILE here. It returns
// no limit.
func raiseFileLimit() (uint64, error) { return math.MaxUint64, nil }
