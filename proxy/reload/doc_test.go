// Package reload_test holds what sessions meet across a policy reload:
// statements prepared, portals bound and cursors declared under the old
// policy, reloads under load and while logins come and go, names of any
// length followed through them.
//
// It is a test binary of its own, beside the proxy package's, so that
// each runs under go test's ten-minute alarm with the race detector;
// both share proxy/internal/proxytest.
package reload_test
