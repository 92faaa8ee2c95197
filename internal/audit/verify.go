package audit

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"
)

// Report is what Verify found.
type Report struct {
	// OK is true when every record checked out.
	OK bool
	// Problem describes the first problem, with file and line: "" when
	// OK.
	Problem string
	// Files are the files checked, in chain order.
	Files []string
	// Records counts the records checked, up to the problem.
	Records uint64
	// FirstSeq and LastSeq are the seqs of the first and last records
	// checked.
	FirstSeq, LastSeq uint64
	// FirstTime and LastTime are the times of the first and last records
	// checked.
	FirstTime, LastTime time.Time
	// Keyed is true when the MACs were checked with a key (HMAC-SHA256),
	// false for a plain SHA-256 chain.
	Keyed bool
	// Chain is the chain's name (Entry.Chain), "" for a chain begun
	// before chains were named.
	Chain string
	// FromStart is true when the first record is the first of its chain
	// (seq 1); false when older files were not given, or were removed by
	// retention.
	FromStart bool
}

// position is a record's place in the files.
type position struct {
	// file and line locate the record.
	file string
	line int
}

func (p position) String() string { return fmt.Sprintf("%s:%d", p.file, p.line) }

// verifier is the state of Verify.
type verifier struct {
	// chain computes the expected MACs.
	chain *chain
	// rep is the report being built.
	rep *Report
	// last is the last record accepted, at lastPos; nil before the first.
	last    *Entry
	lastPos position
	// gap is a record whose seq jumped ahead of the one expected, at
	// gapPos: the next line tells a missing record (it goes on from the
	// gap) from records out of order (it goes back).
	gap    *Entry
	gapPos position
	// gapFirstOfFile is true when the gap is at the start of a file: the
	// previous file was cut short, or a whole file is missing.
	gapFirstOfFile bool
}

// VerifyChains checks the chains spread over files: each pgveil instance
// writes a chain of its own (Entry.Chain), and an auditor may give the
// files of all of them at once. Files are grouped by the chain of their
// first record and each group is verified as Verify does; a file whose
// first line cannot be read is verified with the chain it is given with
// when there is one, alone otherwise, so that its problem is reported.
// Reports come in the order of their chains' names.
func VerifyChains(key []byte, files []string) ([]*Report, error) {
	if len(files) == 0 {
		return nil, errors.New("verifying audit log: no files given")
	}
	groups := map[string][]string{}
	var odd []string
	for _, f := range files {
		line, err := firstLine(f)
		if err != nil {
			return nil, fmt.Errorf("verifying audit log: %w", err)
		}
		e, perr := ParseLine(line)
		if line == nil || perr != nil {
			odd = append(odd, f)
			continue
		}
		groups[e.Chain] = append(groups[e.Chain], f)
	}
	names := slices.Sorted(maps.Keys(groups))
	switch {
	case len(names) == 0:
		names, groups = []string{""}, map[string][]string{"": odd}
	case len(names) == 1:
		groups[names[0]] = append(groups[names[0]], odd...)
	default:
		// Several chains: an unreadable or empty file cannot be placed;
		// verified alone, an empty one passes and another fails.
		for i, f := range odd {
			name := fmt.Sprintf("\x00%d", i)
			names = append(names, name)
			groups[name] = []string{f}
		}
	}
	reports := make([]*Report, 0, len(names))
	for _, name := range names {
		rep, err := Verify(key, groups[name])
		if err != nil {
			return nil, err
		}
		reports = append(reports, rep)
	}
	return reports, nil
}

