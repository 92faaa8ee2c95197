package rewrite

import (
	"container/list"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
	"unsafe"

	pg_query "github.com/pganalyze/pg_query_go/v6"

	"github.com/pgveil/pgveil/internal/sqlguard"
)

// maxCachedText is the longest statement text the rewrite cache keeps.
const maxCachedText = 64 << 10

// PolicyFunc returns the compiled policy of a login.
type PolicyFunc func(login string) (Policy, error)

// CatalogFunc reads a fresh catalog snapshot.
type CatalogFunc func(ctx context.Context) (*Catalog, error)

// Engine rewrites each statement for a session's user when policies are
// enforced (the proxy's statement hook adapts it), caching the result by
// (policy key, source, text).
//
// NOTE: a cache entry is keyed by the user's compiled policy key, so a
// rewrite is never shared between users whose scopes differ, and a new
// policy version misses the cache.
type Engine struct {
	policy  PolicyFunc
	refresh CatalogFunc
	catalog atomic.Pointer[Catalog]
	cache   *lruCache
	// subqueries holds the subquery templates of spliced rewrites
	// (splice.go), under the same keys and bounds as cache.
	subqueries *lruCache
	// fingerprints is SetFingerprints's setting.
	fingerprints atomic.Bool
	// refreshMu serialises catalog refreshes; lastRefresh rate-limits
	// them.
	refreshMu   sync.Mutex
	lastRefresh time.Time
	// minRefresh is the shortest interval between two refreshes caused by
	// unknown relations.
	minRefresh time.Duration
	hits       atomic.Uint64
	misses     atomic.Uint64
	// templateTries counts the shapes whose template the engine tried
	// to make (at their second statement).
	templateTries atomic.Uint64
	// parsing bounds the statements the engine parses at once: each
	// call into pg_query's C parser holds an OS thread, and a flood of
	// new statements from many sessions would otherwise hold as many
	// threads as there are sessions. It has slotsPerProcessor slots a
	// processor, and gives one login at most one a processor (see
	// parseSlots): a red team's dozen sessions of one login, each
	// sending statements of seconds, held every slot and kept other
	// users' new statements waiting for up to 20 s.
	parsing *parseSlots
}

// slotsPerProcessor is how many statements an Engine parses at once, per
// processor: enough to keep every processor busy while some wait on a
// catalog refresh. One login parses on at most one a processor.
const slotsPerProcessor = 4

// NewEngine returns an Engine over cat. refresh may be nil; when set, a
// statement naming a relation missing from the snapshot triggers one
// refresh (at most every few seconds) and a second try.
func NewEngine(cat *Catalog, policy PolicyFunc, refresh CatalogFunc, cacheSize int) *Engine {
	e := &Engine{policy: policy, refresh: refresh, cache: newLRU(cacheSize), subqueries: newLRU(cacheSize), minRefresh: 5 * time.Second,
		parsing: newParseSlots(slotsPerProcessor*runtime.GOMAXPROCS(0), runtime.GOMAXPROCS(0))}
	e.catalog.Store(cat)
	return e
}

// SetCatalog replaces the catalog snapshot and empties the cache.
func (e *Engine) SetCatalog(cat *Catalog) {
	e.catalog.Store(cat)
	e.cache.purge()
	e.subqueries.purge()
}

// SetFingerprints makes the engine give the Results of statements it
// serves from its literal-shape caches their pg_query fingerprint
// (Result.Fingerprint), computed once per shape, and its refusals of
// texts it parsed theirs (Refused.Fingerprint), computed once per
// (policy, text) and cached with the refusal: for an audit trail, which
// records each statement's. Off, it computes none.
func (e *Engine) SetFingerprints(on bool) { e.fingerprints.Store(on) }

// Catalog returns the current snapshot.
func (e *Engine) Catalog() *Catalog { return e.catalog.Load() }

// ParseSlots returns how many parse slots the statements of login hold,
// and how many of them wait for one; share is the most one login holds
// at once.
func (e *Engine) ParseSlots(login string) (held, waiting, share int) {
	held, waiting = e.parsing.of(login)
	return held, waiting, e.parsing.perUser
}

