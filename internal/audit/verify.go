package audit

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"
)

// maxProblems caps Report.Problems and Report.Notes: a trail checked
// with the wrong key, or a file that is not a trail, would otherwise
// give a line per record.
const maxProblems = 100

// Report is what Verify found.
type Report struct {
	// OK is true when every record checked out.
	OK bool
	// Problem describes the first problem, with file and line: "" when
	// OK. It is Problems[0].
	Problem string
	// Problems describes every problem, in the order of the files, at
	// most maxProblems (100) of them; MoreProblems counts the others.
	// Lines in a row with the same problem (a file that is not a trail,
	// records under a key not given) are one problem.
	Problems     []string
	MoreProblems int
	// Notes are findings that do not fail the chain, at most maxProblems
	// of them (MoreNotes counts the others): a start of pgveil after a
	// run that wrote no stop record (a crash, or records cut from the
	// end of that run), and, when several keys were given, where the key
	// changes.
	Notes     []string
	MoreNotes int
	// Files are the files checked, in chain order.
	Files []string
	// Records counts the records whose MAC checked out and that were
	// taken into the chain; after a problem, verification goes on from
	// the next such record.
	Records uint64
	// FirstSeq and LastSeq are the seqs of the first and last records
	// counted.
	FirstSeq, LastSeq uint64
	// FirstTime and LastTime are the times of the first and last records
	// counted.
	FirstTime, LastTime time.Time
	// Keyed is true when the MACs were checked with a key (HMAC-SHA256),
	// false for a plain SHA-256 chain.
	Keyed bool
	// Chain is the chain's name (Entry.Chain), "" for a chain begun
	// before chains were named.
	Chain string
	// FromStart is true when the first record counted is the first of
	// its chain (seq 1); false when older files were not given, or were
	// removed by retention.
	FromStart bool
	// Dropped counts the records the trail says it lost: the sum of the
	// counts of its dropped records (on_full = "drop"), each also a
	// note. Unclean counts the starts of pgveil after a run that wrote no
	// stop record (noted too): records of that run may be missing. The
	// chain may verify with either: they say the trail is not complete,
	// not that it was altered.
	Dropped uint64
	Unclean int
	// Open is true when the last record counted is not a stop record:
	// pgveil was still running when the files were read, or its last run
	// ended uncleanly, or records were cut from the end of the newest
	// file. The chain cannot tell these apart; the seq pgveil last wrote
	// (the metric pgveil_audit_last_seq, kept by the monitoring system)
	// can, compared with LastSeq.
	Open bool
}

// position is a record's place in the files.
type position struct {
	// file and line locate the record.
	file string
	line int
}

func (p position) String() string { return fmt.Sprintf("%s:%d", p.file, p.line) }

// Kinds of problems that a run of lines in a row makes one problem of.
const (
	runUnparseable = "unparseable"
	runMAC         = "mac"
	runBehind      = "behind"
	runForeign     = "foreign"
)

// Run states of a chain, for the notes on starts without a stop.
const (
	// runUnknown: no record taken yet.
	runUnknown = iota
	// runRunning: the last record taken was written by a running pgveil.
	runRunning
	// runStopped: a stop record was taken (dropped records may follow).
	runStopped
)

// verification is the state of one Verify or VerifyChains call: the
// keys, and a verifier per chain.
type verification struct {
	// chains compute the MACs, one per key; a nil or empty key is plain
	// SHA-256.
	chains []*chain
	// keyed is true when some key is not empty.
	keyed bool
	// split is true for VerifyChains: a new chain starting mid-file is
	// verified on its own (a verifier of its own, a report of its own);
	// Verify goes on in the same report.
	split bool
	// byChain finds the verifier of a chain once its first record was
	// taken; all lists every verifier, in the order they were made.
	byChain map[string]*verifier
	all     []*verifier
}

