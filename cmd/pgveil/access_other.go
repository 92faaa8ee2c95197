//go:build !unix

package main

// accessible reports true: outside Unix there is no access(2) to ask, and
// pgveil serve reports an audit file it cannot write when it opens it.
func accessible(path string, mode uint32) bool { return true }
