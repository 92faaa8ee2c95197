package pgtest

// SetPickPort replaces the port picker for a test and returns a function
// that restores it.
func SetPickPort(f func() (int, error)) (restore func()) {
	old := pickPort
	pickPort = f
	return func() { pickPort = old }
}
