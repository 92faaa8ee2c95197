package policy

import (
	"fmt"
	"math/big"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"

	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/pgveil/pgveil/rewrite"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"

	"github.com/pgveil/pgveil/internal/scram"
)

// Defaults and limits of the configuration language.
const (
	defaultStartupTimeout  = 10 * time.Second
	defaultShutdownTimeout = 30 * time.Second
	defaultMaxMessageSize  = 64 << 20
	// minMaxMessageSize keeps room for any startup or authentication
	// message a client may legitimately send.
	minMaxMessageSize = 16 << 10
	// maxMaxMessageSize is PostgreSQL's own limit (MaxAllocSize - 1).
	maxMaxMessageSize     = 1<<30 - 1
	defaultSearchPath     = "public"
	defaultConnectTimeout = 5 * time.Second
	// defaultCheckInterval is upstream.client_connection_check_interval's.
	defaultCheckInterval = 10 * time.Second
	// maxCheckInterval is the longest client_connection_check_interval
	// PostgreSQL accepts: 2^31-1 milliseconds.
	maxCheckInterval      = (1<<31 - 1) * time.Millisecond
	defaultCatalogRefresh = time.Minute
	defaultPoolSize       = 20
	maxPoolSize           = 10000
	defaultPoolWait       = 5 * time.Second
	defaultPoolIdle       = 10 * time.Minute
	// defaultPoolIdleTransaction is upstream.pool.idle_transaction_timeout's
	// default.
	defaultPoolIdleTransaction = 10 * time.Minute
	defaultKeepIdle            = 100
	// defaultMaxConnections caps the client connections of a server
	// that sets no listen.max_connections.
	defaultMaxConnections = 10000
	// defaultMaxStartupPerAddress caps the connections of one client
	// address still in their startup.
	defaultMaxStartupPerAddress = 128
	// defaultMaxAuthFailures is how many failed logins of one login from
	// one address a minute allows.
	defaultMaxAuthFailures = 10
	// maxConnectionsLimit bounds every connection cap: each connection
	// takes a descriptor or two.
	maxConnectionsLimit = 1000000
)

// verifierPrefix starts every SCRAM-SHA-256 verifier.
const verifierPrefix = "SCRAM-SHA-256$"

// Schemas of the configuration language; configs/README.md documents
// them.
var (
	rootSchema = &hcl.BodySchema{
		Blocks: []hcl.BlockHeaderSchema{
			{Type: "listen"},
			{Type: "upstream"},
			{Type: "user", LabelNames: []string{"name"}},
			{Type: "identity", LabelNames: []string{"name"}},
			{Type: "teams"},
			{Type: "team", LabelNames: []string{"name"}},
			{Type: "role", LabelNames: []string{"name"}},
			{Type: "table", LabelNames: []string{"name"}},
			{Type: "schema", LabelNames: []string{"name"}},
			{Type: "rule", LabelNames: []string{"name"}},
			{Type: "test", LabelNames: []string{"name"}},
			{Type: "audit"},
			{Type: "admin"},
			{Type: "ldap"},
		},
	}
	listenSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{
			{Name: "address", Required: true},
			{Name: "database"},
			{Name: "startup_timeout"},
			{Name: "shutdown_timeout"},
			{Name: "max_message_size"},
			{Name: "max_connections"},
			{Name: "max_user_connections"},
			{Name: "max_startup_per_address"},
			{Name: "max_auth_failures"},
			{Name: "relay"},
		},
		Blocks: []hcl.BlockHeaderSchema{{Type: "tls"}},
	}
	listenTLSSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{
			{Name: "cert_file", Required: true},
			{Name: "key_file", Required: true},
			{Name: "require"},
			{Name: "client_ca_file"},
			{Name: "client_crl_file"},
			{Name: "client_name"},
		},
	}
	upstreamSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{
			{Name: "address", Required: true},
			{Name: "database", Required: true},
			{Name: "user", Required: true},
			{Name: "password"},
			{Name: "search_path"},
			{Name: "connect_timeout"},
			{Name: "client_connection_check_interval"},
			{Name: "catalog_refresh"},
		},
		Blocks: []hcl.BlockHeaderSchema{{Type: "tls"}, {Type: "pool"}},
	}
	upstreamTLSSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{
			{Name: "mode", Required: true},
			{Name: "ca_file"},
			{Name: "server_name"},
		},
	}
	upstreamPoolSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{
			{Name: "mode"},
			{Name: "size"},
			{Name: "wait_timeout"},
			{Name: "idle_timeout"},
			{Name: "idle_transaction_timeout"},
			{Name: "keep_idle"},
			{Name: "max_per_user"},
		},
	}
	userSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{
			{Name: "password"},
			{Name: "auth"},
			{Name: "roles"},
			{Name: "team"},
			{Name: "groups"},
			{Name: "attributes"},
			{Name: "act_for"},
			{Name: "max_connections"},
			{Name: "max_pool_backends"},
		},
	}
)

