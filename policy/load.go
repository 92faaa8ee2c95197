package policy

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
)

// Loader loads configurations and keeps the source of every file it
// parsed, so that diagnostics can be printed with source snippets.
//
// The zero Loader is not usable; call NewLoader. A Loader is not safe for
// concurrent use.
type Loader struct {
	// parser parses files and remembers them by name.
	parser *hclparse.Parser
	// withoutTests is the configuration of the last Load whose only
	// errors were in test blocks, without them; nil otherwise.
	// NOTE: never served: Load returns nil for it, as for any error.
	withoutTests *Config
}

// WithoutTests returns the configuration of the last Load when its only
// errors were in test blocks: provisioned and validated as serve would
// load it, the test blocks dropped (they have no effect on serving), so
// that pgveil check --upstream can still check the policy against the
// database. nil when the last Load succeeded or had other errors: then
// no part of the policy was validated.
func (l *Loader) WithoutTests() *Config { return l.withoutTests }

// NewLoader returns a Loader with no files parsed yet.
func NewLoader() *Loader {
	return &Loader{parser: hclparse.NewParser()}
}

// Load reads one HCL file, or every *.hcl file in a directory (sorted by
// name), and returns the provisioned, validated configuration. diags holds
// warnings even on success; Load returns a nil *Config when
// diags.HasErrors(). Use NewLoader, Loader.Load and Loader.Files to print
// diagnostics with source snippets.
func Load(path string) (*Config, hcl.Diagnostics) {
	return NewLoader().Load(path)
}

// Load is the package-level Load, remembering the files it parsed.
func (l *Loader) Load(path string) (*Config, hcl.Diagnostics) {
	l.withoutTests = nil
	paths, diags := configFiles(path)
	if diags.HasErrors() {
		return nil, diags
	}
	srcs, diags := readSources(path, paths)
	if srcs == nil {
		return nil, diags
	}
	var files []*hcl.File
	for i, p := range paths {
		src := srcs[i]
		if src == nil {
			continue // NOTE: unreadable: already reported.
		}
		if ld := checkSourceLimits(src, p); ld.HasErrors() {
			diags = append(diags, ld...)
			continue
		}
		f, fileDiags := l.parser.ParseHCL(src, p)
		diags = append(diags, fileDiags...)
		if f != nil {
			files = append(files, f)
		}
	}
	if diags.HasErrors() {
		return nil, diags
	}

	d := newDecoder()
	d.cfg.Files = paths
	for _, f := range files {
		d.sources[f.Body.MissingItemRange().Filename] = f.Bytes
	}
	d.cfg.digest = filesDigest(paths, files)
	d.decodeFiles(files)
	d.cfg.envDigest = d.env.digest()
	// NOTE: errors in test blocks alone do not stop the policy's own
	// checks: a DBA sees every problem in one run.
	policyWhole := !d.diags[:d.testsFrom].HasErrors()
	if policyWhole {
		d.provision()
		d.validate()
	}
	diags = append(diags, d.diags...)
	if diags.HasErrors() {
		if policyWhole && !d.diags[d.testsTo:].HasErrors() {
			d.cfg.Tests = nil
			l.withoutTests = d.cfg
		}
		return nil, diags
	}
	return d.cfg, diags
}

// Files returns every file the Loader parsed, keyed by the name used in
// diagnostics, for hcl.NewDiagnosticTextWriter or WriteDiagnostics.
func (l *Loader) Files() map[string]*hcl.File {
	return l.parser.Files()
}

// readSources reads the files paths of the configuration path, through
// limits: a file that never ends (--config /dev/zero) or a directory of
// large files would otherwise take all memory before any check. A
// configuration holds maxConfigBytes at most, in all its files: splitting
// a file does not make room. The source of a file it could not read is
// nil; all are when the configuration is too large.
func readSources(path string, paths []string) ([][]byte, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	srcs := make([][]byte, len(paths))
	total := 0
	for i, p := range paths {
		src, err := readLimited(p, maxConfigBytes+1)
		if err != nil {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Cannot read configuration",
				Detail:   fmt.Sprintf("Reading %s failed: %s.", p, unwrapPathError(err)),
			})
			continue
		}
		if len(src) > maxConfigBytes {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Configuration file too large",
				Detail: fmt.Sprintf("%s holds more than %d MiB, all a configuration may hold. "+
					"Long lists of users belong upstream, read by an identity block.", p, maxConfigBytes>>20),
				Subject: &hcl.Range{Filename: p, Start: hcl.InitialPos, End: hcl.InitialPos},
			})
			return nil, diags
		}
		if total += len(src); total > maxConfigBytes {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Configuration too large",
				Detail: fmt.Sprintf("The *.hcl files of %s hold more than %d MiB together (%s and those before it), "+
					"all a configuration may hold. Long lists of users belong upstream, read by an identity block.",
					path, maxConfigBytes>>20, filepath.Base(p)),
			})
			return nil, diags
		}
		if src == nil {
			src = []byte{}
		}
		srcs[i] = src
	}
	return srcs, diags
}

// readLimited reads the file name, up to limit bytes.
func readLimited(name string, limit int64) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, limit))
}

// configFiles returns path itself when it is a file, or the *.hcl files of
// the directory path, sorted by name. Hidden files (names starting with a
// dot) are skipped: editors keep lock files (Emacs's .#pgveil.hcl, often
// a dangling symbolic link) and backups there while a file is edited.
func configFiles(path string) ([]string, hcl.Diagnostics) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Cannot read configuration",
			Detail:   fmt.Sprintf("Reading %s failed: %s.", path, unwrapPathError(err)),
		}}
	}
	if !info.IsDir() {
		return []string{path}, nil
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Cannot read configuration directory",
			Detail:   fmt.Sprintf("Listing %s failed: %s.", path, unwrapPathError(err)),
		}}
	}
	var paths []string
	var diags hcl.Diagnostics
	for _, e := range entries { // NOTE: os.ReadDir sorts by name.
		switch {
		case e.IsDir(), strings.HasPrefix(e.Name(), "."):
		case strings.HasSuffix(e.Name(), ".hcl"):
			paths = append(paths, filepath.Join(path, e.Name()))
		case strings.HasSuffix(strings.ToLower(e.Name()), ".hcl"):
			// NOTE: an error, not a warning: a rule in it would not
			// apply, silently.
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Configuration file not read",
				Detail: fmt.Sprintf("%s would not be read: only files whose names end in .hcl, lower case, are. "+
					"Rename it, or move it out of the directory.", filepath.Join(path, e.Name())),
			})
		}
	}
	if diags.HasErrors() {
		return nil, diags
	}
	if len(paths) == 0 {
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "No configuration files",
			Detail:   fmt.Sprintf("The directory %s contains no *.hcl files.", path),
		}}
	}
	return paths, nil
}

// unwrapPathError drops the operation and path an *os.PathError repeats.
func unwrapPathError(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}
