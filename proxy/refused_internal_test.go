package proxy

import (
	"fmt"
	"testing"
	"time"
)

func TestRefusalAudit(t *testing.T) {
	now := time.Unix(1000, 0)
	t.Run("an address's first refusals in a window are recorded, the last of them saying so", func(t *testing.T) {
		var a refusalAudit
		for i := 1; i <= refusalAuditBurst; i++ {
			v := a.admit("10.0.0.1", now.Add(time.Duration(i)*time.Second))
			if !v.record || v.last != (i == refusalAuditBurst) || v.unrecorded != 0 {
				t.Fatalf("refusal %d: %+v", i, v)
			}
			if v.last && !v.until.Equal(now.Add(time.Second+refusalAuditWindow)) {
				t.Fatalf("until %v", v.until)
			}
		}
		for range 5 {
			if v := a.admit("10.0.0.1", now.Add(30*time.Second)); v.record {
				t.Fatalf("past the burst: %+v", v)
			}
		}
		if v := a.admit("10.0.0.2", now.Add(30*time.Second)); !v.record {
			t.Fatal("another address is not recorded")
		}
		v := a.admit("10.0.0.1", now.Add(time.Second+refusalAuditWindow))
		if !v.record || v.unrecorded != 5 {
			t.Fatalf("after the window: %+v, want recorded with 5 unrecorded before", v)
		}
		if v := a.admit("10.0.0.1", now.Add(2*time.Second+refusalAuditWindow)); !v.record || v.unrecorded != 0 {
			t.Fatalf("next in the new window: %+v", v)
		}
	})
	t.Run("past the addresses remembered, others are not recorded until windows end", func(t *testing.T) {
		var a refusalAudit
		for i := range maxRefusalHosts {
			if v := a.admit(fmt.Sprint(i), now); !v.record {
				t.Fatalf("address %d: %+v", i, v)
			}
		}
		if v := a.admit("new", now.Add(2*time.Second)); v.record {
			t.Fatalf("one address too many: %+v", v)
		}
		if v := a.admit("0", now.Add(2*time.Second)); !v.record {
			t.Fatalf("an address remembered: %+v", v)
		}
		if v := a.admit("new", now.Add(refusalAuditWindow)); !v.record || len(a.m) != 1 {
			t.Fatalf("once the windows ended: %+v, %d remembered", v, len(a.m))
		}
	})
}

func TestClaimedParams(t *testing.T) {
	body := []byte("replication\x00database\x00USER\x00hq\x00application_name\x00tool\x00user\x00other\x00\x00")
	p := claimedParams(body)
	if p.user != "hq" || p.database != "hq" || p.applicationName != "tool" {
		t.Errorf("%+v", p)
	}
	long := make([]byte, 0, 2000)
	long = append(long, "user\x00"...)
	for range 300 {
		long = append(long, "é"...)
	}
	long = append(long, "\x00database\x00"...)
	p = claimedParams(append(long, "db"...)) // no terminator: the last pair is dropped
	if len(p.user) > maxLoginLen || len(p.user) != 256 || p.database != p.user {
		t.Errorf("%d bytes of user, database %q", len(p.user), p.database)
	}
}
