package rewrite

// Internals the external tests check against a real PostgreSQL.
var (
	LeakproofPairs  = leakproofPairs
	PushComparisons = pushComparisons
)
