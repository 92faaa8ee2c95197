package policy

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"os"
	"slices"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
)

// evalContext is what expressions in a configuration file may use: no
// variables, and the functions below. env() lookups are recorded in rec.
func evalContext(rec *envRecorder) *hcl.EvalContext {
	return &hcl.EvalContext{
		Functions: map[string]function.Function{
			"env": newEnvFunc(rec),
		},
	}
}

// envRecorder remembers the environment variables a configuration read,
// so that policy keys change when their values do.
type envRecorder struct {
	// seen maps a variable name to its value, or to "\x00unset" when it
	// was not set.
	seen map[string]string
}

// record notes that name was read and had value (ok false: unset).
func (r *envRecorder) record(name, value string, ok bool) {
	if !ok {
		value = "\x00unset"
	}
	r.seen[name] = value
}

// processKey keys envRecorder digests: policy keys may end up in logs, and
// env() often reads secrets, which a plain hash would expose to guessing.
var processKey = func() []byte {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		panic(fmt.Sprintf("policy: reading random bytes: %v", err))
	}
	return k
}()

// digest returns a keyed digest of every variable read and its value,
// stable for the life of the process.
func (r *envRecorder) digest() [32]byte {
	names := make([]string, 0, len(r.seen))
	for n := range r.seen {
		names = append(names, n)
	}
	slices.Sort(names)
	mac := hmac.New(sha256.New, processKey)
	for _, n := range names {
		writeField(mac, n)
		writeField(mac, r.seen[n])
	}
	var out [32]byte
	copy(out[:], mac.Sum(nil))
	return out
}

// newEnvFunc returns env(name) or env(name, default): the value of an
// environment variable, or default when it is unset. A variable set to the
// empty string counts as set. Without a default, an unset variable is an
// error.
func newEnvFunc(rec *envRecorder) function.Function {
	return function.New(&function.Spec{
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
			v, ok := os.LookupEnv(name)
			rec.record(name, v, ok)
			if ok {
				return cty.StringVal(v), nil
			}
			if len(args) == 2 {
				return args[1], nil
			}
			return cty.NilVal, fmt.Errorf("environment variable %q is not set", name)
		},
	})
}
