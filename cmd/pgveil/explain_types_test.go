package main

import (
	"reflect"
	"testing"

	pg_query "github.com/pganalyze/pg_query_go/v6"

	"github.com/pgveil/pgveil/rewrite"
)

// accessPolicy answers every relation with one access.
type accessPolicy struct {
	rewrite.Policy
	acc rewrite.Access
}

func (p accessPolicy) Relation(*rewrite.Relation) rewrite.Access { return p.acc }

func TestServedTypes(t *testing.T) {
	orders := &rewrite.Relation{QName: rewrite.QName{Schema: "public", Name: "orders"},
		Columns: []rewrite.Column{{Name: "customer_id", Type: "integer"}, {Name: "email", Type: "text"}}}
	cat := &rewrite.Catalog{Relations: map[rewrite.QName]*rewrite.Relation{orders.QName: orders}}
	int8 := &pg_query.TypeName{Names: []*pg_query.Node{pg_query.MakeStrNode("pg_catalog"), pg_query.MakeStrNode("int8")}}
	up := accessPolicy{acc: rewrite.Access{Mode: rewrite.Governed,
		Masks:     map[string]*pg_query.Node{"customer_id": nil, "email": nil},
		MaskTypes: map[string]*pg_query.TypeName{"customer_id": int8}}}
	t.Run("a hash pseudonym of an integer column is said to read as bigint, other masks are not named", func(t *testing.T) {
		got := servedTypes(up, cat, []string{"public.orders.customer_id", "public.orders.email", "public.gone.x", "nodots"})
		want := []string{"public.orders.customer_id reads as bigint (a hash pseudonym; the column is integer)"}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("got %q, want %q", got, want)
		}
	})
	t.Run("a pseudonym of a uuid or bigint column, served as the column's own type, is not named", func(t *testing.T) {
		keys := &rewrite.Relation{QName: rewrite.QName{Schema: "public", Name: "keys"},
			Columns: []rewrite.Column{{Name: "ref", Type: "uuid"}, {Name: "big", Type: "bigint"}, {Name: "small", Type: "smallint"}}}
		cat := &rewrite.Catalog{Relations: map[rewrite.QName]*rewrite.Relation{keys.QName: keys}}
		uuid := &pg_query.TypeName{Names: []*pg_query.Node{pg_query.MakeStrNode("pg_catalog"), pg_query.MakeStrNode("uuid")}}
		up := accessPolicy{acc: rewrite.Access{Mode: rewrite.Governed,
			Masks:     map[string]*pg_query.Node{"ref": nil, "big": nil, "small": nil},
			MaskTypes: map[string]*pg_query.TypeName{"ref": uuid, "big": int8, "small": int8}}}
		got := servedTypes(up, cat, []string{"public.keys.ref", "public.keys.big", "public.keys.small"})
		want := []string{"public.keys.small reads as bigint (a hash pseudonym; the column is smallint)"}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("got %q, want %q", got, want)
		}
	})
	t.Run("a schema, table or column with a dot in its quoted name is found, not cut at a dot", func(t *testing.T) {
		for _, q := range []rewrite.QName{{Schema: "Billing.EU", Name: "orders"}, {Schema: "public", Name: "v1.orders"}, {Schema: "a.b", Name: "c.d"}} {
			rel := &rewrite.Relation{QName: q, Columns: []rewrite.Column{{Name: "customer.id", Type: "integer"}, {Name: "customer_id", Type: "integer"}}}
			decoy := &rewrite.Relation{QName: rewrite.QName{Schema: "public", Name: "v1"}, Columns: []rewrite.Column{{Name: "orders.customer.id", Type: "bigint"}}}
			cat := &rewrite.Catalog{Relations: map[rewrite.QName]*rewrite.Relation{q: rel, decoy.QName: decoy}}
			up := accessPolicy{acc: rewrite.Access{Mode: rewrite.Governed,
				MaskTypes: map[string]*pg_query.TypeName{"customer.id": int8, "customer_id": int8}}}
			got := servedTypes(up, cat, []string{q.String() + ".customer.id", q.String() + ".customer_id"})
			want := []string{q.String() + ".customer.id reads as bigint (a hash pseudonym; the column is integer)",
				q.String() + ".customer_id reads as bigint (a hash pseudonym; the column is integer)"}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s: got %q, want %q", q, got, want)
			}
		}
	})
	t.Run("without a catalog nothing is said", func(t *testing.T) {
		if got := servedTypes(up, nil, []string{"public.orders.customer_id"}); got != nil {
			t.Errorf("got %q", got)
		}
	})
}
