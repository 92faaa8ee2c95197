package main

import (
	"flag"
	"fmt"
	"io"
)

// cmdMaskKeys prints the SQL script that installs the hash masks' secret
// keys upstream (policy.Config.MaskKeysSQL), for the database owner to
// run: pgveil names the keys in the statements it sends, never writes
// them there.
func cmdMaskKeys(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mask-keys", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "configuration file or directory of *.hcl files (required)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: pgveil mask-keys --config FILE | psql -v ON_ERROR_STOP=1 \"URL of the database owner\"")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *configPath == "" || fs.NArg() != 0 {
		fs.Usage()
		return 2
	}
	cfg, ok := loadConfig(*configPath, stderr)
	if !ok {
		return 1
	}
	if !cfg.HasHashMasks() {
		fmt.Fprintln(stderr, "pgveil mask-keys: the configuration has no hash mask; nothing to install")
		return 0
	}
	fmt.Fprint(stdout, cfg.MaskKeysSQL())
	return 0
}
