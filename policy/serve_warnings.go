package policy

// ServeWarnings reports configurations that load but serve no one or
// nothing, as when a file of a directory was not installed: no users
// (user blocks or identity queries), no table blocks while every schema
// denies its ungoverned tables. `pgveil check` prints them; serve logs
// them at start and at each reload.
func (c *Config) ServeWarnings() []string {
	var out []string
	if len(c.Users) == 0 && len(c.IdentitySources) == 0 {
		out = append(out, "no users: pgveil will accept no one (add user blocks, or an identity block reading them upstream)")
	}
	if len(c.Tables) == 0 && !c.opensSchemas() {
		out = append(out, "no table blocks: every table is denied to every user (add table blocks for the tables users may read)")
	}
	return out
}

// OpenWarning is, for a configuration with no table blocks and a schema
// that serves its ungoverned tables, what `pgveil check` says of it: it
// masks and filters nothing. Serve does not log it: a pass-through
// firewall is a configuration of its own.
func (c *Config) OpenWarning() string {
	if len(c.Tables) == 0 && c.opensSchemas() {
		return "no table blocks: no column is masked and no row filtered; only schemas with default = \"allow\" are served, in full"
	}
	return ""
}

// opensSchemas reports whether a schema block serves its ungoverned
// tables (default = "allow").
func (c *Config) opensSchemas() bool {
	for _, s := range c.Schemas {
		if s.Allow {
			return true
		}
	}
	return false
}