// verifier is the state of one chain being verified.
type verifier struct {
	// vn is the verification it is part of.
	vn *verification
	// rep is the report being built.
	rep *Report
	// named is true once rep.Chain is known (a record was taken).
	named bool
	// alone is true for a file VerifyChainsKeys could not place in a
	// chain, verified on its own.
	alone bool
	// last is the last record taken, at lastPos; nil before the first.
	last    *Entry
	lastPos position
	// key is the index of the key the last record verified with.
	key int
	// gap is a record whose seq jumped ahead of the one expected, at
	// gapPos: the next line tells a missing record (it goes on from the
	// gap) from records out of order (it goes back).
	gap    *Entry
	gapPos position
	// gapFirstOfFile is true when the gap is at the start of a file: the
	// previous file was cut short, or a whole file is missing.
	gapFirstOfFile bool
	// gapKey is the index of the key the gap verified with.
	gapKey int
	// gapReported is true once the gap was reported as records out of
	// order: the lines that then fill it in are not reported again.
	gapReported bool
	// runKind is the kind of the problem of the last line, when it can
	// extend over the next lines ("" otherwise); runIdx is its index in
	// rep.Problems (-1 when past the cap), runText its text, runStart
	// and runEnd its first and last lines.
	runKind          string
	runIdx           int
	runText          string
	runStart, runEnd position
	// state is the run state (runUnknown…), runFrom where the current
	// run of pgveil was first seen.
	state   int
	runFrom position
}

// VerifyChains checks the chains spread over files with key (plain
// SHA-256 when empty), as VerifyChainsKeys does with one key.
func VerifyChains(key []byte, files []string) ([]*Report, error) {
	return VerifyChainsKeys([][]byte{key}, files)
}

// VerifyChainsKeys checks the chains spread over files: each pgveil
// instance writes a chain of its own (Entry.Chain), and an auditor may
// give the files of all of them at once. Files are grouped by the chain
// of their first record and each group is verified as VerifyKeys does; a
// file whose first line cannot be read is verified with the chain it is
// given with when there is one, alone otherwise, so that its problem is
// reported. A new chain that starts in the middle of a file (pgveil
// could not read the last record at a restart) is verified as a chain of
// its own, with the files whose first record is of that chain. Reports
// come in the order of their chains' names.
func VerifyChainsKeys(keys [][]byte, files []string) ([]*Report, error) {
	if len(files) == 0 {
		return nil, errors.New("verifying audit log: no files given")
	}
	type group struct {
		name  string
		files []string
		// first is the time of the earliest first record.
		first time.Time
		// alone is true for a file that cannot be placed in a chain.
		alone bool
	}
	groups := map[string]*group{}
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
		g := groups[e.Chain]
		if g == nil {
			g = &group{name: e.Chain, first: e.Time}
			groups[e.Chain] = g
		}
		g.files = append(g.files, f)
		if e.Time.Before(g.first) {
			g.first = e.Time
		}
	}
	// NOTE: a chain that starts in the middle of another chain's file
	// began after that file's first record: verifying the groups in the
	// order of their first records reads its first records (in the other
	// chain's file) before its own files.
	ordered := slices.SortedFunc(maps.Values(groups), func(a, b *group) int {
		return cmp.Or(a.first.Compare(b.first), cmp.Compare(a.name, b.name))
	})
	switch {
	case len(ordered) == 0:
		ordered = []*group{{files: odd}}
	case len(ordered) == 1:
		ordered[0].files = append(ordered[0].files, odd...)
	default:
		// Several chains: an unreadable or empty file cannot be placed;
		// verified alone, an empty one passes and another fails.
		for _, f := range odd {
			ordered = append(ordered, &group{files: []string{f}, alone: true})
		}
	}
	vn := newVerification(keys, true)
	for _, g := range ordered {
		fs, err := OrderFiles(g.files)
		if err != nil {
			return nil, fmt.Errorf("verifying audit log: %w", err)
		}
		v := vn.byChain[g.name]
		if v == nil || g.alone {
			v = vn.newVerifier()
			v.alone = g.alone
		}
		if err := vn.verifyFiles(v, fs); err != nil {
			return nil, err
		}
	}
	// Chains in the order of their names, then the files verified alone.
	slices.SortStableFunc(vn.all, func(a, b *verifier) int {
		return cmp.Or(cmp.Compare(b2i(a.alone), b2i(b.alone)), cmp.Compare(a.rep.Chain, b.rep.Chain))
	})
	reports := make([]*Report, 0, len(vn.all))
	for _, v := range vn.all {
		reports = append(reports, v.finish())
	}
	return reports, nil
}

// Verify checks the chain spread over files with key (plain SHA-256 when
// empty), as VerifyKeys does with one key.
func Verify(key []byte, files []string) (*Report, error) {
	return VerifyKeys([][]byte{key}, files)
}

