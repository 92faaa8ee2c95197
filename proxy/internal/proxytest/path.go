package proxytest

import (
	"os"
	"path/filepath"
)

// DemoHCL is configs/demo.hcl, the demo's configuration.
var DemoHCL = Path("configs/demo.hcl")

// Path returns the file at rel from the repository's root, which it
// finds from the test's working directory (its package's directory) up
// to go.mod: the fixtures serve test binaries at several depths.
func Path(rel string) string {
	dir, err := os.Getwd()
	if err != nil {
		panic(err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return filepath.Join(d, filepath.FromSlash(rel))
		}
		if filepath.Dir(d) == d {
			panic("proxytest: no go.mod above " + dir)
		}
	}
}
