package proxy

import (
	"sync"
	"unicode/utf8"
)

// An upstream error's Position is an index into the text pgveil sent,
// which for a rewritten statement is not the client's: past the first
// governed relation it would point at the wrong place and, worse, tell
// the client how long its own scopes and masks are. The session keeps,
// per batch, the one statement text it sent in it; an error's Position
// is mapped back into the client's text where both texts agree around
// it, and removed everywhere else.

// batchTexts remembers the statement each recent batch sent upstream.
//
// NOTE: a batch that binds a statement prepared before it (a Bind naming
// another statement than its Parse, SQL EXECUTE or FETCH) keeps no
// texts: an error of the older statement with a Position (one PostgreSQL
// meets planning it again after DDL) would point into that statement's
// rewritten text. An Execute of a portal bound in an earlier batch is
// not followed: it runs a plan already made, whose errors carry no
// Position.
//
// NOTE: the client relay writes (note), the backend relay reads (at);
// mu guards slots.
type batchTexts struct {
	mu    sync.Mutex
	slots [16]batchText
}

// batchText is what batch number batch sent: client is the client's
// text of its one Query or Parse, sent the text forwarded for it, name
// the Parse's statement name. several marks a batch with more than one
// text, or running a statement prepared before it, whose errors cannot
// be told apart.
type batchText struct {
	batch              int64
	name, client, sent string
	several, used      bool
}

// queryName is the name batchText gives a Query's text: no Bind names
// it.
const queryName = "\x00query"

// note records that batch sent sent for the client's text client, of a
// Parse of the statement name (queryName for a Query).
func (b *batchTexts) note(batch int64, name, client, sent string) {
	b.mu.Lock()
	s := &b.slots[batch%int64(len(b.slots))]
	if s.used && s.batch == batch {
		s.several = true
		s.client, s.sent = "", ""
	} else {
		*s = batchText{batch: batch, name: name, client: client, sent: sent, used: true}
	}
	b.mu.Unlock()
}

// bind records that batch binds the statement name: unless the batch
// parsed that very statement, an error may point into the text of one
// prepared before it.
func (b *batchTexts) bind(batch int64, name string) {
	b.mu.Lock()
	s := &b.slots[batch%int64(len(b.slots))]
	switch {
	case !s.used || s.batch != batch:
		*s = batchText{batch: batch, several: true, used: true}
	case s.name != name:
		s.several = true
		s.client, s.sent = "", ""
	}
	b.mu.Unlock()
}

// opaque records that batch runs a statement prepared in an earlier one
// (SQL EXECUTE, FETCH): an error there may point into that statement's
// text, which the batch does not hold.
func (b *batchTexts) opaque(batch int64) { b.bind(batch, "\x00earlier") }

// at returns the texts batch sent, false when it sent none, several, or
// is no longer remembered.
func (b *batchTexts) at(batch int64) (client, sent string, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := &b.slots[batch%int64(len(b.slots))]
	if !s.used || s.batch != batch || s.several {
		return "", "", false
	}
	return s.client, s.sent, true
}

// errorPosition returns the Position of an upstream error, pos, as the
// client must see it, for an error answering a statement whose client
// text is client and which was sent as sent: unchanged when the texts
// are the same, mapped into client when the texts agree from the start
// or from the end up to that character, 0 (none) otherwise. Positions
// count characters from 1.
func errorPosition(pos int32, client, sent string) int32 {
	if client == sent || pos <= 0 {
		return max(pos, 0)
	}
	p := int(pos)
	// Common prefix and suffix, in characters.
	prefix, i := 0, 0
	for i < len(client) && i < len(sent) {
		rc, nc := utf8.DecodeRuneInString(client[i:])
		rs, ns := utf8.DecodeRuneInString(sent[i:])
		if rc != rs || nc != ns {
			break
		}
		prefix++
		i += nc
	}
	if p <= prefix {
		return pos
	}
	nClient := prefix + utf8.RuneCountInString(client[i:])
	nSent := prefix + utf8.RuneCountInString(sent[i:])
	suffix, jc, js := 0, len(client), len(sent)
	for jc > i && js > i {
		rc, nc := utf8.DecodeLastRuneInString(client[i:jc])
		rs, ns := utf8.DecodeLastRuneInString(sent[i:js])
		if rc != rs || nc != ns {
			break
		}
		suffix++
		jc -= nc
		js -= ns
	}
	if p > nSent-suffix && p <= nSent+1 {
		// nSent+1: the end of the text, after its last character.
		return int32(p - nSent + nClient)
	}
	return 0
}
