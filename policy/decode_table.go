package policy

import (
	"cmp"
	"crypto/sha256"
	"fmt"
	"math/big"
	"slices"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/pgveil/pgveil/rewrite"
)

// Schemas of table, column and schema blocks.
var (
	tableSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{
			{Name: "owner_column"},
			{Name: "team_column"},
			{Name: "reference"},
			{Name: "pushdown"},
			{Name: "follows"},
		},
		Blocks: []hcl.BlockHeaderSchema{{Type: "column", LabelNames: []string{"name"}}},
	}
	columnSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{
			{Name: "class", Required: true},
			{Name: "mask"},
			{Name: "value"},
			{Name: "keep_start"},
			{Name: "keep_end"},
			{Name: "secret"},
			{Name: "expression"},
		},
	}
	schemaSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{
			{Name: "default", Required: true},
		},
	}
)

// maskKinds lists the mask kinds in the order messages show them.
var maskKinds = []string{MaskNull, MaskRedact, MaskPartial, MaskHash, MaskExpression}

// maskSettings maps each mask setting to the kind it belongs to.
var maskSettings = map[string]string{
	"value":      MaskRedact,
	"keep_start": MaskPartial,
	"keep_end":   MaskPartial,
	"secret":     MaskHash,
	"expression": MaskExpression,
}

// defaultRedaction is the constant of a redact mask without value.
const defaultRedaction = "***"

// maxKeep bounds keep_start and keep_end.
const maxKeep = 1000

// decodeTable decodes one table block into Tables.
func (d *decoder) decodeTable(b *hcl.Block) {
	label := b.Labels[0]
	p, problem := parsePattern(label)
	if problem == "" {
		for _, prev := range d.cfg.Tables {
			if prev.Pattern == p {
				d.duplicate(b, "table", label, prev.DeclRange)
				d.dropTable(b)
				return
			}
		}
	}
	c := d.content(b.Body, tableSchema, "table."+label)
	if problem == "" && catalogSchemas[p.Schema] {
		problem = fmt.Sprintf("%s relations cannot be governed: pgveil leaves the catalog open to the rewriter, "+
			"which applies its own list of what clients may read there.", p.Schema)
	}
	if problem != "" {
		d.diags = append(d.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid table name",
			Detail:   problem,
			Subject:  b.LabelRanges[0].Ptr(),
		})
		return
	}
	t := &Table{Pattern: p, Columns: map[string]*Column{}, Pushdown: true, DeclRange: b.DefRange}
	d.cfg.Tables = append(d.cfg.Tables, t)
	if a := c.Attributes["owner_column"]; a != nil {
		t.OwnerColumn, _ = d.nonEmptyString(a, "owner_column")
	}
	if a := c.Attributes["team_column"]; a != nil {
		t.TeamColumn, _ = d.nonEmptyString(a, "team_column")
	}
	if a := c.Attributes["reference"]; a != nil {
		t.Reference, _ = d.boolean(a)
	}
	if a := c.Attributes["pushdown"]; a != nil {
		if v, ok := d.boolean(a); ok {
			t.Pushdown = v
		}
	}
	if a := c.Attributes["follows"]; a != nil {
		t.Follows = d.follows(a)
	}
	for _, cb := range c.Blocks {
		d.decodeColumn(t, cb)
	}
	d.checkMaskReads(t)
}

// follows decodes a table block's follows attribute, an object of three
// strings: table (schema.name), column and key; nil when invalid.
func (d *decoder) follows(a *hcl.Attribute) *Follows {
	v, ok := d.value(a, cty.Object(map[string]cty.Type{"table": cty.String, "column": cty.String, "key": cty.String}))
	if !ok {
		return nil
	}
	f := &Follows{Column: v.GetAttr("column").AsString(), Key: v.GetAttr("key").AsString(), Range: a.Expr.Range()}
	table := v.GetAttr("table").AsString()
	p, problem := parsePattern(table)
	switch {
	case problem != "":
	case !p.Exact():
		problem = "follows.table must name one table exactly, schema.table, without a pattern."
	case f.Column == "" || f.Key == "":
		problem = "follows.column and follows.key must not be empty."
	}
	if problem != "" {
		d.errorAt(a, "Invalid follows", problem)
		return nil
	}
	f.Table = p.QName()
	return f
}

// dropTable records the column classes of a table block dropped as a
// duplicate (droppedClasses), without diagnostics or remembering its
// attributes: the first block's stay those diagnostics point at.
func (d *decoder) dropTable(b *hcl.Block) {
	c, _, _ := b.Body.PartialContent(tableSchema)
	if c == nil {
		return
	}
	for _, cb := range c.Blocks.OfType("column") {
		cc, _, _ := cb.Body.PartialContent(columnSchema)
		if cc == nil || cc.Attributes["class"] == nil {
			continue
		}
		if v, diags := cc.Attributes["class"].Expr.Value(d.ctx); !diags.HasErrors() && v.Type() == cty.String && v.IsKnown() && !v.IsNull() {
			if d.droppedClasses == nil {
				d.droppedClasses = map[string]bool{}
			}
			d.droppedClasses[v.AsString()] = true
		}
	}
}

