package scrub

import "testing"

func TestQuoted(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"a message without quotes stays", "division by zero", "division by zero"},
		{"one quoted value is replaced", `invalid input syntax for type integer: "abc"`, `invalid input syntax for type integer: "…"`},
		{"a value holding quotes is replaced whole", `invalid input syntax for type integer: "a" secret "b"`, `invalid input syntax for type integer: "…"`},
		{"a value holding one quote is replaced whole", `invalid input syntax for type integer: "a"b"`, `invalid input syntax for type integer: "…"`},
		{"the text after the last quote stays", `value "x" is out of range for type integer`, `value "…" is out of range for type integer`},
		{"an unterminated quote drops the rest", `bad value "secret`, `bad value "…"`},
		{"two values are replaced with the text between", `key "a" and "b" clash`, `key "…" clash`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Quoted(tc.in)
			if got != tc.want {
				t.Fatalf("Quoted(%q) = %q, want %q", tc.in, got, tc.want)
			}
			if again := Quoted(got); again != got {
				t.Fatalf("Quoted is not idempotent: %q then %q", got, again)
			}
		})
	}
}