// decoder turns parsed files into a Config, collecting diagnostics.
type decoder struct {
	// ctx evaluates every expression.
	ctx *hcl.EvalContext
	// diags collects every problem found.
	diags hcl.Diagnostics
	// testsFrom and testsTo delimit the diagnostics of test blocks in
	// diags (decodeFiles decodes them last, and they have no effect on
	// serving): errors only there leave the policy whole (Loader.WithoutTests).
	testsFrom, testsTo int
	// cfg is the configuration being built.
	cfg *Config
	// attrs remembers the attribute behind each setting, keyed by its
	// dotted name ("listen.tls.cert_file"), for diagnostics after decoding.
	attrs map[string]*hcl.Attribute
	// sources maps a file name to its bytes, to point into SQL strings.
	sources map[string][]byte
	// env records the environment variables env() reads.
	env *envRecorder
	// userPasswordless lists the user blocks without a password, checked
	// once it is known whether identity blocks may supply one.
	userPasswordless []*hcl.Block
	// identityBlocks is true when the files hold identity blocks, valid
	// or not: users may then come from upstream rows.
	identityBlocks bool
	// droppedClasses are the column classes of table blocks dropped as
	// duplicates: a role listing one is not told the class is unknown on
	// top of the duplicate's error.
	droppedClasses map[string]bool
}

// newDecoder returns a decoder with an empty configuration.
func newDecoder() *decoder {
	env := &envRecorder{seen: map[string]string{}}
	return &decoder{
		ctx: evalContext(env),
		cfg: &Config{
			Users:   map[string]*User{},
			Roles:   map[string]*Role{},
			Schemas: map[string]*Schema{},
		},
		attrs:   map[string]*hcl.Attribute{},
		sources: map[string][]byte{},
		env:     env,
	}
}

// decodeFiles decodes the top-level blocks of every file, then checks the
// references between them.
func (d *decoder) decodeFiles(files []*hcl.File) {
	byType := map[string][]*hcl.Block{}
	for _, f := range files {
		content, diags := f.Body.Content(rootSchema)
		d.diags = append(d.diags, diags...)
		if content == nil {
			continue
		}
		for _, b := range content.Blocks {
			byType[b.Type] = append(byType[b.Type], b)
		}
	}
	if b := d.exactlyOne("listen", "saying where pgveil accepts client connections", byType["listen"]); b != nil {
		d.decodeListen(b)
	}
	if b := d.exactlyOne("upstream", "saying how pgveil reaches PostgreSQL", byType["upstream"]); b != nil {
		d.decodeUpstream(b)
	}
	if b := d.atMostOne("audit", byType["audit"]); b != nil {
		d.decodeAudit(b)
	}
	if b := d.atMostOne("admin", byType["admin"]); b != nil {
		d.decodeAdmin(b)
	}
	if d.cfg.Listen.Database == "" {
		d.cfg.Listen.Database = d.cfg.Upstream.Database
	}
	// NOTE: roles and tables come before what refers to them, so that
	// expressions can be checked against them; the order of blocks in the
	// files does not matter.
	for _, b := range byType["role"] {
		d.decodeRole(b)
	}
	if b := d.atMostOne("ldap", byType["ldap"]); b != nil {
		d.decodeLDAP(b)
	}
	for _, b := range byType["user"] {
		d.decodeUser(b)
	}
	d.identityBlocks = len(byType["identity"]) > 0
	for _, b := range byType["identity"] {
		d.decodeIdentity(b)
	}
	d.decodeTeams(byType["teams"], byType["team"])
	for _, b := range byType["table"] {
		d.decodeTable(b)
	}
	for _, b := range byType["schema"] {
		d.decodeSchema(b)
	}
	for _, b := range byType["rule"] {
		d.decodeRule(b)
	}
	d.crossCheck()
	d.testsFrom = len(d.diags)
	for _, b := range byType["test"] {
		d.decodeTest(b)
	}
	d.testsTo = len(d.diags)
	d.cfg.attrs = d.attrs
}

