package server

import (
	"context"
	"crypto/sha256"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/hcl/v2"
	"go.uber.org/zap"

	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/policy/live"
	"github.com/pgveil/pgveil/proxy"
	"github.com/pgveil/pgveil/rewrite"
)

// Enforcement is what enforcing a configuration's policies needs at run
// time: the identities users authenticate as and the rewriting engine
// with its catalog snapshot.
type Enforcement struct {
	Config     *policy.Config
	Identities *policy.Identities
	Engine     *rewrite.Engine
	// Version is the policy version (configuration files and identities).
	Version string
	// policies caches the compiled policy of each login.
	// NOTE: safe because Config and Identities never change for an
	// Enforcement; a reload builds a new one.
	policies sync.Map // login → compiled
	// directory holds the users of directory logins, under the names
	// directoryLogin gives them.
	directory sync.Map // directory name → *policy.User
	// log is SetLogger's; nil logs nothing.
	log atomic.Pointer[zap.Logger]
	// drift checks the catalog snapshots read after the first.
	drift *drift
	// warned holds the warnings of the load that built it (warningKey),
	// so that an identity refresh logs only the warnings it brings.
	warned map[string]bool
}

// warningKey identifies a warning among the warnings of loads.
func warningKey(d *hcl.Diagnostic) string { return d.Summary + "\x00" + d.Detail }

// directoryPrefix starts the engine's name of a directory login. No
// client login holds a NUL byte (startup parameters end at one), so such
// a name is never a configured login's.
const directoryPrefix = "\x00directory\x00"

// directoryLogin returns the name under which the engine compiles the
// policy of login authenticated by the directory with groupDNs: one name
// per login and resulting roles and groups, so that a change in the
// directory or in the mapping gives a new policy, never a cached one.
// A login the mapping gives no role gets a name that compiles to no
// access.
func (e *Enforcement) directoryLogin(login string, groupDNs []string) string {
	u, ok := e.Identities.DirectoryUser(login, groupDNs)
	if !ok {
		return directoryPrefix + "none\x00" + login
	}
	name := fmt.Sprintf("%s%q\x00%q\x00%q", directoryPrefix, login, u.Roles, u.Groups)
	e.directory.LoadOrStore(name, u)
	return name
}

// DirectoryLogin is directoryLogin for pgveil explain: the name under
// which Engine rewrites the statements of login, a person the directory
// authenticated with groupDNs, as serve's sessions of her are rewritten.
func (e *Enforcement) DirectoryLogin(login string, groupDNs []string) string {
	return e.directoryLogin(login, groupDNs)
}

// compiled is a cached Compile outcome.
type compiled struct {
	p   rewrite.Policy
	err error
}

// LoadEnforcement connects upstream as the service account, loads the
// identities and the catalog snapshot, and builds the engine. The
// diagnostics hold the identity sources' warnings; an error means the
// policies cannot be enforced and pgveil must not serve.
func LoadEnforcement(ctx context.Context, cfg *policy.Config) (*Enforcement, hcl.Diagnostics, error) {
	return loadEnforcement(ctx, cfg, nil)
}

