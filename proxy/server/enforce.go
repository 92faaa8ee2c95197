package server

import (
	"context"
	"fmt"
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
}

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
	conn, err := proxy.ConnectService(ctx, cfg, "catalog")
	if err != nil {
		return nil, nil, fmt.Errorf("connecting upstream to load identities and catalog: %w", err)
	}
	defer conn.Close(context.Background())
	ids, diags := cfg.LoadIdentities(ctx, live.New(conn))
	if diags.HasErrors() || ids == nil {
		return nil, diags, fmt.Errorf("loading identities failed")
	}
	path := proxy.SearchPath(cfg.Upstream.SearchPath)
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
	e := &Enforcement{Config: cfg, Identities: ids, Version: cfg.Version(ids)}
	d := &drift{baseline: cfg.Baseline(cat), digest: cat.Digest}
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
	e.Engine = rewrite.NewEngine(cat, e.compile, refresh, 10000)
	// The audit trail records each statement's fingerprint: statements
	// served from a shape cache bring theirs.
	e.Engine.SetFingerprints(cfg.Audit != nil)
	return e, diags, nil
}

// SetLogger sets where the Enforcement logs what happens after it was
// loaded: a catalog snapshot the policies no longer match (drift).
func (e *Enforcement) SetLogger(log *zap.Logger) { e.log.Store(log) }

// drift keeps what DDL upstream changes from opening what the policies
// govern: each catalog snapshot read after the first goes through
// policy.Config.Drift, which refuses the relations the policies no longer
// match in it, before it is put in force.
type drift struct {
	// baseline is what the policies governed in the snapshot they were
	// loaded against.
	baseline *policy.Baseline
	// NOTE: mu guards the fields below. digest is the digest of the
	// latest snapshot checked, refused what Drift refused in it by OID:
	// a snapshot with the same digest gets the same refusals without a
	// check (refreshes of an unchanged catalog cost one read, nothing
	// more).
	mu      sync.Mutex
	digest  [32]byte
	refused map[uint32]string
}

// check runs Drift on fresh, read through srv, unless a snapshot with its
// digest was checked last; it logs the refusals of a snapshot that
// differs.
func (d *drift) check(ctx context.Context, e *Enforcement, srv policy.Server, fresh *rewrite.Catalog) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if fresh.Digest == d.digest && fresh.Digest != ([32]byte{}) {
		for _, rel := range fresh.Relations {
			rel.Refused = d.refused[rel.OID]
		}
		return nil
	}
	refused, diags, err := e.Config.Drift(ctx, srv, fresh, e.Identities, d.baseline)
	if err != nil {
		return err
	}
	d.digest, d.refused = fresh.Digest, map[uint32]string{}
	for _, rel := range fresh.Relations {
		if rel.Refused != "" {
			d.refused[rel.OID] = rel.Refused
		}
	}
	if log := e.log.Load(); log != nil && len(refused) > 0 {
		var errs []string
		for _, dg := range diags {
			if dg.Severity == hcl.DiagError {
				errs = append(errs, dg.Error())
			}
		}
		log.Error("the upstream catalog changed and the policies no longer match it: the relations they no longer match are refused "+
			"until the policies are updated and pgveil reloaded (pgveil check --upstream shows the problems)",
			zap.Strings("refused", refused), zap.Strings("problems", errs))
	}
	return nil
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
