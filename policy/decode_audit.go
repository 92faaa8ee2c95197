package policy

import (
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// Defaults and limits of the audit block.
const (
	defaultAuditMaxSize   = 100 << 20
	defaultAuditQueueSize = 10000
	// defaultAuditSyncInterval is audit.DefaultSyncInterval: the longest
	// written records wait for fsync while records keep coming.
	defaultAuditSyncInterval = 200 * time.Millisecond
	maxAuditQueueSize        = 10_000_000
	// defaultAuditQueueBytes and its bounds are audit.DefaultQueueBytes
	// and audit.MinQueueBytes: what the queued records may hold.
	defaultAuditQueueBytes = 64 << 20
	minAuditQueueBytes     = 1 << 20
	maxAuditQueueBytes     = 64 << 30
	// defaultAuditMaxText and its bounds are audit.DefaultMaxText,
	// audit.MinMaxText and audit.MaxMaxText: the longest text a record
	// keeps.
	defaultAuditMaxText = 64 << 10
	minAuditMaxText     = 1 << 10
	maxAuditMaxText     = 256 << 10
	// defaultAuditParameterMaxLength and maxAuditParameterMaxLength bound
	// audit.parameter_max_length: the bytes of each Bind parameter value
	// a record keeps.
	defaultAuditParameterMaxLength = 256
	maxAuditParameterMaxLength     = 64 << 10
)

// Schemas of the audit and admin blocks; configs/README.md documents
// them.
var (
	auditSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{
			{Name: "file", Required: true},
			{Name: "max_size"},
			{Name: "queue_size"},
			{Name: "queue_bytes"},
			{Name: "max_text"},
			{Name: "sync_interval"},
			{Name: "on_full"},
			{Name: "hmac_key"},
			{Name: "rewritten_sql"},
			{Name: "redact_literals"},
			{Name: "log_parameters"},
			{Name: "parameter_max_length"},
			{Name: "on_error"},
		},
	}
	adminSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{
			{Name: "address", Required: true},
		},
	}
)

// atMostOne reports every duplicate of an optional block, and returns
// the first block or nil.
func (d *decoder) atMostOne(kind string, blocks []*hcl.Block) *hcl.Block {
	if len(blocks) == 0 {
		return nil
	}
	d.duplicateBlocks(kind, "at most", blocks)
	return blocks[0]
}

// noAuditKey explains what a chain without key protects against.
const noAuditKey = "Without a key the audit records are chained with plain SHA-256, which shows accidental " +
	"damage but not forgery: whoever can write the file can rewrite it and recompute the chain. Give a long " +
	`random secret from the environment, for example: hmac_key = env("PGVEIL_AUDIT_KEY").`

// decodeAudit decodes the audit block.
func (d *decoder) decodeAudit(b *hcl.Block) {
	c := d.content(b.Body, auditSchema, "audit")
	a := &Audit{
		MaxSize:      defaultAuditMaxSize,
		QueueSize:    defaultAuditQueueSize,
		QueueBytes:   defaultAuditQueueBytes,
		MaxText:      defaultAuditMaxText,
		SyncInterval: defaultAuditSyncInterval,
		OnFull:       AuditBlock,
		RewrittenSQL: AuditFull,

		ParameterMaxLength: defaultAuditParameterMaxLength,
		OnError:            AuditContinue,
	}
	d.cfg.Audit = a
	if attr := c.Attributes["file"]; attr != nil {
		if s, ok := d.string(attr); ok && s == "-" {
			a.File = s
		} else if ok {
			a.File, _ = d.path(attr, "audit.file")
		}
	}
	if attr := c.Attributes["max_size"]; attr != nil {
		a.MaxSize, _ = d.size(attr, "audit.max_size")
	}
	if attr := c.Attributes["queue_size"]; attr != nil {
		a.QueueSize, _ = d.wholeNumber(attr, "audit.queue_size", 1, maxAuditQueueSize)
	}
	if attr := c.Attributes["queue_bytes"]; attr != nil {
		if n, ok := d.size(attr, "audit.queue_bytes"); ok {
			if n < minAuditQueueBytes || n > maxAuditQueueBytes {
				d.errorAt(attr, "Invalid size", `audit.queue_bytes must be from "1MiB" to "64GiB".`)
			} else {
				a.QueueBytes = n
			}
		}
	}
	if attr := c.Attributes["max_text"]; attr != nil {
		if n, ok := d.size(attr, "audit.max_text"); ok {
			if n < minAuditMaxText || n > maxAuditMaxText {
				d.errorAt(attr, "Invalid size", `audit.max_text must be from "1KiB" to "256KiB".`)
			} else {
				a.MaxText = int(n)
			}
		}
	}
	if attr := c.Attributes["sync_interval"]; attr != nil {
		a.SyncInterval, _ = d.duration(attr, "audit.sync_interval")
	}
	if attr := c.Attributes["on_full"]; attr != nil {
		a.OnFull, _ = d.choice(attr, "audit.on_full", []string{AuditBlock, AuditDrop})
	}
	if attr := c.Attributes["on_error"]; attr != nil {
		a.OnError, _ = d.choice(attr, "audit.on_error", []string{AuditContinue, AuditRefuse})
	}
	if attr := c.Attributes["rewritten_sql"]; attr != nil {
		a.RewrittenSQL, _ = d.choice(attr, "audit.rewritten_sql", []string{AuditFull, AuditHash, AuditNone})
	}
	if attr := c.Attributes["redact_literals"]; attr != nil {
		a.RedactLiterals, _ = d.boolean(attr)
	}
	if attr := c.Attributes["parameter_max_length"]; attr != nil {
		if n, ok := d.wholeNumber(attr, "audit.parameter_max_length", 1, maxAuditParameterMaxLength); ok {
			a.ParameterMaxLength = n
		}
	}
	if attr := c.Attributes["log_parameters"]; attr != nil {
		a.LogParameters, _ = d.boolean(attr)
		if a.LogParameters && a.RedactLiterals {
			d.errorAt(attr, "Conflicting audit settings",
				"audit.log_parameters records the values statements ran with, which audit.redact_literals keeps out of "+
					"the trail: set one of them only.")
		}
	}
	attr := c.Attributes["hmac_key"]
	if attr == nil {
		d.diags = append(d.diags, &hcl.Diagnostic{
			Severity: hcl.DiagWarning,
			Summary:  "Audit trail without key",
			Detail:   "The audit block has no hmac_key. " + noAuditKey,
			Subject:  b.DefRange.Ptr(),
		})
		return
	}
	key, ok := d.string(attr)
	switch {
	case !ok:
	case key == "":
		d.diags = append(d.diags, &hcl.Diagnostic{
			Severity: hcl.DiagWarning,
			Summary:  "Audit trail without key",
			Detail:   "audit.hmac_key is empty. " + noAuditKey,
			Subject:  attr.Expr.Range().Ptr(),
		})
	case !callsFunction(attr.Expr):
		d.diags = append(d.diags, &hcl.Diagnostic{
			Severity: hcl.DiagWarning,
			Summary:  "Plain secret in configuration file",
			Detail: "audit.hmac_key is written in the file itself, where anyone who can read the " +
				"file, its backups or its history can see it, and forge audit records with it. Read it " +
				`from the environment instead, for example: hmac_key = env("PGVEIL_AUDIT_KEY").`,
			Subject: attr.Expr.Range().Ptr(),
		})
	}
	if key != "" {
		a.Key = []byte(key)
	}
}

