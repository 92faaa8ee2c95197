package policy

import (
	"reflect"
	"strings"
)

// How a reload treats a change of a configuration field: the class in the
// field's `reload` struct tag.
//
// Every field of Config carries a tag `reload:"<name>,<class>"`; the
// fields of the blocks a reload compares (restart and refuse) carry
// `reload:"<name>"`, inheriting their block's class, or
// `reload:"<name>,<class>"` to differ from it. `reload:"-"` marks a field
// that is not compared: bookkeeping, or a value provisioned from compared
// fields (a tls.Config from its files' names).
// TestEveryConfigFieldHasAReloadClass fails on a field without a tag, so
// that a new field cannot be missed.
const (
	// ReloadApply: a reload puts the change in force (policies,
	// identities, the directory).
	ReloadApply = "apply"
	// ReloadRestart: the field is read at start only; a change applies at
	// the next restart.
	ReloadRestart = "restart"
	// ReloadRefuse: a change refuses the reload, as the policies would be
	// checked against another database than the one sessions reach.
	ReloadRefuse = "refuse"
)

// ReloadChanges are what differs between the configuration in force and a
// reloaded one that a reload cannot put in force (see ReloadDiff).
type ReloadChanges struct {
	// Refuse names the changed fields whose change refuses the reload, as
	// "block.field" (e.g. "upstream.address", "upstream.tls").
	Refuse []string
	// Restart names the changed blocks read at start only (e.g. "listen",
	// "audit", "admin"), and the changed fields read at start only of the
	// other compared blocks, as "block.field" (e.g. "upstream.password").
	Restart []string
}

// ReloadDiff compares inForce, the configuration in force, with reloaded,
// the configuration a reload read, field by field as their `reload`
// struct tags classify them, and returns the changes a reload cannot
// apply, in field order. Fields classified ReloadApply are not compared;
// a block present in one and absent (nil) in the other has changed.
func ReloadDiff(inForce, reloaded *Config) ReloadChanges {
	var ch ReloadChanges
	a, b := reflect.ValueOf(inForce).Elem(), reflect.ValueOf(reloaded).Elem()
	t := a.Type()
	for i := range t.NumField() {
		name, class := reloadTag(t.Field(i))
		if name == "" || class == ReloadApply {
			continue
		}
		if class == "" {
			class = ReloadRestart
		}
		diffFields(a.Field(i), b.Field(i), class, "", func(field, fclass string) {
			switch {
			case fclass == ReloadRefuse:
				ch.Refuse = appendOnce(ch.Refuse, name+"."+field)
			case class == ReloadRestart:
				ch.Restart = appendOnce(ch.Restart, name)
			default:
				ch.Restart = appendOnce(ch.Restart, name+"."+field)
			}
		})
	}
	return ch
}

// diffFields compares two values of a compared field of class class,
// named top within its block ("" for the block itself), and calls changed
// with the name of the block's field and the class of each difference. A
// struct, or a pointer to one, is compared field by field; anything else
// as a whole.
func diffFields(a, b reflect.Value, class, top string, changed func(field, class string)) {
	if a.Kind() == reflect.Pointer && a.Type().Elem().Kind() == reflect.Struct {
		if a.IsNil() || b.IsNil() {
			if a.IsNil() != b.IsNil() {
				changed(top, class)
			}
			return
		}
		a, b = a.Elem(), b.Elem()
	}
	if a.Kind() != reflect.Struct {
		if !reflect.DeepEqual(a.Interface(), b.Interface()) {
			changed(top, class)
		}
		return
	}
	t := a.Type()
	for i := range t.NumField() {
		name, fclass := reloadTag(t.Field(i))
		if name == "" {
			continue
		}
		if fclass == "" {
			fclass = class
		}
		field := top
		if field == "" {
			field = name
		}
		diffFields(a.Field(i), b.Field(i), fclass, field, changed)
	}
}

// reloadTag returns the name and class of f's `reload` tag; name is ""
// for a field that is not compared ("-", or unexported), class "" when
// the tag has none. A field without a tag (which
// TestEveryConfigFieldHasAReloadClass refuses) is compared under its Go
// name, and at the top level read at start only: a change is reported
// rather than missed.
func reloadTag(f reflect.StructField) (name, class string) {
	tag, ok := f.Tag.Lookup("reload")
	switch {
	case tag == "-" || !f.IsExported():
		return "", ""
	case !ok || tag == "":
		return strings.ToLower(f.Name), ""
	}
	name, class, _ = strings.Cut(tag, ",")
	return name, class
}

// appendOnce appends s to list unless it is its last element.
func appendOnce(list []string, s string) []string {
	if len(list) > 0 && list[len(list)-1] == s {
		return list
	}
	return append(list, s)
}