// exactlyOne reports a missing block or every duplicate, and returns the
// first block or nil.
func (d *decoder) exactlyOne(kind, purpose string, blocks []*hcl.Block) *hcl.Block {
	if len(blocks) == 0 {
		d.diags = append(d.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  fmt.Sprintf("Missing %s block", kind),
			Detail:   fmt.Sprintf("A configuration needs exactly one %s block, %s.", kind, purpose),
		})
		return nil
	}
	d.duplicateBlocks(kind, "exactly", blocks)
	return blocks[0]
}

// duplicateBlocks reports every block after the first of blocks, all of
// one kind that a configuration has howMany ("exactly", "at most") one of.
func (d *decoder) duplicateBlocks(kind, howMany string, blocks []*hcl.Block) {
	for _, b := range blocks[1:] {
		d.diags = append(d.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  fmt.Sprintf("Duplicate %s block", kind),
			Detail: fmt.Sprintf("A configuration has %s one %s block, and one is already defined at %s.",
				howMany, kind, position(blocks[0].DefRange)),
			Subject: b.DefRange.Ptr(),
		})
	}
}

// nested returns the only block of type kind (tls, pool) of a block's
// content, reporting duplicates.
func (d *decoder) nested(kind, parent string, blocks hcl.Blocks) *hcl.Block {
	blocks = blocks.OfType(kind)
	article := "A"
	if strings.ContainsRune("aeiou", rune(parent[0])) {
		article = "An"
	}
	for _, b := range blocks[min(1, len(blocks)):] {
		d.diags = append(d.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  fmt.Sprintf("Duplicate %s block", kind),
			Detail: fmt.Sprintf("%s %s block has at most one %s block, and one is already defined at %s.",
				article, parent, kind, position(blocks[0].DefRange)),
			Subject: b.DefRange.Ptr(),
		})
	}
	if len(blocks) == 0 {
		return nil
	}
	return blocks[0]
}

// content decodes a block body against schema and remembers its
// attributes under prefix.
func (d *decoder) content(body hcl.Body, schema *hcl.BodySchema, prefix string) *hcl.BodyContent {
	content, diags := body.Content(schema)
	d.diags = append(d.diags, diags...)
	if content == nil {
		content = &hcl.BodyContent{}
	}
	for name, a := range content.Attributes {
		d.attrs[prefix+"."+name] = a
	}
	return content
}

