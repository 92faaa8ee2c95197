package pgtest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// ErrNoPostgres reports that no PostgreSQL server binaries (initdb and
// postgres) could be found on this machine.
var ErrNoPostgres = errors.New("pgtest: PostgreSQL server binaries (initdb, postgres) not found")

// debianBinGlob matches the binary directories of Debian's and Ubuntu's
// versioned PostgreSQL packages.
const debianBinGlob = "/usr/lib/postgresql/*/bin"

// FindBinDir returns the directory holding the PostgreSQL server binaries
// (initdb, postgres, pg_ctl, ...). It tries, in order:
//
//  1. `pg_config --bindir`, when pg_config is on PATH and that directory has
//     initdb;
//  2. the highest version among /usr/lib/postgresql/*/bin that has initdb;
//  3. the directory of initdb found on PATH.
//
// When none has both initdb and postgres it returns an error wrapping
// ErrNoPostgres that tells what to install.
func FindBinDir() (string, error) {
	if pgConfig, err := exec.LookPath("pg_config"); err == nil {
		out, err := exec.Command(pgConfig, "--bindir").Output()
		if err == nil {
			if dir := strings.TrimSpace(string(out)); hasServerBinaries(dir) {
				return dir, nil
			}
		}
	}

	dirs, _ := filepath.Glob(debianBinGlob) // NOTE: the pattern is constant and valid.
	sort.Slice(dirs, func(i, j int) bool {
		return versionLess(filepath.Base(filepath.Dir(dirs[i])), filepath.Base(filepath.Dir(dirs[j])))
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		if hasServerBinaries(dirs[i]) {
			return dirs[i], nil
		}
	}

	if initdb, err := exec.LookPath("initdb"); err == nil {
		if dir := filepath.Dir(initdb); hasServerBinaries(dir) {
			return dir, nil
		}
	}

	return "", fmt.Errorf("%w: looked at `pg_config --bindir`, %s and PATH; "+
		"install the server with `apt-get install -y postgresql` (Debian/Ubuntu) "+
		"or put a directory holding initdb and postgres on PATH", ErrNoPostgres, debianBinGlob)
}

// hasServerBinaries reports whether dir holds executable initdb and
// postgres files.
func hasServerBinaries(dir string) bool {
	if dir == "" {
		return false
	}
	for _, name := range []string{"initdb", "postgres"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
			return false
		}
	}
	return true
}

// versionLess compares PostgreSQL version directory names such as "9.6",
// "15" and "16" numerically, component by component; a name that is not a
// number sorts before every number.
func versionLess(a, b string) bool {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(pa) || i < len(pb); i++ {
		var na, nb = -1, -1
		if i < len(pa) {
			if n, err := strconv.Atoi(pa[i]); err == nil {
				na = n
			}
		}
		if i < len(pb) {
			if n, err := strconv.Atoi(pb[i]); err == nil {
				nb = n
			}
		}
		if na != nb {
			return na < nb
		}
	}
	return a < b
}
