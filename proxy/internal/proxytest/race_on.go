//go:build race

package proxytest

// RaceEnabled reports whether the tests run under the race detector,
// which slows the proxy several times over: corpora whose worth is the
// number of statements they compare, not the interleavings they make,
// run shorter then (the run without it keeps their full length).
const RaceEnabled = true