// decodeListen decodes the listen block.
func (d *decoder) decodeListen(b *hcl.Block) {
	c := d.content(b.Body, listenSchema, "listen")
	l := &d.cfg.Listen
	l.StartupTimeout = defaultStartupTimeout
	l.ShutdownTimeout = defaultShutdownTimeout
	l.MaxMessageSize = defaultMaxMessageSize
	l.MaxConnections = defaultMaxConnections
	l.MaxStartupPerAddress = defaultMaxStartupPerAddress
	l.MaxAuthFailures = defaultMaxAuthFailures
	l.Relay = RelayEventLoop
	if a := c.Attributes["address"]; a != nil {
		l.Address, _ = d.address(a, "listen.address", false)
	}
	if a := c.Attributes["database"]; a != nil {
		l.Database, _ = d.nonEmptyString(a, "listen.database")
	}
	if a := c.Attributes["startup_timeout"]; a != nil {
		l.StartupTimeout, _ = d.duration(a, "listen.startup_timeout")
	}
	if a := c.Attributes["shutdown_timeout"]; a != nil {
		l.ShutdownTimeout, _ = d.duration(a, "listen.shutdown_timeout")
	}
	if a := c.Attributes["max_message_size"]; a != nil {
		l.MaxMessageSize, _ = d.integer(a, "listen.max_message_size", minMaxMessageSize, maxMaxMessageSize)
	}
	if a := c.Attributes["max_connections"]; a != nil {
		l.MaxConnections, _ = d.wholeNumber(a, "listen.max_connections", 1, maxConnectionsLimit)
	}
	if a := c.Attributes["max_user_connections"]; a != nil {
		l.MaxUserConnections, _ = d.wholeNumber(a, "listen.max_user_connections", 0, maxConnectionsLimit)
	}
	if a := c.Attributes["max_startup_per_address"]; a != nil {
		l.MaxStartupPerAddress, _ = d.wholeNumber(a, "listen.max_startup_per_address", 0, maxConnectionsLimit)
	}
	if a := c.Attributes["max_auth_failures"]; a != nil {
		l.MaxAuthFailures, _ = d.wholeNumber(a, "listen.max_auth_failures", 0, maxConnectionsLimit)
	}
	if a := c.Attributes["relay"]; a != nil {
		l.Relay, _ = d.choice(a, "listen.relay", []string{RelayEventLoop, RelayGoroutines})
	}
	if tb := d.nested("tls", "listen", c.Blocks); tb != nil {
		tc := d.content(tb.Body, listenTLSSchema, "listen.tls")
		t := &ListenTLS{}
		if a := tc.Attributes["cert_file"]; a != nil {
			t.CertFile, _ = d.path(a, "listen.tls.cert_file")
		}
		if a := tc.Attributes["key_file"]; a != nil {
			t.KeyFile, _ = d.path(a, "listen.tls.key_file")
		}
		if a := tc.Attributes["require"]; a != nil {
			t.Require, _ = d.boolean(a)
		}
		if a := tc.Attributes["client_ca_file"]; a != nil {
			t.ClientCAFile, _ = d.path(a, "listen.tls.client_ca_file")
		}
		if a := tc.Attributes["client_crl_file"]; a != nil {
			t.ClientCRLFile, _ = d.path(a, "listen.tls.client_crl_file")
		}
		t.ClientName = ClientNameCN
		if a := tc.Attributes["client_name"]; a != nil {
			t.ClientName, _ = d.choice(a, "listen.tls.client_name", []string{ClientNameCN, ClientNameDN})
		}
		l.TLS = t
	}
}