// decodeAdmin decodes the admin block.
func (d *decoder) decodeAdmin(b *hcl.Block) {
	c := d.content(b.Body, adminSchema, "admin")
	d.cfg.Admin = &Admin{}
	if a := c.Attributes["address"]; a != nil {
		d.cfg.Admin.Address, _ = d.address(a, "admin.address", false)
	}
}

// sizeUnits are the units of a size, in the order messages show them.
var sizeUnits = []struct {
	name  string
	bytes int64
}{{"B", 1}, {"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}}

// size decodes a size such as "100MiB" (units B, KiB, MiB, GiB; "0"
// alone means zero).
func (d *decoder) size(a *hcl.Attribute, name string) (int64, bool) {
	s, ok := d.string(a)
	if !ok {
		return 0, false
	}
	if s == "0" {
		return 0, true
	}
	digits := strings.TrimRight(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
	unit := strings.TrimSpace(s[len(digits):])
	digits = strings.TrimSpace(digits)
	n, err := strconv.ParseInt(digits, 10, 64)
	problem := ""
	switch {
	case err != nil || n < 0:
		problem = fmt.Sprintf("%q is not a whole number followed by a unit", s)
	case unit == "":
		problem = fmt.Sprintf("%q has no unit", s)
	}
	if problem == "" {
		for _, u := range sizeUnits {
			if unit == u.name {
				if n > (1<<62)/u.bytes {
					problem = fmt.Sprintf("%q is too large", s)
					break
				}
				return n * u.bytes, true
			}
		}
		if problem == "" {
			problem = fmt.Sprintf("%q is not a unit", unit)
			switch strings.ToUpper(unit) {
			case "K", "KB":
				problem += ` (sizes count in powers of 1024: "KiB")`
			case "M", "MB":
				problem += ` (sizes count in powers of 1024: "MiB")`
			case "G", "GB":
				problem += ` (sizes count in powers of 1024: "GiB")`
			}
		}
	}
	d.errorAt(a, "Invalid size",
		fmt.Sprintf(`%s must be a size such as "100MiB" (units B, KiB, MiB, GiB) or "0": %s.`, name, problem))
	return 0, false
}

// wholeNumber decodes a whole number in [lo, hi] that is not a size.
func (d *decoder) wholeNumber(a *hcl.Attribute, name string, lo, hi int) (int, bool) {
	v, ok := d.value(a, cty.Number)
	if !ok {
		return 0, false
	}
	bf := v.AsBigFloat()
	if !bf.IsInt() || bf.Cmp(big.NewFloat(float64(lo))) < 0 || bf.Cmp(big.NewFloat(float64(hi))) > 0 {
		d.errorAt(a, "Invalid number", fmt.Sprintf("%s must be a whole number from %d to %d.", name, lo, hi))
		return 0, false
	}
	n, _ := bf.Int64()
	return int(n), true
}

// choice decodes a string that must be one of choices.
func (d *decoder) choice(a *hcl.Attribute, name string, choices []string) (string, bool) {
	s, ok := d.string(a)
	if !ok {
		return "", false
	}
	for _, c := range choices {
		if s == c {
			return s, true
		}
	}
	quoted := make([]string, len(choices))
	for i, c := range choices {
		quoted[i] = strconv.Quote(c)
	}
	detail := fmt.Sprintf("%s must be %s or %s.", name, strings.Join(quoted[:len(quoted)-1], ", "), quoted[len(quoted)-1])
	if c := suggest(strings.ToLower(s), choices); c != "" {
		detail += fmt.Sprintf(" Did you mean %q?", c)
	}
	d.errorAt(a, "Invalid value", detail)
	return "", false
}
