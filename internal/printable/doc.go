// Package printable tells which characters a terminal would act on
// rather than print (controls, bidirectional overrides, zero-width and
// filler characters) and escapes them. Text that a client or a database
// chose reaches operators', auditors' and DBAs' screens through pgveil's
// log, its audit trail and audit search, and its configuration
// diagnostics (catalog names); printed raw, it could clear or rewrite the
// screen, set the clipboard (OSC 52), or pass for other text.
package printable
