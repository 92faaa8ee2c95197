package policy

// ServeWarnings reports configurations that load but serve no one or
// nothing, as when a file of a directory was not installed: no users
// (user blocks or identity queries), no table blocks. `pgveil check`
// prints them; serve logs them at start and at each reload.
func (c *Config) ServeWarnings() []string {
	var out []string
	if len(c.Users) == 0 && len(c.IdentitySources) == 0 {
		out = append(out, "no users: pgveil will accept no one (add user blocks, or an identity block reading them upstream)")
	}
	if len(c.Tables) == 0 {
		open := false
		for _, s := range c.Schemas {
			open = open || s.Allow
		}
		if open {
			out = append(out, "no table blocks: no column is masked and no row filtered; only schemas with default = \"allow\" are served, in full")
		} else {
			out = append(out, "no table blocks: every table is denied to every user (add table blocks for the tables users may read)")
		}
	}
	return out
}