// CacheStats returns the cache hits and misses so far.
func (e *Engine) CacheStats() (hits, misses uint64) { return e.hits.Load(), e.misses.Load() }

// shapeOnStack is the size of the array Engine.find builds a literal
// shape in: a longer shape is built on the heap.
const shapeOnStack = 512

// cached is a cache entry: a rewrite or a refusal.
//
// NOTE: a cached *Result is shared by every statement that hits it and
// must not be modified.
type cached struct {
	res *Result
	err error
	// tmpl, under a literal-shape key, is the template of a shape whose
	// statements are rewritten; res is then the rewrite it was made from.
	tmpl *template
	// noTemplate, with seen, marks a shape whose template could not be
	// made: its statements are rewritten each time, without trying
	// again.
	noTemplate bool
	// seen, under a literal-shape key, marks a shape rewritten once:
	// the template is made at its second statement, so that statements
	// seen once (BI tools' generated SQL) do not pay for it.
	seen bool
}

// lookup is what the cache lookups of one statement found, and what the
// rewrite of a miss needs of them.
//
// NOTE: a lookup lives on its caller's stack, and the literals' spans
// in an array there too, which find returns rather than keeps: a
// pointer stored in a lookup would move the array to the heap.
type lookup struct {
	p   Policy
	key cacheKey
	// cacheable reports a text short enough to be cached.
	cacheable bool
	// litKey is the key of the text's literal shape, zero when it has
	// none; litNorm is that shape's normalised text.
	litKey  cacheKey
	litNorm string
	// seenShape and triedShape report a literal shape rewritten once
	// before, and one whose template could not be made.
	seenShape, triedShape bool
	// res and err are the answer when the lookup found one.
	res *Result
	err error
}

// find answers text, sent by login in a message of type source, from
// the caches alone: it reports false when the answer needs pg_query,
// leaving in l, and in the spans it returns (appended to spans), what
// the rewrite of the miss needs.
func (e *Engine) find(l *lookup, spans []literalSpan, login string, source byte, text string, types []uint32) ([]literalSpan, bool) {
	p, err := e.policy(login)
	if err != nil {
		l.err = &Refused{Code: CodeInsufficientPrivilege, Rule: "no_policy", Message: "pgveil refused the statement: " + err.Error()}
		return nil, true
	}
	// A text longer than the guard takes is refused here, unread, so
	// that the proxy's event loop answers it inline: its length is
	// enough.
	if why := sqlguard.Oversized(text); why != "" {
		l.err = deny("complexity", "%s", why)
		return nil, true
	}
	p = declare(p, types)
	l.p = p
	l.key = cacheKey{policy: p.Key(), kind: source, text: text}
	if c, ok := e.cache.get(l.key); ok {
		e.hits.Add(1)
		l.res, l.err = c.res, c.err
		return nil, true
	}
	// NOTE: the cache keeps texts up to maxCachedText only, and at most
	// maxCacheBytes of texts in all, whatever clients send.
	l.cacheable = len(text) <= maxCachedText
	if !l.cacheable {
		return nil, false
	}
	// A statement whose literal shape (see literalShape) is that of one
	// forwarded unchanged before is forwarded unchanged, without
	// reaching pg_query: simple-protocol clients inline their values,
	// so most of their statements are new texts of known shapes.
	// NOTE: a literal shape is cached only when it equals pg_query's
	// normalisation of the text it was learnt from, up to the minus
	// signs the parser folds (sameNormalization, in Rewrite), so it never
	// shares a decision the normalised-text cache would not share. It
	// may be looked up before the complexity guard: outside its
	// literals the text is the one that passed it.
	// NOTE: a literal may hold bytes that are not UTF-8, which pg_query
	// refuses (so must the caches: the shape only fixes the text outside
	// the literals), and PostgreSQL too under the pinned client_encoding.
	if !utf8.ValidString(text) {
		return nil, false
	}
	var shapeBuf [shapeOnStack]byte
	b, sp, ok := appendLiteralShape(shapeBuf[:0], text, spans)
	if !ok || len(sp) == 0 {
		return nil, false
	}
	// NOTE: the shape is looked up as a string over b, in the array above
	// or in what append made of it: the lookup keeps nothing of its key.
	// Only what l keeps for the rewrite of a miss is copied, so that a
	// hit (every statement of a known shape) allocates no shape.
	// NOTE: keep builds l.litKey from parts, never from litKey: escape
	// analysis follows a struct whole, and would move the array to the
	// heap with it.
	policy, kind := p.Key(), literalsKind|source
	litKey := cacheKey{policy: policy, kind: kind, text: unsafe.String(unsafe.SliceData(b), len(b))}
	keep := func() {
		shape := string(b)
		l.litNorm = shape[len(sp)+1:]
		l.litKey = cacheKey{policy: policy, kind: kind, text: shape}
	}
	c, ok := e.cache.get(litKey)
	if !ok {
		keep()
		return sp, false
	}
	switch {
	case c.tmpl != nil:
		// A rewritten shape: splice this statement's literals into its
		// template.
		// NOTE: one longer than maxRewritten is refused on the cold
		// path.
		// NOTE: text was found valid UTF-8 above.
		if sql, ok := c.tmpl.spliceValid(text, sp); ok && len(sql) <= maxRewritten {
			e.hits.Add(1)
			res := *c.res
			res.SQL = sql
			l.res = &res
			return sp, true
		}
	case c.seen:
		l.seenShape = true
		l.triedShape = c.noTemplate
	default:
		e.hits.Add(1)
		res := *c.res
		res.SQL = text
		l.res = &res
		return sp, true
	}
	keep()
	return sp, false
}

