package audit

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a test leaves a goroutine behind: every
// Log's writer must end with Close.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