// decodeUpstream decodes the upstream block.
func (d *decoder) decodeUpstream(b *hcl.Block) {
	c := d.content(b.Body, upstreamSchema, "upstream")
	u := &d.cfg.Upstream
	u.SearchPath = defaultSearchPath
	u.ConnectTimeout = defaultConnectTimeout
	u.ClientConnectionCheckInterval = defaultCheckInterval
	u.CatalogRefresh = defaultCatalogRefresh
	u.TLS.Mode = TLSDisable
	u.Pool = Pool{Mode: PoolSession, Size: defaultPoolSize, WaitTimeout: defaultPoolWait, IdleTimeout: defaultPoolIdle,
		IdleTransactionTimeout: defaultPoolIdleTransaction, KeepIdle: defaultKeepIdle}
	if a := c.Attributes["address"]; a != nil {
		u.Address, _ = d.address(a, "upstream.address", true)
	}
	if a := c.Attributes["database"]; a != nil {
		u.Database, _ = d.nonEmptyString(a, "upstream.database")
	}
	if a := c.Attributes["user"]; a != nil {
		u.User, _ = d.nonEmptyString(a, "upstream.user")
	}
	if a := c.Attributes["password"]; a != nil {
		var ok bool
		if u.Password, ok = d.string(a); ok && u.Password != "" && !callsFunction(a.Expr) {
			d.diags = append(d.diags, &hcl.Diagnostic{
				Severity: hcl.DiagWarning,
				Summary:  "Plain secret in configuration file",
				Detail: "upstream.password is written in the file itself, where anyone who can read the " +
					"file, its backups or its history can see it. Read it from the environment instead, " +
					`for example: password = env("PGVEIL_UPSTREAM_PASSWORD").`,
				Subject: a.Expr.Range().Ptr(),
			})
		}
	}
	if a := c.Attributes["search_path"]; a != nil {
		u.SearchPath, _ = d.nonEmptyString(a, "upstream.search_path")
		for _, s := range strings.Split(u.SearchPath, ",") {
			if strings.Trim(strings.TrimSpace(s), `"`) == rewrite.InternalSchema {
				d.diags = append(d.diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "Internal schema on the search path",
					Detail: fmt.Sprintf("The schema %s holds pgveil's own keys and functions; "+
						"it must not be on upstream.search_path.", rewrite.InternalSchema),
					Subject: a.Expr.Range().Ptr(),
				})
			}
		}
	}
	if a := c.Attributes["connect_timeout"]; a != nil {
		u.ConnectTimeout, _ = d.duration(a, "upstream.connect_timeout")
	}
	if a := c.Attributes["client_connection_check_interval"]; a != nil {
		// "0" turns the pinning off.
		if s, ok := d.string(a); ok {
			if dur, err := time.ParseDuration(s); s == "0" || err == nil && dur == 0 {
				u.ClientConnectionCheckInterval = 0
			} else {
				dur, ok := d.duration(a, "upstream.client_connection_check_interval")
				if ok && dur > maxCheckInterval {
					// PostgreSQL refuses it, and with it every
					// connection pgveil opens.
					d.errorAt(a, "Invalid duration", fmt.Sprintf("upstream.client_connection_check_interval must be at most %s, PostgreSQL's limit.", maxCheckInterval))
				}
				u.ClientConnectionCheckInterval = dur
			}
		}
	}
	if a := c.Attributes["catalog_refresh"]; a != nil {
		u.CatalogRefresh, _ = d.duration(a, "upstream.catalog_refresh")
	}
	if tb := d.nested("tls", "upstream", c.Blocks); tb != nil {
		tc := d.content(tb.Body, upstreamTLSSchema, "upstream.tls")
		if a := tc.Attributes["mode"]; a != nil {
			u.TLS.Mode, _ = d.tlsMode(a)
		}
		if a := tc.Attributes["ca_file"]; a != nil {
			u.TLS.CAFile, _ = d.path(a, "upstream.tls.ca_file")
		}
		if a := tc.Attributes["server_name"]; a != nil {
			u.TLS.ServerName, _ = d.nonEmptyString(a, "upstream.tls.server_name")
		}
	}
	if pb := d.nested("pool", "upstream", c.Blocks); pb != nil {
		pc := d.content(pb.Body, upstreamPoolSchema, "upstream.pool")
		if a := pc.Attributes["mode"]; a != nil {
			u.Pool.Mode, _ = d.choice(a, "upstream.pool.mode", []string{PoolSession, PoolTransaction})
		}
		if a := pc.Attributes["size"]; a != nil {
			u.Pool.Size, _ = d.wholeNumber(a, "upstream.pool.size", 1, maxPoolSize)
		}
		if a := pc.Attributes["wait_timeout"]; a != nil {
			u.Pool.WaitTimeout, _ = d.duration(a, "upstream.pool.wait_timeout")
		}
		if a := pc.Attributes["idle_timeout"]; a != nil {
			u.Pool.IdleTimeout, _ = d.duration(a, "upstream.pool.idle_timeout")
		}
		if a := pc.Attributes["idle_transaction_timeout"]; a != nil {
			u.Pool.IdleTransactionTimeout, _ = d.duration(a, "upstream.pool.idle_transaction_timeout")
		}
		if a := pc.Attributes["keep_idle"]; a != nil {
			u.Pool.KeepIdle, _ = d.wholeNumber(a, "upstream.pool.keep_idle", 0, maxPoolSize)
		}
		if a := pc.Attributes["max_per_user"]; a != nil {
			if n, ok := d.wholeNumber(a, "upstream.pool.max_per_user", 0, maxPoolSize); ok {
				if n > u.Pool.Size {
					d.errorAt(a, "Invalid number", fmt.Sprintf(
						"upstream.pool.max_per_user (%d) must not exceed upstream.pool.size (%d): no login could hold more backends than the pool opens.",
						n, u.Pool.Size))
				} else {
					u.Pool.MaxPerUser = n
				}
			}
		}
	}
}