// shapeTemplate returns the template of the literal shape of text (its
// literals spans, litNorm the shape's normalised text, norm pg_query's
// normalisation of text, "" when it failed), made from res, its rewrite;
// nil when the shape gets none.
func shapeTemplate(text string, spans []literalSpan, litNorm, norm string, res *Result, cat *Catalog, p Policy) *template {
	if norm == "" || !samePlaceholders(foldMinus(litNorm, norm), norm) {
		return nil
	}
	return buildTemplate(text, spans, res, cat, p)
}

// Warm returns what the engine sends for text, sent by login in a
// message of type source, once text's literal shape has a template, when
// that reads a governed relation directly (flatten.go) where Rewrite's
// first answer keeps the subquery. nil, without error, otherwise: the
// shape gets no template (its statements are rewritten as Rewrite does),
// or its template differs from Rewrite's answer in spelling only. A
// refusal is Rewrite's. For pgveil explain: it changes no cache.
func (e *Engine) Warm(login string, source byte, text string) (*Result, error) {
	p, err := e.policy(login)
	if err != nil {
		return nil, err
	}
	if err := guard(text); err != nil {
		return nil, err
	}
	if len(text) > maxCachedText || !utf8.ValidString(text) {
		return nil, nil
	}
	var backing [16]literalSpan
	shape, spans, ok := literalShapeSpans(text, backing[:0])
	if !ok || len(spans) == 0 {
		return nil, nil
	}
	cat := e.catalog.Load()
	res, err := rewriteText(text, cat, p, &splicer{subqueries: newLRU(1), policy: p.Key()}, false)
	if err != nil || !res.Rewritten || res.constantBound {
		return nil, err
	}
	norm, err := pg_query.Normalize(text)
	if err != nil {
		return nil, nil
	}
	t := shapeTemplate(text, spans, shape[len(spans)+1:], norm, res, cat, p)
	if t == nil {
		return nil, nil
	}
	sql, ok := t.splice(text, spans)
	if d, err := rewriteGuarded(text, cat, p); !ok || err != nil || !d.direct || d.SQL != sql {
		return nil, nil
	}
	out := *res
	out.SQL = sql
	return &out, nil
}

// RewriteCached is Rewrite served from the caches alone: it reports
// false, having done nothing, when the statement would need pg_query's
// parser (a miss), so that a caller that must not wait that long (the
// proxy's event loop) can hand it to Rewrite elsewhere.
func (e *Engine) RewriteCached(login string, source byte, text string) (*Result, bool, error) {
	return e.rewriteCached(login, source, text, nil)
}

// RewriteParseCached is RewriteCached for RewriteParse.
func (e *Engine) RewriteParseCached(login, text string, types []uint32) (*Result, bool, error) {
	return e.rewriteCached(login, 'P', text, types)
}

