package policy

import (
	"fmt"
	"os"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
)

// evalContext is what expressions in a configuration file may use: no
// variables, and the functions below.
func evalContext() *hcl.EvalContext {
	return &hcl.EvalContext{
		Functions: map[string]function.Function{
			"env": envFunc,
		},
	}
}

// envFunc is env(name) or env(name, default): the value of an environment
// variable, or default when it is unset. A variable set to the empty string
// counts as set. Without a default, an unset variable is an error.
var envFunc = function.New(&function.Spec{
	Description: "Returns the value of the environment variable name, or default when it is not set.",
	Params: []function.Parameter{
		{Name: "name", Type: cty.String, Description: "The environment variable to read."},
	},
	VarParam: &function.Parameter{
		Name:        "default",
		Type:        cty.String,
		Description: "The value to use when the variable is not set.",
	},
	Type:         function.StaticReturnType(cty.String),
	RefineResult: func(b *cty.RefinementBuilder) *cty.RefinementBuilder { return b.NotNull() },
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		if len(args) > 2 {
			return cty.NilVal, function.NewArgErrorf(2, "env takes a variable name and at most one default value")
		}
		name := args[0].AsString()
		if name == "" {
			return cty.NilVal, function.NewArgErrorf(0, "the environment variable name must not be empty")
		}
		if v, ok := os.LookupEnv(name); ok {
			return cty.StringVal(v), nil
		}
		if len(args) == 2 {
			return args[1], nil
		}
		return cty.NilVal, fmt.Errorf("environment variable %q is not set", name)
	},
})
