package proxy

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/pgveil/pgveil/internal/ldapauth"
	"github.com/pgveil/pgveil/internal/ldaptest"
	"github.com/pgveil/pgveil/policy"
)

// TestActDirectoryCache: the answers about the people BI services act
// for are kept per login, found or not found, for actLookupAge at most,
// forgotten at a reload, never when the directory was unavailable, and
// bounded in number.
func TestActDirectoryCache(t *testing.T) {
	dir := ldaptest.Start(t, map[string]string{"zoe": "zoe-pw"}, map[string][]string{"central": {"zoe"}})
	cfg := ldapauth.Config{URL: dir.URL, BaseDN: ldaptest.PeopleDN, BindDN: ldaptest.ReaderDN,
		BindPassword: ldaptest.ReaderPassword, MemberOfAttribute: "memberOf", Timeout: time.Second}
	l := &policy.LDAP{Directory: cfg}
	ctx := context.Background()
	t.Run("a person found, and a name not found, are kept until a reload", func(t *testing.T) {
		var d actDirectory
		for _, login := range []string{"zoe", "nobody"} {
			e, err := d.lookup(ctx, l, login)
			if login == "zoe" && (err != nil || len(e.res.Groups) != 1) {
				t.Fatalf("zoe: %v", err)
			}
			if login == "nobody" && !errors.Is(err, ldapauth.ErrNotFound) {
				t.Fatalf("nobody: %v", err)
			}
			if !d.cached(l, login) {
				t.Errorf("%s not kept", login)
			}
		}
		d.clear()
		if d.cached(l, "zoe") || d.cached(l, "nobody") {
			t.Error("kept across a reload")
		}
	})
	t.Run("an answer older than actLookupAge is asked again", func(t *testing.T) {
		var d actDirectory
		e, err := d.lookup(ctx, l, "zoe")
		if err != nil {
			t.Fatal(err)
		}
		e.at = e.at.Add(-actLookupAge)
		if d.cached(l, "zoe") {
			t.Error("an old answer is fresh")
		}
		if again, err := d.lookup(ctx, l, "zoe"); err != nil || again == e {
			t.Errorf("old answer served: %v", err)
		}
	})
	t.Run("a directory that does not answer is asked again at the next switch", func(t *testing.T) {
		var d actDirectory
		down := &policy.LDAP{Directory: cfg}
		down.Directory.URL = ldaptest.DownURL(t)
		if _, err := d.lookup(ctx, down, "zoe"); !errors.Is(err, ldapauth.ErrUnavailable) {
			t.Fatalf("got %v", err)
		}
		if d.cached(down, "zoe") || len(d.entries) != 0 {
			t.Error("an outage is kept")
		}
	})
	t.Run("the answers kept are bounded", func(t *testing.T) {
		var d actDirectory
		d.entries = map[string]*actLookup{}
		done := make(chan struct{})
		close(done)
		for i := range actLookupEntries {
			d.entries[fmt.Sprint("p", i)] = &actLookup{done: done, at: time.Now()}
		}
		if _, err := d.lookup(ctx, l, "zoe"); err != nil {
			t.Fatal(err)
		}
		if len(d.entries) > actLookupEntries || !d.cached(l, "zoe") {
			t.Errorf("%d entries, zoe kept: %v", len(d.entries), d.cached(l, "zoe"))
		}
	})
	t.Run("a lookup ends with its session's context", func(t *testing.T) {
		var d actDirectory
		dir.Pause(t)
		defer dir.Resume(t)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := d.lookup(cctx, l, "zoe"); !errors.Is(err, ldapauth.ErrUnavailable) {
			t.Errorf("got %v", err)
		}
	})
	t.Run("those waiting on a lookup whose session ended ask the directory themselves", func(t *testing.T) {
		var d actDirectory
		slow := &policy.LDAP{Directory: cfg}
		slow.Directory.Timeout = time.Minute // the leader ends with its session, not by timing out
		waiting := make(chan struct{})
		var once sync.Once
		actLookupWaiting = func(string) { once.Do(func() { close(waiting) }) }
		defer func() { actLookupWaiting = nil }()
		dir.Pause(t)
		resumed := false
		defer func() {
			if !resumed {
				dir.Resume(t)
			}
		}()
		lctx, cancel := context.WithCancel(ctx)
		defer cancel()
		leader := make(chan error, 1)
		go func() {
			_, err := d.lookup(lctx, slow, "zoe")
			leader <- err
		}()
		for inFlight := false; !inFlight; {
			d.mu.Lock()
			inFlight = d.entries["zoe"] != nil
			d.mu.Unlock()
			runtime.Gosched()
		}
		type answer struct {
			e   *actLookup
			err error
		}
		waiter := make(chan answer, 1)
		go func() {
			e, err := d.lookup(ctx, slow, "zoe")
			waiter <- answer{e, err}
		}()
		<-waiting
		cancel()
		if err := <-leader; !errors.Is(err, ldapauth.ErrUnavailable) {
			t.Errorf("the ended session's lookup: %v", err)
		}
		dir.Resume(t)
		resumed = true
		if a := <-waiter; a.err != nil || len(a.e.res.Groups) != 1 {
			t.Errorf("the session still waiting was refused: %v", a.err)
		}
	})

	t.Run("reloads replacing the ldap block during every lookup do not keep a switch asking forever", func(t *testing.T) {
		var d actDirectory
		calls := 0
		current := func() *policy.LDAP {
			if calls++; calls > 10*actLookupTries {
				t.Fatalf("still asking after %d reloads", calls)
			}
			return &policy.LDAP{Directory: cfg}
		}
		_, err := d.lookupCurrent(ctx, l, current, "zoe", false)
		if !errors.Is(err, ldapauth.ErrUnavailable) {
			t.Errorf("got %v, want the directory unavailable for this switch", err)
		}
		if _, err := d.lookupCurrent(ctx, l, func() *policy.LDAP { return l }, "zoe", false); err != nil {
			t.Errorf("without a reload: %v", err)
		}
		if _, err := d.lookupCurrent(ctx, l, func() *policy.LDAP { return nil }, "zoe", false); !errors.Is(err, errNoLDAPBlock) {
			t.Errorf("the ldap block removed: %v", err)
		}
	})
	t.Run("an event loop takes only a fresh answer kept, never waits for the directory or a lookup in flight", func(t *testing.T) {
		var d actDirectory
		same := func() *policy.LDAP { return l }
		if _, err := d.lookupCurrent(ctx, l, same, "zoe", true); !errors.Is(err, errNotKept) {
			t.Errorf("nothing kept: %v", err)
		}
		if d.cached(l, "zoe") {
			t.Error("the directory was asked")
		}
		d.entries = map[string]*actLookup{"zoe": {done: make(chan struct{}), ldap: l}}
		if _, err := d.lookupCurrent(ctx, l, same, "zoe", true); !errors.Is(err, errNotKept) {
			t.Errorf("a lookup in flight: %v", err)
		}
		d.entries = nil
		if _, err := d.lookupCurrent(ctx, l, same, "zoe", false); err != nil {
			t.Fatal(err)
		}
		if e, err := d.lookupCurrent(ctx, l, same, "zoe", true); err != nil || len(e.res.Groups) != 1 {
			t.Errorf("a fresh answer kept: %v", err)
		}
		if _, err := d.lookupCurrent(ctx, l, same, "nobody", false); !errors.Is(err, ldapauth.ErrNotFound) {
			t.Fatal(err)
		}
		if _, err := d.lookupCurrent(ctx, l, same, "nobody", true); !errors.Is(err, ldapauth.ErrNotFound) {
			t.Errorf("a name not found, kept: %v", err)
		}
	})
	t.Run("an answer read with another ldap block than the one in force is not served", func(t *testing.T) {
		var d actDirectory
		if _, err := d.lookup(ctx, l, "zoe"); err != nil {
			t.Fatal(err)
		}
		edited := &policy.LDAP{Directory: cfg} // a reload that took member_of_attribute off
		edited.Directory.MemberOfAttribute = ""
		e, err := d.lookup(ctx, edited, "zoe")
		if err != nil || len(e.res.Groups) != 0 {
			t.Errorf("the old block's answer served: %v %v", e.res.Groups, err)
		}
	})

}