func (e *Engine) rewriteCached(login string, source byte, text string, types []uint32) (*Result, bool, error) {
	var l lookup
	var spans [16]literalSpan
	if _, ok := e.find(&l, spans[:0], login, source, text, types); ok {
		return l.res, true, l.err
	}
	return nil, false, nil
}

// Rewrite rewrites text, sent by login in a message of type source ('Q'
// or 'P'), or returns a *Refused error. The Result may be shared with
// other callers: it must not be modified.
func (e *Engine) Rewrite(ctx context.Context, login string, source byte, text string) (*Result, error) {
	return e.rewrite(ctx, login, source, text, nil)
}

// RewriteParse is Rewrite for the text of a Parse message that declares
// the types of its parameters (OIDs, 0 for none): a comparison of a
// column with a parameter of another type is copied into the scoped
// subquery only as one that cannot fail (params.go).
func (e *Engine) RewriteParse(ctx context.Context, login, text string, types []uint32) (*Result, error) {
	return e.rewrite(ctx, login, 'P', text, types)
}

func (e *Engine) rewrite(ctx context.Context, login string, source byte, text string, types []uint32) (*Result, error) {
	var l lookup
	var backing [16]literalSpan
	spans, hit := e.find(&l, backing[:0], login, source, text, types)
	if hit {
		return l.res, l.err
	}
	p, key, cacheable := l.p, l.key, l.cacheable
	litKey, litNorm := l.litKey, l.litNorm
	seenShape, triedShape := l.seenShape, l.triedShape
	// A text too long for the cache may have been refused before: its
	// refusal is kept under a digest of the text (refusedKey), so that a
	// client sending it again costs a hash, not a parse.
	// NOTE: looked up here, on a worker, rather than in find, which the
	// proxy's event loop calls inline: hashing a long text is no work
	// for the loop.
	var refusedAt cacheKey
	if !cacheable {
		refusedAt = refusedKey(p, source, text)
		if c, ok := e.cache.get(refusedAt); ok && c.err != nil {
			e.hits.Add(1)
			return nil, c.err
		}
	}
	// NOTE: the slot covers the guard too: its scanner, from 8 KiB, is
	// pg_query's, in C.
	if err := e.parsing.acquire(ctx, login); err != nil {
		return nil, fmt.Errorf("waiting to parse: %w", err)
	}
	defer e.parsing.release(login)
	// NOTE: the complexity guard runs before anything hands the text to
	// pg_query's C parser, normalisation included.
	counts, err := measure(text)
	if err != nil {
		// A function of the text alone, kept like any refusal.
		if cacheable {
			e.cache.put(key, cached{err: err})
		} else {
			e.cache.put(refusedAt, cached{err: err})
		}
		return nil, err
	}
	// A statement that differs from one forwarded unchanged only in its
	// constants is forwarded unchanged too. pg_query's normalisation
	// replaces exactly the constants the parser saw with $n and keeps
	// every other byte, and firewall decisions do not depend on a
	// constant's value (statement kinds, relations, functions and SET's
	// setting names are not constants; set_config's is, see
	// readsConstantValues), so equal normalised texts mean equal
	// decisions. It costs a fraction of a parse: simple-protocol
	// clients that inline values stay cheap.
	// NOTE: only "forward unchanged" is shared this way; a rewrite
	// depends on the constants (they are pushed into the subquery) and
	// a refusal's message may quote them. A statement whose checks read
	// a constant's value (set_config's setting name) is never shared.
	// NOTE: pg_query.Normalize parses the text (without the protobuf
	// round trip of a full parse), and its cost grows faster than the
	// text's length. A text whose literal shape is known was looked up
	// above by that shape, pg_query's normalisation up to the kinds of
	// its literals: it is normalised only after the rewrite, when the
	// normalisation is kept, which a rewritten statement seen once (a BI
	// tool's) never needs. A statement is parsed once.
	var shapeKey cacheKey
	var norm string
	normDone := false
	normalized := func() string {
		if !normDone {
			normDone = true
			if n, err := pg_query.Normalize(text); err == nil {
				norm = n
			}
		}
		return norm
	}
	// NOTE: pg_query.Normalize reads a text that is not UTF-8, which its
	// parse refuses: such a text must not share another's decision.
	// NOTE: nor may a text the cold path refuses for an older upstream
	// (grammar_version), a check of spelling the normalisation folds: it
	// replaces a number only pgveil's parser reads (0x1F, 1_000) like any
	// other, and the word SET takes as its value (SET datestyle = json)
	// like a string constant.
	shallow := counts.Ops <= maxEarlyNormalize && counts.Depth <= maxEarlyNormalize
	if cacheable && litKey.text == "" && shallow && utf8.ValidString(text) && e.catalog.Load().Grammar.problem(text) == nil {
		if n := normalized(); n != "" && n != text {
			shapeKey = cacheKey{policy: p.Key(), kind: shapeKind, text: n}
			if c, ok := e.cache.get(shapeKey); ok {
				e.hits.Add(1)
				// Same shape, same decision and same metadata; only
				// the text is this statement's own.
				res := *c.res
				res.SQL = text
				return &res, nil
			}
		}
	}
	e.misses.Add(1)
	// NOTE: the caches' generations before the snapshot: SetCatalog
	// stores a snapshot, then empties the caches, so what this statement
	// makes of a snapshot replaced meanwhile is not kept (putAt).
	gen := e.cache.generation()
	sp := &splicer{subqueries: e.subqueries, policy: p.Key(), gen: e.subqueries.generation()}
	cat := e.catalog.Load()
	res, err := rewriteText(text, cat, p, sp, false)
	var unknown *UnknownRelationError
	if errors.As(err, &unknown) && e.refresh != nil {
		if fresh := e.refreshCatalog(ctx, cat); fresh != nil {
			cat = fresh
			res, err = rewriteText(text, fresh, p, sp, false)
		}
	}
	c := cached{}
	var r *Refused
	switch {
	case err == nil:
		c.res = res
	case errors.As(err, &unknown):
		r = unknown.Refusal()
	case errors.As(err, &r):
	default:
		r = &Refused{Code: CodeInsufficientPrivilege, Rule: "rewrite", Message: "pgveil refused the statement"}
	}
	if r != nil {
		// A refusal is served from the cache as cheaply as a rewrite: its
		// fingerprint goes with it, computed once, for the audit trail
		// (whose one writer would otherwise parse the text of each
		// refused statement, up to maxCachedText, a client repeats).
		// Past the depth pg_query's fingerprint walks safely, the writer
		// does not parse the text either. Set on a copy: rewriteText's
		// refusal may be shared.
		if e.fingerprints.Load() && shallow && r.Fingerprint == "" {
			if fp, err := pg_query.Fingerprint(text); err == nil {
				cp := *r
				cp.Fingerprint = fp
				r = &cp
			}
		}
		c.err = r
	}
	// Unknown relations are not cached: the table may appear later.
	if unknown == nil && !cacheable && c.err != nil {
		e.cache.putAt(gen, refusedAt, c)
	}
	if unknown == nil && cacheable {
		if e.fingerprints.Load() && c.err == nil && !res.constantBound &&
			(!res.Rewritten && normalized() != "" && normalized() != text || res.Rewritten && litKey.text != "" && seenShape && !triedShape) {
			// Statements of this shape will be served from the cache,
			// unparsed: its fingerprint goes with them. Set before res
			// is shared.
			if fp, err := pg_query.Fingerprint(text); err == nil {
				res.Fingerprint = fp
			}
		}
		e.cache.putAt(gen, key, c)
		if c.err == nil && !res.Rewritten && !res.constantBound {
			if n := normalized(); n != "" && n != text {
				e.cache.putAt(gen, cacheKey{policy: p.Key(), kind: shapeKind, text: n}, c)
				if litKey.text != "" && sameNormalization(litNorm, n) {
					e.cache.putAt(gen, litKey, c)
				}
			}
		}
		// NOTE: like a shape forwarded unchanged, a template is kept only
		// for a literal shape that is pg_query's normalisation of the
		// text (up to the numbering of its $n: pg_query numbers LIMIT
		// and OFFSET apart), and only when it reproduces this text's
		// rewrite. A shape is marked seen at its first statement, and
		// checked at its second, when the template is made: statements
		// seen once do not pay for the normalisation.
		if c.err == nil && res.Rewritten && !res.constantBound && litKey.text != "" {
			switch {
			case !seenShape:
				e.cache.putAt(gen, litKey, cached{seen: true})
			case triedShape:
				// Its template could not be made: no second try.
			default:
				e.templateTries.Add(1)
				if t := shapeTemplate(text, spans, litNorm, normalized(), res, cat, p); t != nil {
					e.cache.putAt(gen, litKey, cached{res: res, tmpl: t})
					break
				}
				e.cache.putAt(gen, litKey, cached{seen: true, noTemplate: true})
			}
		}
	}
	return c.res, c.err
}

