package proxy

import (
	"testing"

	"go.uber.org/zap"
)

// settableVersion is a PolicyVersioner whose version the test sets.
type settableVersion struct{ v string }

func (s *settableVersion) PolicyVersion() string { return s.v }

// TestActVersionsMemo checks that the version actVersions keeps from one
// call to the next follows every change it is made of.
func TestActVersionsMemo(t *testing.T) {
	base := &settableVersion{v: "v1"}
	ss := &session{srv: &Server{}} // no audit trail
	ss.info.User = "bi"
	v := actVersions{base: base, ss: ss}
	want := func(t *testing.T, w string) {
		t.Helper()
		if got := v.PolicyVersion(); got != w {
			t.Fatalf("version %q, want %q", got, w)
		}
	}
	steps := []struct {
		name   string
		change func()
		want   string
	}{
		{"a session as its login has the policy's version", func() {}, "v1"},
		{"a reload is seen at the next call", func() { base.v = "v2" }, "v2"},
		{"a reload of the directory groups is seen", func() { ss.directory.Store(&directoryGroups{gen: 1}) }, groupsVersion("v2", 1)},
		{"acting for an end user is seen", func() { ss.actAs("alice", nil, "set role") }, versionFor(groupsVersion("v2", 1), "alice")},
		{"a reload while acting is seen", func() { base.v = "v3" }, versionFor(groupsVersion("v3", 1), "alice")},
		{"another end user is seen", func() { ss.actAs("bob", nil, "set role") }, versionFor(groupsVersion("v3", 1), "bob")},
		{"the directory's next generation is seen", func() { ss.directory.Store(&directoryGroups{gen: 2}) }, versionFor(groupsVersion("v3", 2), "bob")},
		{"back to the login is seen", func() { ss.actAs("", nil, "reset role") }, groupsVersion("v3", 2)},
	}
	ss.log = zap.NewNop()
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			s.change()
			want(t, s.want)
			want(t, s.want)
		})
	}
	t.Run("the same version again makes no string", func(t *testing.T) {
		ss.actAs("alice", nil, "set role")
		if n := testing.AllocsPerRun(100, func() { _ = v.PolicyVersion() }); n != 0 {
			t.Fatalf("%v allocations per call", n)
		}
	})
}