// VerifyKeys checks the chain spread over files (any order, see
// OrderFiles): every line parses, its MAC is right under one of keys
// (an empty key, or none, is plain SHA-256), its seq follows the
// previous one and its prev is the previous MAC. It goes on after a
// problem: an unreadable line is skipped and the next record checked
// against the last good one (so that a line cut by a crash, which the
// writer ends at its restart before it goes on with the chain, is one
// problem); after a record altered, missing or out of order it goes on
// from the record read. The Report lists the problems, and as notes
// where the key changes and the starts of pgveil not preceded by a stop.
// The error is for files that cannot be read.
//
// NOTE: records cut from the end of the newest file cannot be told from
// records never written: keep that file's size or last MAC elsewhere (a
// remote log, a monitoring system) to notice that. Only when pgveil
// starts again after such a cut does the missing stop record show, as a
// note (it looks like a crash).
func VerifyKeys(keys [][]byte, files []string) (*Report, error) {
	if len(files) == 0 {
		return nil, errors.New("verifying audit log: no files given")
	}
	ordered, err := OrderFiles(files)
	if err != nil {
		return nil, fmt.Errorf("verifying audit log: %w", err)
	}
	vn := newVerification(keys, false)
	v := vn.newVerifier()
	if err := vn.verifyFiles(v, ordered); err != nil {
		return nil, err
	}
	return v.finish(), nil
}

// newVerification returns the state of a verification with keys.
func newVerification(keys [][]byte, split bool) *verification {
	vn := &verification{split: split, byChain: map[string]*verifier{}}
	for _, k := range keys {
		vn.chains = append(vn.chains, newChain(k))
		vn.keyed = vn.keyed || len(k) > 0
	}
	if len(vn.chains) == 0 {
		vn.chains = []*chain{newChain(nil)}
	}
	return vn
}

// newVerifier returns the verifier of a chain not seen yet.
func (vn *verification) newVerifier() *verifier {
	v := &verifier{vn: vn, rep: &Report{Keyed: vn.keyed}, runIdx: -1}
	vn.all = append(vn.all, v)
	return v
}

// verifyFiles reads files, in chain order, with v: the verifier of the
// chain of their first records.
func (vn *verification) verifyFiles(v *verifier, files []string) error {
	for _, file := range files {
		v.addFile(file)
		cur := v
		err := ReadLines(file, func(n int, line []byte) error {
			cur = cur.check(position{file, n}, line)
			return nil
		})
		if err != nil {
			return fmt.Errorf("verifying audit log: %w", err)
		}
		// NOTE: a gap on the last line of a file is settled there: the
		// next file begins with a record of its own group.
		for _, w := range vn.all {
			if w.gap != nil {
				w.settleGap()
			}
		}
	}
	return nil
}

// addFile adds file to the report's files, once.
func (v *verifier) addFile(file string) {
	if !slices.Contains(v.rep.Files, file) {
		v.rep.Files = append(v.rep.Files, file)
	}
}

// finish completes the report.
func (v *verifier) finish() *Report {
	rep := v.rep
	if len(v.vn.chains) > 1 && v.last != nil && v.key != 0 {
		// NOTE: the first key given is the one in force: the newest
		// records must verify under it, or records signed with an
		// older key may have replaced them.
		v.problem("", v.lastPos, fmt.Sprintf("the newest record verifies under key %d, not under the first key given "+
			"(the one in force): give the keys newest first, or records signed with an older key replaced the newest ones", v.key+1))
	}
	rep.Open = v.last != nil && v.state == runRunning
	rep.OK = len(rep.Problems) == 0 && rep.MoreProblems == 0
	if len(rep.Problems) > 0 {
		rep.Problem = rep.Problems[0]
	}
	return rep
}

// check checks one line at pos and returns the verifier of the next
// line: v, or the verifier of a new chain that starts at this line.
func (v *verifier) check(pos position, line []byte) *verifier {
	e, err := ParseLine(line)
	if err != nil {
		v.settleGap()
		v.problem(runUnparseable, pos, fmt.Sprintf("unparseable line: %v", err))
		return v
	}
	signed, _ := signedPart(line)
	key := v.matchKey(signed, e.MAC)
	if key < 0 {
		v.settleGap()
		what := "record altered (mac mismatch)"
		if v.rep.Records == 0 {
			if v.vn.keyed {
				what += ": no record verified before it: the key may be wrong, or older records were written under a previous key"
			} else {
				what += ": no record verified before it: the trail may have been written with hmac_key"
			}
		}
		v.problem(runMAC, pos, what)
		if v.last == nil {
			v.rep.Chain = e.Chain
		}
		// NOTE: the next record's prev is the mac this line carries,
		// altered or not: going on from it finds the next problem.
		v.last, v.lastPos = e, pos
		return v
	}
	if v.last != nil && e.Chain != v.last.Chain {
		v.settleGap()
		if e.Seq == 1 && e.Prev == zeroMAC {
			return v.newChain(pos, e, key)
		}
		v.problem(runForeign, pos, fmt.Sprintf("a record of chain %q among those of chain %q (%s): the files of two pgveil instances were mixed",
			e.Chain, v.last.Chain, v.lastPos))
		return v
	}
	v.checkEntry(pos, e, key)
	return v
}