// refreshCatalog reloads the snapshot once if seen is still current and
// the last refresh is old enough; it returns the fresh snapshot, or nil
// when there is none or it is the same as seen.
func (e *Engine) refreshCatalog(ctx context.Context, seen *Catalog) *Catalog {
	e.refreshMu.Lock()
	defer e.refreshMu.Unlock()
	if cur := e.catalog.Load(); cur != seen {
		return cur // someone else refreshed meanwhile
	}
	if time.Since(e.lastRefresh) < e.minRefresh {
		return nil
	}
	if changed, err := e.refreshLocked(ctx); err != nil || !changed {
		return nil
	}
	return e.catalog.Load()
}

// Refresh reads the catalog again and, when it differs from the snapshot
// in force, puts it in force (emptying the caches, as SetCatalog does);
// it reports whether it did. Without a CatalogFunc it does nothing. A
// DBA's DDL (a column added or dropped, a function created) reaches the
// rewriter this way without a policy reload.
//
// NOTE: an unchanged catalog leaves the caches alone, so that refreshes
// cost one read of the catalog and nothing else, however often they come.
func (e *Engine) Refresh(ctx context.Context) (bool, error) {
	if e.refresh == nil {
		return false, nil
	}
	e.refreshMu.Lock()
	defer e.refreshMu.Unlock()
	return e.refreshLocked(ctx)
}