// checkMaskReads reports each mask expression of t reading another column
// t classifies: a user for whom both columns are masked would see the
// other column's value through the mask. (Whom a column is masked for
// depends on the user's roles, which directories may give; a policy that
// masks a column must not show it whatever they are.)
func (d *decoder) checkMaskReads(t *Table) {
	cols := make([]*Column, 0, len(t.Columns))
	for _, col := range t.Columns {
		cols = append(cols, col)
	}
	slices.SortFunc(cols, func(a, b *Column) int { return cmp.Compare(a.Name, b.Name) })
	for _, col := range cols {
		e := col.Mask.expr
		if e == nil {
			continue
		}
		for _, name := range e.columns {
			other := t.Columns[name]
			if other == nil || name == col.Name {
				continue
			}
			d.diags = append(d.diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Mask reads a classified column",
				Detail: fmt.Sprintf("The mask of column %s of %s reads column %s, which is classified too "+
					"(class %q, at %s): a user for whom both are masked would see %s's value through %s's mask. "+
					"A mask expression may read its own column and the columns the table block does not classify.",
					col.Name, t.Pattern, name, other.Class, position(other.DeclRange), name, col.Name),
				Subject: e.columnAt[name].Ptr(),
			})
		}
	}
}

// decodeColumn decodes one column block of t.
func (d *decoder) decodeColumn(t *Table, b *hcl.Block) {
	name := b.Labels[0]
	c := d.content(b.Body, columnSchema, "table."+t.Pattern.String()+".column."+name)
	if !d.validLabel(b, "column") {
		return
	}
	if prev, ok := t.Columns[name]; ok {
		d.duplicate(b, "column", name, prev.DeclRange)
		return
	}
	col := &Column{Name: name, Mask: Mask{Kind: MaskNull}, DeclRange: b.DefRange}
	t.Columns[name] = col
	if a := c.Attributes["class"]; a != nil {
		col.Class, _ = d.nonEmptyString(a, "class")
	}
	if a := c.Attributes["mask"]; a != nil {
		if s, ok := d.string(a); ok && d.oneOf(a.Expr.Range(), a, s, "mask kind", maskKinds) {
			col.Mask.Kind = s
		} else {
			col.Mask.Kind = "" // NOTE: unknown kind: already reported, check nothing else.
			return
		}
	}
	m := &col.Mask
	for _, setting := range []string{"value", "keep_start", "keep_end", "secret", "expression"} {
		if a := c.Attributes[setting]; a != nil && maskSettings[setting] != m.Kind {
			d.errorAt(a, "Setting without effect", fmt.Sprintf(
				"%s is only used by mask = %q; the mask of column %s is %q.", setting, maskSettings[setting], name, m.Kind))
		}
	}
	switch m.Kind {
	case MaskRedact:
		m.Value = Value{kind: kindString, text: defaultRedaction}
		if a := c.Attributes["value"]; a != nil {
			m.Value = d.redaction(a)
		}
	case MaskPartial:
		if a := c.Attributes["keep_start"]; a != nil {
			m.KeepStart, _ = d.count(a, maxKeep)
		}
		if a := c.Attributes["keep_end"]; a != nil {
			m.KeepEnd, _ = d.count(a, maxKeep)
		}
	case MaskHash:
		a := c.Attributes["secret"]
		if a == nil {
			d.diags = append(d.diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Missing hash secret",
				Detail: fmt.Sprintf(`Column %s is masked with mask = "hash", which needs a secret key: `+
					`secret = env("PGVEIL_HASH_SECRET"). Without one, anyone could hash guesses and compare.`, name),
				Subject: b.DefRange.Ptr(),
			})
			return
		}
		if secret, ok := d.nonEmptyString(a, "secret"); ok {
			m.ipad, m.opad = hmacPads([]byte(secret))
			m.keyID = maskKeyID(m.ipad, m.opad)
			d.warnPlainSecret(a, fmt.Sprintf("The secret of column %s of %s", name, t.Pattern))
		}
	case MaskExpression:
		a := c.Attributes["expression"]
		if a == nil {
			d.diags = append(d.diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Missing mask expression",
				Detail: fmt.Sprintf(`Column %s is masked with mask = "expression", which needs the SQL to show instead, `+
					`e.g. expression = "left(%s, 20) || '…'".`, name, name),
				Subject: b.DefRange.Ptr(),
			})
			return
		}
		m.expr = d.sqlExpression(a, maskExpr)
	}
}