// loadEnforcement is LoadEnforcement, but for an identity refresh of
// prev, the Enforcement in force (cfg being its configuration), unless
// nil: when the identities read give prev's policy version, it stops
// there and returns nil and no error; otherwise the catalog snapshot
// read is checked against prev's baseline, as the catalog watch checks
// the snapshots it reads, rather than taken as the baseline.
func loadEnforcement(ctx context.Context, cfg *policy.Config, prev *Enforcement) (*Enforcement, hcl.Diagnostics, error) {
	conn, err := proxy.ConnectService(ctx, cfg, "catalog")
	if err != nil {
		return nil, nil, fmt.Errorf("connecting upstream to load identities and catalog: %w", err)
	}
	defer conn.Close(context.Background())
	ids, diags := cfg.LoadIdentities(ctx, live.New(conn))
	if diags.HasErrors() || ids == nil {
		return nil, diags, fmt.Errorf("loading identities failed")
	}
	if prev != nil && cfg.Version(ids) == prev.Version {
		return nil, diags, nil
	}
	path := proxy.SearchPath(cfg.Upstream.SearchPath, cfg.Upstream.User)
	cat, err := rewrite.LoadCatalog(ctx, conn, path)
	if err != nil {
		return nil, diags, fmt.Errorf("loading the catalog snapshot: %w", err)
	}
	// NOTE: what `pgveil check --upstream` checks, serve checks too: a
	// policy that names a column or a table otherwise than the database
	// does would be served open (a mask of "Email" masks no email, a
	// restrictive rule on a table no relation is restricts nothing).
	cd := cfg.CheckCatalog(ctx, live.New(conn), cat, ids)
	diags = append(diags, cd...)
	if cd.HasErrors() {
		if slices.ContainsFunc(cd, func(d *hcl.Diagnostic) bool { return d.Summary == policy.CannotCheckSummary }) {
			return nil, diags, fmt.Errorf("checking the policies against database %s failed", cfg.Upstream.Database)
		}
		return nil, diags, fmt.Errorf("the policies do not match database %s (pgveil check --upstream reports the same)", cfg.Upstream.Database)
	}
	// NOTE: a hash mask whose key is missing upstream would hash to NULL
	// silently: refuse to serve instead.
	if kd := cfg.CheckMaskKeys(ctx, live.New(conn)); kd.HasErrors() {
		return nil, append(diags, kd...), fmt.Errorf("the hash masks' keys are not installed upstream as configured")
	}
	// NOTE: what `pgveil check` warns about, serve says at start and at
	// each reload: a DBA who never ran check learns there that the
	// service account is a superuser or may read the server's files, or
	// that the configuration serves no one. Advice only: a failure to ask
	// is a warning too, not a reason to stop serving.
	for _, d := range cfg.CheckServiceAccount(ctx, live.New(conn), cat) {
		w := *d
		w.Severity = hcl.DiagWarning
		diags = append(diags, &w)
	}
	for _, w := range cfg.ServeWarnings() {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: w})
	}
	e := &Enforcement{Config: cfg, Identities: ids, Version: cfg.Version(ids)}
	d := &drift{baseline: cfg.Baseline(cat), raw: cat.Digest, digest: cat.Digest}
	refresh := func(ctx context.Context) (*rewrite.Catalog, error) {
		c, err := proxy.ConnectService(ctx, cfg, "catalog")
		if err != nil {
			return nil, err
		}
		defer c.Close(context.Background())
		fresh, err := rewrite.LoadCatalog(ctx, c, path)
		if err != nil {
			return nil, err
		}
		if err := d.check(ctx, e, live.New(c), fresh); err != nil {
			return nil, err
		}
		return fresh, nil
	}
	e.drift = d
	if prev != nil {
		// NOTE: a refresh of the rows is no DBA's word that the
		// policies match the database again, as a reload that
		// classifies the changed columns is (carryFrom): DDL the
		// catalog watch did not read yet (a pattern-governed column
		// renamed out of its pattern) stays refused as the watch would
		// refuse it, never becomes the baseline.
		prev.drift.mu.Lock()
		d.baseline, d.raw = prev.drift.baseline, [32]byte{}
		prev.drift.mu.Unlock()
		if err := d.check(ctx, e, live.New(conn), cat); err != nil {
			return nil, diags, fmt.Errorf("checking the policies against the catalog snapshot read with the identities: %w", err)
		}
	}
	e.Engine = rewrite.NewEngine(cat, e.compile, refresh, 10000)
	// The audit trail records each statement's fingerprint: statements
	// served from a shape cache bring theirs.
	e.Engine.SetFingerprints(cfg.Audit != nil)
	e.warned = map[string]bool{}
	for _, d := range diags {
		if d.Severity == hcl.DiagWarning {
			e.warned[warningKey(d)] = true
		}
	}
	return e, diags, nil
}

// SetLogger sets where the Enforcement logs what happens after it was
// loaded: a catalog snapshot the policies no longer match (drift).
func (e *Enforcement) SetLogger(log *zap.Logger) { e.log.Store(log) }

// drift keeps what DDL upstream changes from opening what the policies
// govern: each catalog snapshot read after the first goes through
// policy.Config.Drift, which refuses the relations the policies no longer
// protect in it as they did, before it is put in force.
type drift struct {
	// NOTE: mu guards every field.
	mu sync.Mutex
	// baseline is what the policies protect, as of the latest snapshot
	// checked (Drift moves it forward).
	baseline *policy.Baseline
	// raw is the digest, as read, of the latest snapshot checked, zero
	// when the next must be checked whatever its digest (a refusal for a
	// lock); refused and digest are what the check gave it: a snapshot
	// with the same raw digest gets them without a check (refreshes of
	// an unchanged catalog cost one read, nothing more).
	raw     [32]byte
	refused map[uint32]string
	digest  [32]byte
}

// driftLockTimeout bounds each wait for a lock while a changed snapshot
// is checked: a table locked by VACUUM FULL or a pending ALTER is refused
// until the next read instead of holding the read (and the statements
// waiting on it).
const driftLockTimeout = "SET lock_timeout = '1s'"