// refreshLocked is Refresh with refreshMu held.
func (e *Engine) refreshLocked(ctx context.Context) (bool, error) {
	e.lastRefresh = time.Now()
	cat, err := e.refresh(ctx)
	if err != nil {
		return false, err
	}
	if cur := e.catalog.Load(); cur.Digest != ([32]byte{}) && cur.Digest == cat.Digest {
		return false, nil
	}
	e.SetCatalog(cat)
	return true, nil
}

// maxCacheBytes bounds the memory an Engine's cache holds in its
// entries' texts, whatever their number: at maxCachedText a text, 10000
// entries could otherwise hold more than a gigabyte.
const maxCacheBytes = 32 << 20

// lruCache is a concurrency-safe least-recently-used cache, bounded by
// its number of entries and by the bytes of their texts.
//
// Its entries are shared by every login, but one login cannot take the
// others' (shares): when an entry of a policy that holds half of the
// entries, or half of the bytes, already fills the cache, the entry that
// goes is that policy's own least recently used, not the cache's. A
// login that sends distinct texts as fast as they parse (a red team's
// churn) otherwise emptied the cache of every other login's entries, and
// each of their statements paid a parse again (tens of milliseconds for
// a BI query, twenty times PostgreSQL's own). Alone, a policy still has
// the whole cache.
type lruCache struct {
	mu    sync.Mutex
	max   int
	ll    *list.List
	items map[cacheKey]*list.Element
	// bytes is the sum of entrySize over the entries; it stays at most
	// maxBytes.
	bytes, maxBytes int
	// shares are the entries of each policy key, least recently used
	// last.
	// NOTE: an entry is in ll and in its policy's share, at
	// lruEntry.own; a share with no entry is deleted.
	shares map[string]*policyShare
	// gen counts the purges: an entry computed from what a purge
	// replaced (the catalog snapshot) is put with the gen read before
	// that was loaded, and dropped if a purge came since (putAt).
	gen uint64
}

