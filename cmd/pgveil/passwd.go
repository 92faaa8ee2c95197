package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/pgveil/pgveil/internal/scram"
)

// cmdPasswd reads a password — from the terminal without echo, asked
// twice, or as the first line of standard input — and prints its
// SCRAM-SHA-256 verifier in PostgreSQL's format.
func cmdPasswd(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("passwd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	iterations := fs.Int("iterations", 4096, "PBKDF2 iteration count (PostgreSQL's default is 4096)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *iterations < 4096 {
		fmt.Fprintln(stderr, "pgveil passwd: --iterations must be at least 4096")
		return 2
	}
	pw, err := readPassword(stdin, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "pgveil passwd: %v\n", err)
		return 1
	}
	v, err := scram.NewVerifier(pw, *iterations)
	if err != nil {
		fmt.Fprintf(stderr, "pgveil passwd: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, v.String())
	return 0
}

// readPassword reads the password from a terminal (no echo, confirmed) or
// from the first line of a non-terminal stdin.
func readPassword(stdin io.Reader, stderr io.Writer) (string, error) {
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(stderr, "Password: ")
		a, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			return "", fmt.Errorf("reading password: %w", err)
		}
		fmt.Fprint(stderr, "Again: ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			return "", fmt.Errorf("reading password: %w", err)
		}
		if string(a) != string(b) {
			return "", errors.New("passwords do not match")
		}
		if len(a) == 0 {
			return "", errors.New("empty password")
		}
		return string(a), nil
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("reading password: %w", err)
	}
	line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
	if line == "" {
		return "", errors.New("empty password on standard input")
	}
	return line, nil
}
