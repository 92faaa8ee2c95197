//go:build unix

package main

import "syscall"

// accessible reports whether the real user may access path in mode, a
// mask of access(2)'s W_OK (2), X_OK (1) and R_OK (4).
func accessible(path string, mode uint32) bool {
	return syscall.Access(path, mode) == nil
}
