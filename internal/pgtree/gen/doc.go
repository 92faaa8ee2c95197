// Command gen writes children.go and equal.go into the directory it is
// given: for every message type of pg_query's syntax tree, the code that
// lists the messages directly below one and the code that compares two,
// read from the types themselves, so that a new pg_query release is a
// `go generate` away.
package main