// check runs Drift on fresh, read through srv, unless its raw digest is
// that of the latest snapshot checked; it logs the refusals of a
// snapshot that differs. A snapshot refusing relations gets a digest of
// its own, so that the engine puts it in force (or the one that lifts
// them) even though the catalog read the same.
func (d *drift) check(ctx context.Context, e *Enforcement, srv policy.Server, fresh *rewrite.Catalog) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	raw := fresh.Digest
	if raw == d.raw && raw != ([32]byte{}) {
		for _, rel := range fresh.Relations {
			rel.Refused = d.refused[rel.OID]
		}
		fresh.Digest = d.digest
		fresh.Refusals = refusalsTag(fresh)
		return nil
	}
	if _, _, err := srv.Query(ctx, driftLockTimeout); err != nil {
		return fmt.Errorf("checking the policies against the new catalog snapshot: %w", err)
	}
	out, err := e.Config.Drift(ctx, srv, fresh, e.Identities, d.baseline)
	if err != nil {
		return err
	}
	d.baseline = out.Next
	refused := markRefusals(fresh)
	d.raw, d.refused, d.digest = raw, refused, fresh.Digest
	if out.Transient {
		d.raw = [32]byte{}
	}
	if log := e.log.Load(); log != nil && len(out.Refused) > 0 {
		var errs []string
		for _, dg := range out.Diagnostics {
			if dg.Severity == hcl.DiagError {
				errs = append(errs, dg.Error())
			}
		}
		log.Error("the upstream catalog changed and the policies no longer protect some relations as they did: they are refused "+
			"until the policies are updated and pgveil reloaded, or the DDL undone (pgveil check --upstream shows the problems)",
			zap.Strings("refused", out.Refused), zap.Strings("problems", errs))
	}
	return nil
}

// markRefusals gives cat, whose relations Drift or Carry marked, its
// Refusals tag and, when it refuses relations, a digest of its own, and
// returns its refusals by OID.
func markRefusals(cat *rewrite.Catalog) map[uint32]string {
	refused := map[uint32]string{}
	for _, rel := range cat.Relations {
		if rel.Refused != "" {
			refused[rel.OID] = rel.Refused
		}
	}
	cat.Refusals = refusalsTag(cat)
	if len(refused) > 0 {
		h := sha256.New()
		h.Write(cat.Digest[:])
		h.Write([]byte(cat.Refusals))
		for _, oid := range slices.Sorted(maps.Keys(refused)) {
			fmt.Fprintf(h, "%d\x00%s\x00", oid, refused[oid])
		}
		h.Sum(cat.Digest[:0])
	}
	return refused
}

// refusalsTag names the set of relations cat refuses, "" for none.
func refusalsTag(cat *rewrite.Catalog) string {
	var oids []uint32
	for _, rel := range cat.Relations {
		if rel.Refused != "" {
			oids = append(oids, rel.OID)
		}
	}
	if len(oids) == 0 {
		return ""
	}
	slices.Sort(oids)
	h := sha256.New()
	for _, oid := range oids {
		fmt.Fprintf(h, "%d,", oid)
	}
	return fmt.Sprintf("refusing-%x", h.Sum(nil)[:6])
}

// carryFrom refuses in e's snapshot, before e is put in force by a
// reload, what DDL changed behind old's back, whether old's catalog
// watch read it or not, and e's policies do not protect as they did
// before the DDL (policy.Config.Carry).
func (e *Enforcement) carryFrom(old *Enforcement) {
	old.drift.mu.Lock()
	oldB := old.drift.baseline
	old.drift.mu.Unlock()
	cat := e.Engine.Catalog()
	b, why := e.Config.Carry(cat, old.Config, old.Engine.Catalog(), oldB)
	e.drift.mu.Lock()
	defer e.drift.mu.Unlock()
	e.drift.baseline = b
	if len(why) == 0 {
		return
	}
	markRefusals(cat)
	// The next read checks again whatever its digest.
	e.drift.raw = [32]byte{}
	if log := e.log.Load(); log != nil {
		log.Error("relations changed by DDL are refused: the reloaded policies do not protect them as before the DDL "+
			"(update the policies for the DDL and reload, or undo it)",
			zap.Strings("refused", why))
	}
}

// version is the version statements rewritten now are checked under:
// the policy version, and the set of relations the snapshot in force
// refuses, so that a statement prepared before a refusal is checked
// again (prepared again, or refused as policy_changed) rather than run
// as prepared.
func (e *Enforcement) version() string {
	if tag := e.Engine.Catalog().Refusals; tag != "" {
		return e.Version + "+" + tag
	}
	return e.Version
}

// compile returns the compiled policy of login, compiling it once.
func (e *Enforcement) compile(login string) (rewrite.Policy, error) {
	if c, ok := e.policies.Load(login); ok {
		return c.(compiled).p, c.(compiled).err
	}
	var p rewrite.Policy
	var err error
	switch u, ok := e.directory.Load(login); {
	case ok:
		p, err = e.Config.CompileUser(u.(*policy.User), e.Identities)
	case strings.HasPrefix(login, directoryPrefix):
		return nil, fmt.Errorf("%w: the directory's groups give this login no role", policy.ErrNoAccess)
	default:
		p, err = e.Config.Compile(login, e.Identities)
	}
	e.policies.Store(login, compiled{p: p, err: err})
	return p, err
}

// Apply sets the options that enforce the policies: the rewriter, the
// users and the scrubbing of data errors. The policies are fixed; see
// Policies.Apply for policies that reload.
func (e *Enforcement) Apply(o *proxy.Options) {
	NewPolicies(e).Apply(o)
}
