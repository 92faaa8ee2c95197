package proxy

import (
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

func TestScrubRaised(t *testing.T) {
	cases := []struct {
		name     string
		er       pgproto3.ErrorResponse
		withheld bool
	}{
		{"a PL/pgSQL RAISE is withheld", pgproto3.ErrorResponse{Code: "00000", Message: "row (1,x)", Where: "PL/pgSQL function f() line 3 at RAISE"}, true},
		{"an error of a statement a trigger runs is withheld", pgproto3.ErrorResponse{Code: "22012", Message: "division by zero",
			Where: "SQL function \"g\" statement 1\nSQL statement \"SELECT g(NEW.email)\"\nPL/pgSQL function f() line 4 at PERFORM"}, true},
		{"another language's function is withheld", pgproto3.ErrorResponse{Code: "XX000", Message: "x", Where: "PL/Python function \"f\""}, true},
		{"a PL/Tcl error, its function named after the Tcl trace, is withheld", pgproto3.ErrorResponse{Code: "38000", Message: "bad x",
			Where: "bad x\n    while executing\n\"error \"bad $NEW(email)\"\"\n    (procedure \"__PLTcl_proc_16410_trigger_16385\" line 3)\nin PL/Tcl function \"f\""}, true},
		{"a PL/Tcl elog notice, which has no CONTEXT, is withheld", pgproto3.ErrorResponse{Code: "38000", Message: "row x"}, true},
		{"a PL/R function's message is withheld", pgproto3.ErrorResponse{Code: "XX000", Message: "x", Where: "In PL/R function f"}, true},
		{"a P0 error without CONTEXT is withheld", pgproto3.ErrorResponse{Code: "P0001", Message: "bad x"}, true},
		{"PostgreSQL's own notice is kept", pgproto3.ErrorResponse{Code: "00000", Message: "text-search query contains only stop words"}, false},
		{"a lock wait's CONTEXT is not a function's", pgproto3.ErrorResponse{Code: "55P03", Message: "canceling statement due to lock timeout",
			Where: "while updating tuple (1,2) in relation \"t\""}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			er := tc.er
			er.Severity = "NOTICE"
			if got := scrubRaised(&er); got != tc.withheld {
				t.Fatalf("withheld: want %v, got %v", tc.withheld, got)
			}
			if !tc.withheld {
				return
			}
			if er.Message != withheldMessage || er.Detail != withheldDetail || er.Where != "" || er.Hint != "" {
				t.Errorf("not withheld whole: %+v", er)
			}
			if er.Code != tc.er.Code || er.Severity != "NOTICE" {
				t.Errorf("the SQLSTATE or severity changed: %+v", er)
			}
			if scrubAll(&er, true) {
				t.Errorf("a withheld message changed again: %+v", er)
			}
		})
	}
	t.Run("a session that named no governed relation keeps the text", func(t *testing.T) {
		er := pgproto3.ErrorResponse{Code: "P0001", Message: "order closed"}
		if scrubAll(&er, false) || er.Message != "order closed" {
			t.Fatalf("changed: %+v", er)
		}
	})
}

func TestScrubErrorQuotedValues(t *testing.T) {
	t.Run("a value holding double quotes is scrubbed whole", func(t *testing.T) {
		// PostgreSQL echoes a value's double quotes unescaped: scrubbing
		// each pair of quotes kept " secret " of 'a" secret "b'.
		er := pgproto3.ErrorResponse{Code: "22P02", Message: `invalid input syntax for type integer: "a" secret "b"`}
		if !scrubError(&er) || er.Message != `invalid input syntax for type integer: "…"` {
			t.Fatalf("got %q", er.Message)
		}
	})
	t.Run("a value holding one double quote is scrubbed whole", func(t *testing.T) {
		er := pgproto3.ErrorResponse{Code: "22P02", Message: `invalid input syntax for type integer: "a"secret"`}
		if !scrubError(&er) || er.Message != `invalid input syntax for type integer: "…"` {
			t.Fatalf("got %q", er.Message)
		}
	})
}
