package main

import (
	"fmt"
	"io"
	"os"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

const usage = `pgveil — a data firewall for PostgreSQL

Usage:
  pgveil serve   --config FILE [--log-format json|console] [--log-level LEVEL] [--watch 5s]
                 run the proxy; SIGHUP (or, with --watch, a changed file) reloads
  pgveil check   --config FILE [--upstream]
                 load and validate a configuration; exit 1 on any error;
                 --upstream also checks it against the live database
  pgveil test    --config FILE [--upstream] [--run REGEXP]
                 run the configuration's test blocks; exit 1 if one fails
  pgveil explain --config FILE --user LOGIN [--as LOGIN] [--groups DN;DN… | --group DN…] "SQL"
                 show the statement pgveil forwards for a user (or a BI service acting
                 for --as), or why it refuses it; a directory login gets its groups'
                 roles (looked up, or --groups)
  pgveil mask-keys --config FILE
                 print the SQL installing the hash masks' secret keys upstream,
                 for the database owner to run
  pgveil passwd  [--iterations N]
                 read a password and print its SCRAM-SHA-256 verifier
  pgveil audit   verify [--key-env NAME]... [--unkeyed] [--from-start] [--complete] FILE...
                 check the chain of audit log files; exit 1 on a problem
  pgveil audit   search [filters] [--format table|json] FILE...
                 print the audit records matching --user, --column, --since, …
  pgveil version print the version

Run 'pgveil COMMAND --help' for a command's flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run dispatches a command line and returns the exit status.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return cmdServe(args[1:], stderr)
	case "check":
		return cmdCheck(args[1:], stdout, stderr)
	case "test":
		return cmdTest(args[1:], stdout, stderr)
	case "explain":
		return cmdExplain(args[1:], stdout, stderr)
	case "mask-keys":
		return cmdMaskKeys(args[1:], stdout, stderr)
	case "passwd":
		return cmdPasswd(args[1:], stdin, stdout, stderr)
	case "audit":
		return cmdAudit(args[1:], stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintf(stdout, "pgveil %s\n", version)
		return 0
	case "help", "--help", "-h":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "pgveil: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}