// decodeUser decodes one user block into Users.
func (d *decoder) decodeUser(b *hcl.Block) {
	name := b.Labels[0]
	c := d.content(b.Body, userSchema, "user."+name)
	if name == "" {
		d.diags = append(d.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid user name",
			Detail:   "A user block needs a non-empty login name.",
			Subject:  b.LabelRanges[0].Ptr(),
		})
		return
	}
	if prev, ok := d.cfg.Users[name]; ok {
		d.diags = append(d.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Duplicate user",
			Detail: fmt.Sprintf("A user named %q is already defined at %s. Each login name can be defined only once.",
				name, position(prev.DeclRange)),
			Subject: b.DefRange.Ptr(),
		})
		return
	}
	u := &User{Login: name, DeclRange: b.DefRange}
	d.cfg.Users[name] = u
	if a := c.Attributes["auth"]; a != nil {
		u.Auth, _ = d.choice(a, "user."+name+".auth", authMethods)
	}
	if a := c.Attributes["password"]; a != nil {
		u.Verifier, _ = d.verifier(a, name)
		u.set |= fieldPassword
	} else if u.Method() == AuthSCRAM {
		d.userPasswordless = append(d.userPasswordless, b)
	}
	if a := c.Attributes["max_connections"]; a != nil {
		u.MaxConnections, _ = d.wholeNumber(a, "user."+name+".max_connections", 1, maxConnectionsLimit)
	}
	if a := c.Attributes["max_pool_backends"]; a != nil {
		u.MaxPoolBackends, _ = d.wholeNumber(a, "user."+name+".max_pool_backends", 1, maxPoolSize)
	}
	d.decodeUserPolicy(u, c)
	d.decodeActFor(u, c)
}

// verifier decodes a user's password, which must be a SCRAM-SHA-256
// verifier.
func (d *decoder) verifier(a *hcl.Attribute, user string) (scram.Verifier, bool) {
	s, ok := d.string(a)
	if !ok {
		return scram.Verifier{}, false
	}
	const howTo = "Run `pgveil passwd` and paste the line it prints " +
		`(SCRAM-SHA-256$4096:<salt>$<StoredKey>:<ServerKey>), or copy the user's rolpassword ` +
		"from PostgreSQL's pg_authid."
	if !strings.HasPrefix(s, verifierPrefix) {
		summary, detail := "Plaintext password", fmt.Sprintf(
			"The password of user %q must be a SCRAM-SHA-256 verifier, not a plaintext password: "+
				"pgveil never stores passwords. %s", user, howTo)
		if len(s) == 35 && strings.HasPrefix(s, "md5") {
			summary, detail = "Unsupported MD5 password hash", fmt.Sprintf(
				"The password of user %q is an MD5 hash; pgveil only speaks SCRAM-SHA-256. %s", user, howTo)
		}
		d.errorAt(a, summary, detail)
		return scram.Verifier{}, false
	}
	v, err := scram.ParseVerifier(s)
	if err != nil {
		d.errorAt(a, "Invalid SCRAM verifier", fmt.Sprintf("The password of user %q is not a valid verifier: %s. %s",
			user, strings.TrimPrefix(err.Error(), "parsing verifier: "), howTo))
		return scram.Verifier{}, false
	}
	return v, true
}

// callsFunction reports whether expr contains a function call, such as
// env("NAME").
func callsFunction(expr hcl.Expression) bool {
	node, ok := expr.(hclsyntax.Node)
	if !ok {
		return true // not native syntax: give it the benefit of the doubt
	}
	found := false
	hclsyntax.VisitAll(node, func(n hclsyntax.Node) hcl.Diagnostics {
		if _, ok := n.(*hclsyntax.FunctionCallExpr); ok {
			found = true
		}
		return nil
	})
	return found
}

// errorAt reports an error about the value of a.
func (d *decoder) errorAt(a *hcl.Attribute, summary, detail string) {
	d.diags = append(d.diags, &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  summary,
		Detail:   detail,
		Subject:  a.Expr.Range().Ptr(),
		Context:  a.Range.Ptr(),
	})
}

