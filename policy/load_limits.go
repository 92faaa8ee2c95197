package policy

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// Limits on a configuration file's source, checked on its tokens before it
// is parsed: HCL's parser recurses once per nesting level (a file nesting
// parentheses a hundred thousand deep overflows the stack, which no
// recover catches), and formatting a number takes time quadratic in its
// exponent (1e-1000000 held a load for minutes). No configuration comes
// near them.
//
// A chain of binary operators (1+1+…) recurses too, and each operator can
// multiply a number's exponent: at most maxOperators per line of source
// (lines inside brackets count as one), with exponents of at most
// ±maxExponent, keep every computed number's decimal form cheap.
const (
	// maxConfigBytes bounds a configuration: a file, or all the files of
	// a directory together.
	maxConfigBytes  = 32 << 20
	maxNesting      = 100
	maxNumberDigits = 1000
	maxExponent     = 400
	maxOperators    = 64
)

// binaryOperators are the tokens of HCL's binary operators.
var binaryOperators = map[hclsyntax.TokenType]bool{
	hclsyntax.TokenPlus: true, hclsyntax.TokenMinus: true, hclsyntax.TokenStar: true, hclsyntax.TokenSlash: true,
	hclsyntax.TokenPercent: true, hclsyntax.TokenEqualOp: true, hclsyntax.TokenNotEqual: true,
	hclsyntax.TokenLessThan: true, hclsyntax.TokenLessThanEq: true, hclsyntax.TokenGreaterThan: true,
	hclsyntax.TokenGreaterThanEq: true, hclsyntax.TokenAnd: true, hclsyntax.TokenOr: true,
}

// checkSourceLimits reports where src, the file filename, exceeds a
// limit. (readSources bounds its size: maxConfigBytes.)
func checkSourceLimits(src []byte, filename string) hcl.Diagnostics {
	toks, _ := hclsyntax.LexConfig(src, filename, hcl.InitialPos)
	depth, unary, operators := 0, 0, 0
	for _, tok := range toks {
		switch {
		case tok.Type == hclsyntax.TokenNewline:
			operators = 0
		case binaryOperators[tok.Type]:
			if operators++; operators > maxOperators {
				return hcl.Diagnostics{{
					Severity: hcl.DiagError,
					Summary:  "Expression too long",
					Detail:   fmt.Sprintf("A line may hold %d operators at most.", maxOperators),
					Subject:  tok.Range.Ptr(),
				}}
			}
		}
		switch tok.Type {
		case hclsyntax.TokenOBrace, hclsyntax.TokenOBrack, hclsyntax.TokenOParen,
			hclsyntax.TokenTemplateInterp, hclsyntax.TokenTemplateControl, hclsyntax.TokenOQuote, hclsyntax.TokenOHeredoc:
			depth++
		case hclsyntax.TokenCBrace, hclsyntax.TokenCBrack, hclsyntax.TokenCParen,
			hclsyntax.TokenTemplateSeqEnd, hclsyntax.TokenCQuote, hclsyntax.TokenCHeredoc:
			depth = max(depth-1, 0)
		case hclsyntax.TokenNumberLit:
			if !reasonableLiteral(string(tok.Bytes)) {
				return hcl.Diagnostics{{
					Severity: hcl.DiagError,
					Summary:  "Number too large",
					Detail:   fmt.Sprintf("A number may have %d digits and an exponent of ±%d at most; write larger values as strings.", maxNumberDigits, maxExponent),
					Subject:  tok.Range.Ptr(),
				}}
			}
		}
		if tok.Type == hclsyntax.TokenMinus || tok.Type == hclsyntax.TokenBang {
			unary++
		} else {
			unary = 0
		}
		if depth > maxNesting || unary > maxNesting {
			return hcl.Diagnostics{{
				Severity: hcl.DiagError,
				Summary:  "Configuration nested too deeply",
				Detail:   fmt.Sprintf("Blocks, brackets, strings and operators may nest %d levels deep at most.", maxNesting),
				Subject:  tok.Range.Ptr(),
			}}
		}
	}
	return nil
}

// reasonableLiteral reports whether the HCL number literal lit has at most
// maxNumberDigits digits and an exponent within ±maxExponent.
func reasonableLiteral(lit string) bool {
	mant, exp, hasExp := strings.Cut(strings.ToLower(lit), "e")
	if len(mant) > maxNumberDigits+1 {
		return false
	}
	if !hasExp {
		return true
	}
	n, err := strconv.Atoi(strings.TrimLeft(exp, "+"))
	return err == nil && n >= -maxExponent && n <= maxExponent
}