// cacheKey is the key of a cache entry.
type cacheKey struct {
	// policy is the user's compiled policy key.
	policy string
	// kind is the message type of the statement ('Q' or 'P') for an
	// exact text; shapeKind for a normalised text; literalsKind with the
	// message type for a literal shape.
	kind byte
	// text is the statement, its normalised text, or its literal shape
	// (as literalShape returns it).
	text string
}

// The kinds of cacheKey that are not a message type.
const (
	shapeKind    = 0
	literalsKind = 0x80
	// refusedKind keys the refusal of a text too long for the cache:
	// the key's text is the message type and the text's SHA-256.
	refusedKind = 1
)

// refusedKey returns the key of the refusal of text, sent under p in a
// message of type source, when text is too long for the cache: the
// refusal depends on nothing else (the caches are emptied when the
// catalog changes, and p's key covers the declared parameter types).
//
// NOTE: only refusals are kept under such a key: a collision, which
// SHA-256 makes out of reach anyway, could refuse a statement, never
// pass one.
func refusedKey(p Policy, source byte, text string) cacheKey {
	// NOTE: hashed in place: the text may be a megabyte.
	sum := sha256.Sum256(unsafe.Slice(unsafe.StringData(text), len(text)))
	return cacheKey{policy: p.Key(), kind: refusedKind, text: string(append([]byte{source}, sum[:]...))}
}

type lruEntry struct {
	key cacheKey
	val cached
	// own is the entry's element in its policy's share, sh.
	// NOTE: a share lives as long as it holds an entry.
	own *list.Element
	sh  *policyShare
}

// policyShare is what one policy key holds of an lruCache: its entries,
// most recently used first, and the sum of their entrySize.
type policyShare struct {
	ll    *list.List
	bytes int
}

// entrySize is what an entry holds in memory, roughly: its key's texts,
// the SQL of its result, and a fixed overhead for the rest.
func entrySize(key cacheKey, v cached) int {
	n := len(key.policy) + len(key.text) + 256
	if v.res != nil {
		n += len(v.res.SQL)
	}
	if v.tmpl != nil {
		// The template's pieces are about the rewritten SQL again.
		for _, p := range v.tmpl.pieces {
			n += len(p) + 16
		}
		n += 8 * len(v.tmpl.slots)
	}
	return n
}

func newLRU(max int) *lruCache {
	if max <= 0 {
		max = 1
	}
	return &lruCache{max: max, maxBytes: maxCacheBytes, ll: list.New(), items: map[cacheKey]*list.Element{}, shares: map[string]*policyShare{}}
}

// get returns the entry of key, making it the most recently used.
//
// NOTE: get keeps nothing of key, not even on a hit: Engine.find looks
// up a literal shape as a string over an array on its stack (unsafe), so
// that storing key.text here (a "last looked up" field, a miss counter
// by key, a key put on a hit) would keep a string over a reused or freed
// stack. Only put and putAt may keep a key.
func (c *lruCache) get(key cacheKey) (cached, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok {
		e := el.Value.(*lruEntry)
		c.ll.MoveToFront(el)
		e.sh.ll.MoveToFront(e.own)
		return e.val, true
	}
	return cached{}, false
}

// remove drops the entry at el (mu held).
func (c *lruCache) remove(el *list.Element) {
	e := c.ll.Remove(el).(*lruEntry)
	delete(c.items, e.key)
	size := entrySize(e.key, e.val)
	c.bytes -= size
	sh := e.sh
	sh.ll.Remove(e.own)
	if sh.bytes -= size; sh.ll.Len() == 0 {
		delete(c.shares, e.key.policy)
	}
}

// victim returns the entry to drop when an entry of policy fills the
// cache: policy's least recently used when it holds half of the entries
// or of the bytes, the cache's otherwise (mu held).
func (c *lruCache) victim(policy string) *list.Element {
	if sh := c.shares[policy]; sh != nil && sh.ll.Len() > 1 && (2*sh.ll.Len() >= c.max || 2*sh.bytes >= c.maxBytes) {
		return c.items[sh.ll.Back().Value.(*lruEntry).key]
	}
	return c.ll.Back()
}

func (c *lruCache) put(key cacheKey, v cached) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.putLocked(key, v)
}