// checkEntry checks the place of e, a record of v's chain at pos whose
// MAC verified with key.
func (v *verifier) checkEntry(pos position, e *Entry, key int) {
	firstOfFile := pos.line == 1 && v.last != nil && v.lastPos.file != pos.file
	if v.gap != nil {
		if e.Seq < v.gap.Seq {
			v.behindGap(pos, e, key)
			return
		}
		v.settleGap()
	}
	if v.last == nil {
		v.rep.FromStart = e.Seq == 1 && e.Prev == zeroMAC
		v.take(pos, e, key)
		return
	}
	want := v.last.Seq + 1
	switch {
	case e.Seq == want && e.Prev != v.last.MAC:
		v.problem("", pos, fmt.Sprintf("chain broken: prev is not the mac of the record before it (%s)", v.lastPos))
		v.take(pos, e, key)
	case e.Seq == want:
		v.take(pos, e, key)
	case e.Seq == 1 && e.Prev == zeroMAC:
		v.problem("", pos, fmt.Sprintf("a new chain starts here (seq 1 after seq %d at %s): the log was reset or its last record was unreadable",
			v.last.Seq, v.lastPos))
		v.take(pos, e, key)
	case e.Seq < want:
		// NOTE: a record that goes back (a line repeated or moved) is
		// skipped: the next one goes on from the last good record.
		v.problem(runBehind, pos, fmt.Sprintf("records out of order (seq %d after seq %d)", e.Seq, v.last.Seq))
	default:
		v.gap, v.gapPos, v.gapKey, v.gapFirstOfFile, v.gapReported = e, pos, key, firstOfFile, false
	}
}

// newChain reports a new chain that starts at pos with e, whose MAC
// verified with key, and returns the verifier that goes on with it.
func (v *verifier) newChain(pos position, e *Entry, key int) *verifier {
	problem := fmt.Sprintf("a new chain starts here (chain %q, seq 1, after seq %d of chain %q at %s): "+
		"the log was reset or its last record was unreadable at a restart", e.Chain, v.last.Seq, v.last.Chain, v.lastPos)
	if !v.vn.split {
		v.problem("", pos, problem)
		v.take(pos, e, key)
		return v
	}
	v.problem("", pos, problem+fmt.Sprintf("; its records are verified as chain %q", e.Chain))
	w := v.vn.byChain[e.Chain]
	if w == nil {
		w = v.vn.newVerifier()
	}
	w.addFile(pos.file)
	w.checkEntry(pos, e, key)
	return w
}

// matchKey returns the index of the key under which mac is the MAC of
// signed, -1 when there is none. The key of the last record is tried
// first.
func (v *verifier) matchKey(signed []byte, mac string) int {
	if v.vn.chains[v.key].mac(signed) == mac {
		return v.key
	}
	for i, c := range v.vn.chains {
		if i != v.key && c.mac(signed) == mac {
			return i
		}
	}
	return -1
}

