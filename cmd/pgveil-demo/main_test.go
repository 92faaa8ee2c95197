package main

import (
	"net"
	"strings"
	"testing"
)

// TestDemoAddr holds the demo's addresses to the environment configs/demo.hcl
// reads, and to its defaults, or a free port, without it.
func TestDemoAddr(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	free, err := freeAddr()
	if err != nil {
		t.Fatal(err)
	}
	env := func(vars map[string]string) func(string) string {
		return func(name string) string { return vars[name] }
	}
	t.Run("an address in the environment is used as it is, even taken", func(t *testing.T) {
		got, err := demoAddr(env(map[string]string{"PGVEIL_DEMO_LISTEN": taken.Addr().String()}), "PGVEIL_DEMO_LISTEN", free)
		if err != nil || got != taken.Addr().String() {
			t.Fatalf("%q %v; want %s", got, err, taken.Addr())
		}
	})
	t.Run("an address that is not host:port is an error naming the variable", func(t *testing.T) {
		_, err := demoAddr(env(map[string]string{"PGVEIL_DEMO_ADMIN": "9187"}), "PGVEIL_DEMO_ADMIN", free)
		if err == nil || !strings.Contains(err.Error(), `PGVEIL_DEMO_ADMIN="9187"`) {
			t.Fatalf("%v", err)
		}
	})
	t.Run("without the variable the default is used when free", func(t *testing.T) {
		if got, err := demoAddr(env(nil), "PGVEIL_DEMO_LISTEN", free); err != nil || got != free {
			t.Fatalf("%q %v; want %s", got, err, free)
		}
	})
	t.Run("without the variable a taken default gives way to a free port", func(t *testing.T) {
		got, err := demoAddr(env(nil), "PGVEIL_DEMO_LISTEN", taken.Addr().String())
		if err != nil || got == taken.Addr().String() || !portFree(got) {
			t.Fatalf("%q %v", got, err)
		}
	})
}