// putLocked is put with mu held.
func (c *lruCache) putLocked(key cacheKey, v cached) {
	sh := c.shares[key.policy]
	if sh == nil {
		sh = &policyShare{ll: list.New()}
		c.shares[key.policy] = sh
	}
	if el, ok := c.items[key]; ok {
		e := el.Value.(*lruEntry)
		d := entrySize(key, v) - entrySize(e.key, e.val)
		c.bytes += d
		sh.bytes += d
		e.val = v
		c.ll.MoveToFront(el)
		sh.ll.MoveToFront(e.own)
	} else {
		e := &lruEntry{key: key, val: v, sh: sh}
		c.items[key] = c.ll.PushFront(e)
		e.own = sh.ll.PushFront(e)
		size := entrySize(key, v)
		c.bytes += size
		sh.bytes += size
	}
	for c.ll.Len() > 1 && (c.ll.Len() > c.max || c.bytes > c.maxBytes) {
		c.remove(c.victim(key.policy))
	}
}

func (c *lruCache) purge() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ll.Init()
	c.items = map[cacheKey]*list.Element{}
	c.shares = map[string]*policyShare{}
	c.bytes = 0
	c.gen++
}

// generation returns the number of purges so far.
func (c *lruCache) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// putAt is put for an entry computed from a snapshot loaded after
// generation returned gen: it is dropped when a purge came since, as the
// snapshot may be one the purge replaced.
func (c *lruCache) putAt(gen uint64, key cacheKey, v cached) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen == gen {
		c.putLocked(key, v)
	}
}

// sameNormalization reports whether lit, the text of a literal shape
// (literalShape), is norm, pg_query's normalisation of the same statement
// text, to the byte but for the minus signs the parser folded into the
// number after them (foldMinus).
//
// NOTE: a literal shape fixes every token but the literals' values, so
// the grammar folds the same minus signs in every statement of that
// shape; the folding depends on no value (the lexer makes no negative
// number). The statements of a shape that passes this check therefore
// all have the normalisation norm, which is what caching the shape
// requires. Anything else that differs fails it: a minus sign that
// normalisation replaced with something else after it, as in -(5) or
// - -5, a placeholder numbered otherwise.
func sameNormalization(lit, norm string) bool { return foldMinus(lit, norm) == norm }

// foldMinus returns lit without the minus signs (and the spaces after
// them) that norm, pg_query's normalisation of the same text, folded into
// the placeholder after them: normalisation replaces -5 (or - 5) whole by
// $n, where a literal shape keeps the minus sign, a token of its own, and
// replaces only 5. lit is returned unchanged when it differs from norm
// otherwise than by that and the numbers of placeholders.
func foldMinus(lit, norm string) string {
	var b []byte // nil until a minus sign is dropped
	i, j := 0, 0
	for i < len(lit) && j < len(norm) {
		switch {
		case lit[i] == norm[j]:
			if b != nil {
				b = append(b, lit[i])
			}
			i++
			j++
			if lit[i-1] == '$' {
				// The placeholders' numbers may differ.
				for i < len(lit) && isDigit(lit[i]) {
					if b != nil {
						b = append(b, lit[i])
					}
					i++
				}
				for j < len(norm) && isDigit(norm[j]) {
					j++
				}
			}
			continue
		case lit[i] == '-' && norm[j] == '$':
			k := i + 1
			for k < len(lit) && isSpace(lit[k]) {
				k++
			}
			if k < len(lit) && lit[k] == '$' {
				if b == nil {
					b = append(make([]byte, 0, len(lit)), lit[:i]...)
				}
				i = k
				continue
			}
		}
		return lit
	}
	if b == nil || i < len(lit) || j < len(norm) {
		return lit
	}
	return string(b)
}

// samePlaceholders reports whether a and b are the same text once each
// $n is read as $: the same constants replaced at the same places,
// whatever their numbers.
func samePlaceholders(a, b string) bool {
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		if a[i] != b[j] {
			return false
		}
		i++
		j++
		if a[i-1] == '$' {
			for i < len(a) && isDigit(a[i]) {
				i++
			}
			for j < len(b) && isDigit(b[j]) {
				j++
			}
		}
	}
	return i == len(a) && j == len(b)
}
