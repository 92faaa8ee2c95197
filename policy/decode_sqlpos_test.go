package policy

import (
	"fmt"
	"testing"

	"github.com/hashicorp/hcl/v2/hclparse"
)

func TestSourceOf(t *testing.T) {
	cases := []struct {
		name, src string
		// token is a part of the value whose position is checked; want
		// is its line:column, or "" when the value does not map.
		token, want string
	}{
		{"a plain string maps character by character", `x = "country = me.country"`, "me.country", "1:16"},
		{"escapes take their source width", `x = "a = \"q\" AND \u00e9t\u00e9 = me.b"`, "me.b", "1:36"},
		{"multibyte characters count as one column", `x = "é€ = me.b"`, "me.b", "1:11"},
		{"escaped interpolation markers map", `x = "'$${x}' = me.b"`, "me.b", "1:16"},
		{"a heredoc maps line by line", "x = <<SQL\ncountry = 'x'\n  AND nps > me.n\nSQL\n", "me.n", "3:13"},
		{"an indented heredoc does not map", "x = <<-SQL\n  a = me.b\n  SQL\n", "me.b", ""},
		{"a function call does not map", `x = env("X", "a = me.b")`, "me.b", ""},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			f, diags := hclparse.NewParser().ParseHCL([]byte(tt.src), "t.hcl")
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			attrs, _ := f.Body.JustAttributes()
			d := newDecoder()
			d.sources["t.hcl"] = f.Bytes
			v, diags := attrs["x"].Expr.Value(d.ctx)
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			value := v.AsString()
			src := d.sourceOf(attrs["x"], value)
			if tt.want == "" {
				if src != nil {
					t.Error("the value maps")
				}
				return
			}
			if src == nil {
				t.Fatal("the value does not map")
			}
			off := indexOf(value, tt.token)
			rng := src.rangeOf(off, len(tt.token))
			if got := fmt.Sprintf("%d:%d", rng.Start.Line, rng.Start.Column); got != tt.want {
				t.Errorf("%q at %s, want %s", tt.token, got, tt.want)
			}
			if got := string(f.Bytes[rng.Start.Byte:rng.End.Byte]); got != tt.token {
				t.Errorf("range covers %q", got)
			}
		})
	}
}

// indexOf is strings.Index, failing loudly when absent.
func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	panic(fmt.Sprintf("%q not in %q", sub, s))
}