// value evaluates a and converts the result to ty.
func (d *decoder) value(a *hcl.Attribute, ty cty.Type) (cty.Value, bool) {
	v, diags := a.Expr.Value(d.ctx)
	d.diags = append(d.diags, diags...)
	if diags.HasErrors() || !v.IsWhollyKnown() {
		return cty.NilVal, false
	}
	if v.IsNull() {
		d.errorAt(a, "Invalid value", fmt.Sprintf("The argument %q must not be null.", a.Name))
		return cty.NilVal, false
	}
	v, err := convert.Convert(v, ty)
	if err != nil {
		d.errorAt(a, "Incorrect attribute value type",
			fmt.Sprintf("Inappropriate value for argument %q: %s.", a.Name, err))
		return cty.NilVal, false
	}
	return v, true
}

// string decodes a string.
func (d *decoder) string(a *hcl.Attribute) (string, bool) {
	v, ok := d.value(a, cty.String)
	if !ok {
		return "", false
	}
	return v.AsString(), true
}

// nonEmptyString decodes a string that must not be empty.
func (d *decoder) nonEmptyString(a *hcl.Attribute, name string) (string, bool) {
	s, ok := d.string(a)
	if ok && s == "" {
		d.errorAt(a, "Invalid value", fmt.Sprintf("%s must not be empty.", name))
		return "", false
	}
	return s, ok
}

// boolean decodes a bool.
func (d *decoder) boolean(a *hcl.Attribute) (bool, bool) {
	v, ok := d.value(a, cty.Bool)
	if !ok {
		return false, false
	}
	return v.True(), true
}

// integer decodes a whole number in [lo, hi].
func (d *decoder) integer(a *hcl.Attribute, name string, lo, hi int) (int, bool) {
	v, ok := d.value(a, cty.Number)
	if !ok {
		return 0, false
	}
	bf := v.AsBigFloat()
	if !bf.IsInt() {
		d.errorAt(a, "Invalid size", fmt.Sprintf("%s must be a whole number of bytes.", name))
		return 0, false
	}
	if bf.Cmp(big.NewFloat(float64(lo))) < 0 || bf.Cmp(big.NewFloat(float64(hi))) > 0 {
		d.errorAt(a, "Invalid size", fmt.Sprintf("%s must be between %d and %d bytes.", name, lo, hi))
		return 0, false
	}
	n, _ := bf.Int64()
	return int(n), true
}

// duration decodes a positive Go duration string such as "10s".
func (d *decoder) duration(a *hcl.Attribute, name string) (time.Duration, bool) {
	return d.positiveDuration(a, name, "")
}

// positiveDuration is duration, whose error for a duration that is not
// positive ends with notPositive, when given: what to write instead of
// the zero that turns a feature off elsewhere.
func (d *decoder) positiveDuration(a *hcl.Attribute, name, notPositive string) (time.Duration, bool) {
	s, ok := d.string(a)
	if !ok {
		return 0, false
	}
	dur, err := time.ParseDuration(s)
	if err != nil {
		problem := fmt.Sprintf("%q is not one", s)
		if strings.Contains(err.Error(), "missing unit") {
			problem = fmt.Sprintf("%q has no unit", s)
		}
		d.errorAt(a, "Invalid duration",
			fmt.Sprintf("%s must be a duration such as \"10s\", \"1m30s\" or \"500ms\"; %s.", name, problem))
		return 0, false
	}
	if dur <= 0 {
		msg := fmt.Sprintf("%s must be positive.", name)
		if notPositive != "" {
			msg += " " + notPositive
		}
		d.errorAt(a, "Invalid duration", msg)
		return 0, false
	}
	return dur, true
}