// Verify checks the chain spread over files (any order, see OrderFiles)
// with key (plain SHA-256 when empty): every line parses, its MAC is
// right, its seq follows the previous one and its prev is the previous
// MAC. The Report gives the first problem. The error is for files that
// cannot be read.
//
// NOTE: records cut from the end of the newest file cannot be told from
// records never written: keep that file's size or last MAC elsewhere (a
// remote log, a monitoring system) to notice that.
func Verify(key []byte, files []string) (*Report, error) {
	if len(files) == 0 {
		return nil, errors.New("verifying audit log: no files given")
	}
	ordered, err := OrderFiles(files)
	if err != nil {
		return nil, fmt.Errorf("verifying audit log: %w", err)
	}
	v := &verifier{chain: newChain(key), rep: &Report{Files: ordered, Keyed: len(key) > 0}}
	for i, file := range ordered {
		err := ReadLines(file, func(n int, line []byte) error {
			if problem := v.check(position{file, n}, n == 1 && i > 0, line); problem != "" {
				v.rep.Problem = problem
				return errStop
			}
			return nil
		})
		if errors.Is(err, errStop) {
			return v.rep, nil
		}
		if err != nil {
			return nil, fmt.Errorf("verifying audit log: %w", err)
		}
		if v.gap != nil {
			v.rep.Problem = v.missing()
			return v.rep, nil
		}
	}
	v.rep.OK = true
	return v.rep, nil
}

// check checks one line; firstOfFile is true for the first line of every
// file but the first. It returns the problem, "" when there is none.
func (v *verifier) check(pos position, firstOfFile bool, line []byte) string {
	e, err := ParseLine(line)
	if err != nil {
		if v.gap != nil {
			return v.missing()
		}
		return fmt.Sprintf("%s: unparseable line: %v", pos, err)
	}
	signed, _ := signedPart(line)
	if v.chain.mac(signed) != e.MAC {
		if v.gap != nil {
			return v.missing()
		}
		return fmt.Sprintf("%s: record altered (mac mismatch)", pos)
	}
	if v.gap != nil {
		if e.Seq < v.gap.Seq {
			return fmt.Sprintf("%s: records out of order (seq %d where seq %d was expected; seq %d follows)",
				v.gapPos, v.gap.Seq, v.last.Seq+1, e.Seq)
		}
		return v.missing()
	}
	if v.last == nil {
		v.rep.Chain = e.Chain
		v.rep.FromStart = e.Seq == 1 && e.Prev == zeroMAC
		v.rep.FirstSeq, v.rep.FirstTime = e.Seq, e.Time
		v.accept(pos, e)
		return ""
	}
	want := v.last.Seq + 1
	switch {
	case e.Chain != v.last.Chain:
		return fmt.Sprintf("%s: a record of chain %q among those of chain %q (%s): the files of two pgveil instances were mixed",
			pos, e.Chain, v.last.Chain, v.lastPos)
	case e.Seq == want && e.Prev != v.last.MAC:
		return fmt.Sprintf("%s: chain broken: prev is not the mac of the record before it (%s)", pos, v.lastPos)
	case e.Seq == want:
		v.accept(pos, e)
		return ""
	case e.Seq == 1 && e.Prev == zeroMAC:
		return fmt.Sprintf("%s: a new chain starts here (seq 1 after seq %d at %s): the log was reset or its last record was unreadable",
			pos, v.last.Seq, v.lastPos)
	case e.Seq < want:
		return fmt.Sprintf("%s: records out of order (seq %d after seq %d)", pos, e.Seq, v.last.Seq)
	default:
		v.gap, v.gapPos, v.gapFirstOfFile = e, pos, firstOfFile
		return ""
	}
}

// accept makes e, at pos, the last good record.
func (v *verifier) accept(pos position, e *Entry) {
	v.last, v.lastPos = e, pos
	v.rep.Records++
	v.rep.LastSeq, v.rep.LastTime = e.Seq, e.Time
}

// missing describes the records missing before the gap.
func (v *verifier) missing() string {
	if v.gapFirstOfFile {
		return fmt.Sprintf("%s: file truncated or missing: chain breaks between %s and %s (seq %d, then seq %d)",
			v.gapPos, v.lastPos, v.gapPos, v.last.Seq, v.gap.Seq)
	}
	n := v.gap.Seq - v.last.Seq - 1
	what := "record missing"
	if n > 1 {
		what = fmt.Sprintf("%d records missing", n)
	}
	return fmt.Sprintf("%s: %s before seq %d (expected seq %d after %s)", v.gapPos, what, v.gap.Seq, v.last.Seq+1, v.lastPos)
}
