//go:build !cgo

// This file is not part of pgveil's build. `make cross` lays it over the
// module cache's copy of github.com/pganalyze/pg_query_go/v6 (go build
// -overlay) as pg_query_nocgo.go, so that the packages that need pg_query's
// C parser compile for other systems without cgo: the check that they hold
// no Linux-only code outside files tagged for Linux. The functions match
// pg_query.go's (built with cgo only) and are never run.

package pg_query

import "errors"

// errNoCgo is what every function would return: the parser needs cgo.
var errNoCgo = errors.New("pg_query: built without cgo (make cross's type-check stub)")

func Scan(input string) (*ScanResult, error)                          { return nil, errNoCgo }
func ParseToJSON(input string) (string, error)                        { return "", errNoCgo }
func Parse(input string) (*ParseResult, error)                        { return nil, errNoCgo }
func Deparse(tree *ParseResult) (string, error)                       { return "", errNoCgo }
func ParsePlPgSqlToJSON(input string) (string, error)                 { return "", errNoCgo }
func Normalize(input string) (string, error)                          { return "", errNoCgo }
func NormalizeUtility(input string) (string, error)                   { return "", errNoCgo }
func Fingerprint(input string) (string, error)                        { return "", errNoCgo }
func FingerprintToUInt64(input string) (uint64, error)                { return 0, errNoCgo }
func HashXXH3_64(input []byte, seed uint64) uint64                    { return 0 }
func SplitWithScanner(input string, trimSpace bool) ([]string, error) { return nil, errNoCgo }
func SplitWithParser(input string, trimSpace bool) ([]string, error)  { return nil, errNoCgo }
func IsUtilityStmt(input string) ([]bool, error)                      { return nil, errNoCgo }
func Summary(input string, truncateLimit int) (*SummaryResult, error) { return nil, errNoCgo }