// address decodes host:port with a numeric port; needHost refuses an
// empty host.
func (d *decoder) address(a *hcl.Attribute, name string, needHost bool) (string, bool) {
	s, ok := d.string(a)
	if !ok {
		return "", false
	}
	host, port, err := net.SplitHostPort(s)
	var problem string
	switch {
	case err != nil:
		problem = strings.TrimPrefix(err.Error(), "address "+s+": ")
	case needHost && host == "":
		problem = "the host is missing"
	default:
		if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
			problem = "the port must be a number from 1 to 65535"
		}
	}
	if problem != "" {
		d.errorAt(a, "Invalid address",
			fmt.Sprintf("%s must be host:port, such as \"127.0.0.1:6432\" or \"[::1]:6432\": %s.", name, problem))
		return "", false
	}
	return s, true
}

// path decodes a file name, resolving a relative one against the
// directory of the file that defines it.
func (d *decoder) path(a *hcl.Attribute, name string) (string, bool) {
	s, ok := d.nonEmptyString(a, name)
	if !ok {
		return "", false
	}
	if !filepath.IsAbs(s) {
		s = filepath.Join(filepath.Dir(a.Range.Filename), s)
	}
	return s, true
}

// authMethods lists the valid values of a user's auth, in the order
// messages give them.
var authMethods = []string{AuthSCRAM, AuthCert, AuthLDAP}

// tlsModes lists the valid upstream TLS modes, in the order messages
// show them.
var tlsModes = []string{TLSDisable, TLSRequire, TLSVerifyFull}

// tlsMode decodes upstream.tls.mode.
func (d *decoder) tlsMode(a *hcl.Attribute) (string, bool) {
	s, ok := d.string(a)
	if !ok {
		return "", false
	}
	for _, m := range tlsModes {
		if s == m {
			return s, true
		}
	}
	detail := `mode must be "disable", "require" or "verify-full".`
	switch strings.ToLower(s) {
	case "verify-ca", "verify_ca":
		detail += ` pgveil has no verify-ca: use "verify-full", which also checks the server's host name.`
	case "prefer", "allow":
		detail += ` pgveil never falls back to an unencrypted connection: use "require" or "verify-full".`
	default:
		if m := suggest(strings.ToLower(s), tlsModes); m != "" {
			detail += fmt.Sprintf(" Did you mean %q?", m)
		}
	}
	d.errorAt(a, "Invalid TLS mode", detail)
	return "", false
}

// suggest returns the candidate closest to given when it is close enough
// to be a typo, like HCL's own "Did you mean" suggestions.
// A name of a few letters is too short to guess at: at most half of
// its characters may differ (one for any name longer than one), and
// never three; a name differing only in case is always suggested.
// Swapping two neighbouring letters counts as one edit (editDistance).
//
// NOTE: a one-letter name is one edit from every other one-letter name:
// team "D" is no typo of team "A".
func suggest(given string, candidates []string) string {
	for _, c := range candidates {
		if c != given && strings.EqualFold(c, given) {
			return c
		}
	}
	n := utf8.RuneCountInString(given)
	best, bestDist := "", min(2, max(1, n/2))+1
	for _, c := range candidates {
		if d := editDistance(given, c); d < bestDist && d < n {
			best, bestDist = c, d
		}
	}
	return best
}

// Suggest is suggest, for the other commands' "Did you mean" (pgveil
// test's logins): one rule of what a near miss is everywhere.
func Suggest(given string, candidates []string) string { return suggest(given, candidates) }

// editDistance is the optimal string alignment distance between a and b,
// in runes: the fewest insertions, deletions, substitutions and swaps of
// two adjacent runes that make a into b, no rune being edited twice.
// Levenshtein's distance counts a swap (nsp for nps) as two edits, too
// many for a short name to get a suggestion.
func editDistance(a, b string) int {
	s, t := []rune(a), []rune(b)
	// NOTE: three rows: the previous two and the current one.
	prev2, prev, cur := make([]int, len(t)+1), make([]int, len(t)+1), make([]int, len(t)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(s); i++ {
		cur[0] = i
		for j := 1; j <= len(t); j++ {
			cost := 1
			if s[i-1] == t[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && s[i-1] == t[j-2] && s[i-2] == t[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(t)]
}

// position renders where r starts as file:line:column, as diagnostics'
// headers do.
func position(r hcl.Range) string {
	return fmt.Sprintf("%s:%d:%d", r.Filename, r.Start.Line, r.Start.Column)
}