// redaction decodes a redact mask's constant: a string or a number.
func (d *decoder) redaction(a *hcl.Attribute) Value {
	v, diags := a.Expr.Value(d.ctx)
	d.diags = append(d.diags, diags...)
	if diags.HasErrors() || !v.IsWhollyKnown() {
		return Value{kind: kindString, text: defaultRedaction}
	}
	if v.IsNull() || (v.Type() != cty.String && v.Type() != cty.Number) {
		d.errorAt(a, "Incorrect attribute value type", "value must be a string or a number, the constant shown instead of the column.")
		return Value{kind: kindString, text: defaultRedaction}
	}
	val, problem := ctyToValue(v)
	if problem != "" {
		d.errorAt(a, "Invalid value", fmt.Sprintf("value cannot be used: %s.", problem))
	}
	return val
}

// count decodes a whole number in [0, hi].
func (d *decoder) count(a *hcl.Attribute, hi int) (int, bool) {
	v, ok := d.value(a, cty.Number)
	if !ok {
		return 0, false
	}
	bf := v.AsBigFloat()
	if !bf.IsInt() || bf.Sign() < 0 || bf.Cmp(big.NewFloat(float64(hi))) > 0 {
		d.errorAt(a, "Invalid value", fmt.Sprintf("%s must be a whole number from 0 to %d.", a.Name, hi))
		return 0, false
	}
	n, _ := bf.Int64()
	return int(n), true
}

// warnPlainSecret warns when a secret is written in the file itself.
func (d *decoder) warnPlainSecret(a *hcl.Attribute, what string) {
	if callsFunction(a.Expr) {
		return
	}
	d.diags = append(d.diags, &hcl.Diagnostic{
		Severity: hcl.DiagWarning,
		Summary:  "Plain secret in configuration file",
		Detail: what + " is written in the file itself, where anyone who can read the file, its backups or its " +
			`history can see it. Read it from the environment instead, for example: secret = env("PGVEIL_HASH_SECRET").`,
		Subject: a.Expr.Range().Ptr(),
	})
}

// hmacBlockSize is SHA-256's block size, which HMAC pads keys to.
const hmacBlockSize = 64

// hmacPads returns HMAC-SHA256's inner and outer padded keys for key
// (RFC 2104): a key longer than a block is hashed first, then padded with
// zeros to a block, then XOR-ed with 0x36 and 0x5c.
func hmacPads(key []byte) (ipad, opad []byte) {
	if len(key) > hmacBlockSize {
		sum := sha256.Sum256(key)
		key = sum[:]
	}
	k := make([]byte, hmacBlockSize)
	copy(k, key)
	ipad, opad = make([]byte, hmacBlockSize), make([]byte, hmacBlockSize)
	for i, b := range k {
		ipad[i] = b ^ 0x36
		opad[i] = b ^ 0x5c
	}
	return ipad, opad
}

// schemaDefaults are the values of a schema block's default.
var schemaDefaults = []string{"deny", "allow"}

// decodeSchema decodes one schema block into Schemas.
func (d *decoder) decodeSchema(b *hcl.Block) {
	name := b.Labels[0]
	c := d.content(b.Body, schemaSchema, "schema."+name)
	if !d.validLabel(b, "schema") {
		return
	}
	if catalogSchemas[name] {
		d.diags = append(d.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid schema name",
			Detail:   fmt.Sprintf("%s is always open to the rewriter, which applies its own list of what clients may read there.", name),
			Subject:  b.LabelRanges[0].Ptr(),
		})
		return
	}
	if prev, ok := d.cfg.Schemas[name]; ok {
		d.duplicate(b, "schema", name, prev.DeclRange)
		return
	}
	s := &Schema{Name: name, DeclRange: b.DefRange}
	d.cfg.Schemas[name] = s
	if a := c.Attributes["default"]; a != nil {
		if v, ok := d.string(a); ok && d.oneOf(a.Expr.Range(), a, v, "schema default", schemaDefaults) {
			s.Allow = v == "allow"
		}
	}
}

// tableNames returns the labels of the table blocks that name one
// relation (not a pattern), for "Did you mean" suggestions.
func (c *Config) tableNames() []string {
	var names []string
	for _, t := range c.Tables {
		if t.Pattern.Exact() {
			names = append(names, t.Pattern.String())
		}
	}
	return names
}

// governing returns the most specific table block matching q, or nil;
// ties between equally specific patterns return every tied block.
func (c *Config) governing(q rewrite.QName) []*Table {
	var best []*Table
	bestRank := -1
	for _, t := range c.Tables {
		if !t.Pattern.Match(q) {
			continue
		}
		switch r := t.Pattern.specificity(); {
		case r > bestRank:
			best, bestRank = []*Table{t}, r
		case r == bestRank:
			best = append(best, t)
		}
	}
	return slices.Clip(best)
}