// take makes e, at pos, whose MAC verified with key, the last good
// record, and notes a key change and a start without a stop.
func (v *verifier) take(pos position, e *Entry, key int) {
	if !v.named {
		v.named = true
		v.rep.Chain = e.Chain
		if _, ok := v.vn.byChain[e.Chain]; !ok {
			v.vn.byChain[e.Chain] = v
		}
	}
	if len(v.vn.chains) > 1 && v.rep.Records > 0 && key > v.key {
		// NOTE: keys are given newest first and only go forward: a
		// record under an older key after one under a newer key was
		// signed by whoever still holds the old key (a review rewrote
		// every record after a key change so).
		v.problem("", pos, fmt.Sprintf("a record under key %d after records under key %d (since %s): "+
			"pgveil signs with one key per run and keys only change to newer ones (give them newest first); "+
			"whoever holds an older key can forge records", key+1, v.key+1, v.lastPos))
	} else if len(v.vn.chains) > 1 && (key != v.key || v.rep.Records == 0 && key != 0) {
		v.note(fmt.Sprintf("%s: key %d from here (seq %d on)", pos, key+1, e.Seq))
	}
	v.key = key
	if e.Event == EventDropped && e.Count > 0 {
		v.rep.Dropped += uint64(e.Count)
		v.note(fmt.Sprintf("%s: %d records were dropped before this one (on_full = \"drop\", the queue was full): the trail does not hold them", pos, e.Count))
	}
	switch {
	case e.Event == EventStart:
		if v.state == runRunning {
			note := fmt.Sprintf("%s: pgveil started again (seq %d) without a stop record after the run seen from %s: "+
				"that run ended without a clean shutdown (a crash, kill -9, a power loss), or records were cut from its end",
				pos, e.Seq, v.runFrom)
			if v.last != nil && v.last.Event == EventDropped {
				note += `, or its stop record was dropped (on_full = "drop")`
			}
			v.note(note)
			v.rep.Unclean++
		}
		v.state, v.runFrom = runRunning, pos
	case e.Event == EventStop:
		v.state = runStopped
	case e.Event == EventDropped && v.state != runRunning:
		// NOTE: after a stop, pgveil writes only dropped records (the
		// queue's last drops): they leave the run stopped, or unknown
		// when the files begin with them.
	case v.state != runRunning:
		v.state, v.runFrom = runRunning, pos
	}
	if v.rep.Records == 0 {
		v.rep.FirstSeq, v.rep.FirstTime = e.Seq, e.Time
	}
	v.last, v.lastPos = e, pos
	v.rep.Records++
	v.rep.LastSeq, v.rep.LastTime = e.Seq, e.Time
	v.runKind = ""
}

// behindGap handles e, at pos, whose seq is below the gap's: records out
// of order. e is taken when it goes on from the last good record, and
// the gap after it when it then fits.
func (v *verifier) behindGap(pos position, e *Entry, key int) {
	if !v.gapReported {
		v.gapReported = true
		v.problem("", v.gapPos, fmt.Sprintf("records out of order (seq %d where seq %d was expected; seq %d follows)",
			v.gap.Seq, v.last.Seq+1, e.Seq))
	}
	if e.Seq != v.last.Seq+1 || e.Prev != v.last.MAC {
		return
	}
	v.take(pos, e, key)
	if v.gap.Seq == e.Seq+1 && v.gap.Prev == e.MAC {
		gap, gapPos := v.gap, v.gapPos
		v.gap = nil
		v.take(gapPos, gap, v.gapKey)
	}
}

// settleGap, when a gap is pending, reports the records missing before
// it and goes on from the gap.
func (v *verifier) settleGap() {
	if v.gap == nil {
		return
	}
	v.problem("", v.gapPos, v.missing())
	gap, gapPos := v.gap, v.gapPos
	v.gap = nil
	v.take(gapPos, gap, v.gapKey)
}

// missing describes the records missing before the gap.
func (v *verifier) missing() string {
	if v.gapFirstOfFile {
		return fmt.Sprintf("file truncated or missing: chain breaks between %s and %s (seq %d, then seq %d)",
			v.lastPos, v.gapPos, v.last.Seq, v.gap.Seq)
	}
	n := v.gap.Seq - v.last.Seq - 1
	what := "record missing"
	if n > 1 {
		what = fmt.Sprintf("%d records missing", n)
	}
	return fmt.Sprintf("%s before seq %d (expected seq %d after %s)", what, v.gap.Seq, v.last.Seq+1, v.lastPos)
}

// problem reports a problem at pos. A problem of a kind (run…) that the
// line before had too extends that one rather than adding another: a
// file that is not a trail is one problem, not one per line.
func (v *verifier) problem(kind string, pos position, text string) {
	if kind != "" && kind == v.runKind && pos.file == v.runEnd.file && pos.line == v.runEnd.line+1 {
		v.runEnd = pos
		if v.runIdx >= 0 {
			v.rep.Problems[v.runIdx] = fmt.Sprintf("%s (and the %d lines after it, up to %s)",
				v.runText, v.runEnd.line-v.runStart.line, v.runEnd)
		}
		return
	}
	text = fmt.Sprintf("%s: %s", pos, text)
	v.runKind, v.runText, v.runStart, v.runEnd, v.runIdx = kind, text, pos, pos, -1
	if len(v.rep.Problems) >= maxProblems {
		v.rep.MoreProblems++
		return
	}
	v.runIdx = len(v.rep.Problems)
	v.rep.Problems = append(v.rep.Problems, text)
}

// note adds a note to the report.
func (v *verifier) note(text string) {
	if len(v.rep.Notes) >= maxProblems {
		v.rep.MoreNotes++
		return
	}
	v.rep.Notes = append(v.rep.Notes, text)
}

// b2i is 1 for true, 0 for false.
func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
