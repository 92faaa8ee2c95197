//go:build !race

package proxytest

// RaceEnabled: see race_on_test.go.
const RaceEnabled = false
