// Package pgtree walks pg_query's syntax trees: the one place that knows
// which messages lie below which.
//
// Children and Equal are generated from pg_query's types (go generate
// runs ./gen). Children is a type switch over every message of the tree: walking with it
// costs a fraction of protobuf reflection (protoreflect's Range), which
// the rewriter's walk of every statement used to spend most of its time
// in. TestChildrenMatchReflection holds it to protobuf reflection on real
// statements, and TestGeneratedIsCurrent to the pg_query release the
// module uses. Equal compares two trees field by field, locations aside,
// as proto.Equal would once their locations are cleared
// (TestEqualIsProtoEqualLocationsAside).
package pgtree

//go:generate go run ./gen .
