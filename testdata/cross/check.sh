#!/bin/sh
# check.sh: does pgveil build for other systems than Linux? Run by
# `make cross` (and `make test`). For each GOOS given (default darwin and
# windows), with CGO_ENABLED=0:
#
#  1. every package that does not import pg_query (whose parser is C, so
#     needs cgo) builds as it is;
#  2. every other package builds against a copy of pg_query with
#     pg_query_stub.go and parser_stub.go in place of its cgo code: the check that they
#     hold no Linux-only code outside files tagged for Linux.
set -eu
GO=${GO:-go}
cd "$(dirname "$0")/../.."
root=$PWD
oses=${*:-darwin windows}

# NOTE: a directory of its own per checkout, kept between runs: the Go
# build cache keys packages by the replaced module's path, so a fresh
# directory would compile pg_query's 40 000 lines of protobuf each time.
tmp=${TMPDIR:-/tmp}/pgveil-cross-$(printf '%s' "$root" | cksum | cut -d' ' -f1)
rm -rf "$tmp"

# NOTE: packages of tests only (proxy/adversarial, proxy/reload) have no
# files to build: go build refuses them by name.
pure=$($GO list -f '{{if or .GoFiles .CgoFiles}}{{.ImportPath}} {{join .Deps " "}}{{end}}' ./... | grep -v 'pganalyze/pg_query_go' | cut -d' ' -f1)
for need in proxy/wire internal/pgtest internal/scram cmd/pgveil-demo cmd/pgveil-bench; do
	if ! printf '%s\n' $pure | grep -qx "github.com/pgveil/pgveil/$need"; then
		echo "cross: $need imports pg_query (cgo); it must not" >&2
		exit 1
	fi
done

# A copy of pg_query's Go sources with the stub, for the second build.
mod=$($GO list -m -f '{{.Dir}}' github.com/pganalyze/pg_query_go/v6)
mkdir -p "$tmp/pg_query/parser"
cp "$mod"/go.mod "$mod"/*.go "$tmp/pg_query/"
cp "$mod"/parser/*.go "$tmp/pg_query/parser/"
rm -f "$tmp/pg_query/"*_test.go
cp testdata/cross/pg_query_stub.go "$tmp/pg_query/pg_query_nocgo.go"
cp testdata/cross/parser_stub.go "$tmp/pg_query/parser/parser_nocgo.go"
cp go.mod "$tmp/go.mod"
cp go.sum "$tmp/go.sum"
echo "replace github.com/pganalyze/pg_query_go/v6 => $tmp/pg_query" >>"$tmp/go.mod"

for os in $oses; do
	echo "cross: GOOS=$os CGO_ENABLED=0: $(printf '%s\n' $pure | sed 's|github.com/pgveil/pgveil/||' | tr '\n' ' ')"
	# shellcheck disable=SC2086
	GOOS=$os CGO_ENABLED=0 $GO build $pure
	echo "cross: GOOS=$os CGO_ENABLED=0, pg_query stubbed: ./..."
	GOOS=$os CGO_ENABLED=0 $GO build -modfile="$tmp/go.mod" ./...
done
