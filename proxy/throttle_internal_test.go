package proxy

import (
	"fmt"
	"testing"
	"time"
)

func TestAuthThrottle(t *testing.T) {
	now := time.Unix(1000, 0)
	k := throttleKey{host: "10.0.0.1", login: "dana"}
	fail := func(th *authThrottle, k throttleKey, at time.Time, limit int) bool {
		t.Helper()
		if v, _ := th.attempt(k, at, limit); v != attemptGo {
			t.Fatalf("attempt: verdict %d, want go", v)
		}
		return th.done(k, attemptFailed, limit)
	}
	t.Run("failures past the limit are refused until the window ends", func(t *testing.T) {
		var th authThrottle
		for i := 1; i <= 3; i++ {
			if reached := fail(&th, k, now, 3); reached != (i == 3) {
				t.Fatalf("failure %d: reached %v", i, reached)
			}
		}
		v, until := th.attempt(k, now.Add(30*time.Second), 3)
		if v != attemptRefused || !until.Equal(now.Add(authFailureWindow)) {
			t.Fatalf("4th: verdict %d until %v", v, until)
		}
		if v, _ := th.attempt(k, now.Add(authFailureWindow), 3); v != attemptGo {
			t.Fatalf("after the window: verdict %d", v)
		}
	})
	t.Run("no more are under way than failures remain", func(t *testing.T) {
		var th authThrottle
		fail(&th, k, now, 3)
		for range 2 {
			if v, _ := th.attempt(k, now, 3); v != attemptGo {
				t.Fatalf("verdict %d, want go", v)
			}
		}
		if v, _ := th.attempt(k, now, 3); v != attemptWait {
			t.Fatalf("third under way: verdict %d, want wait", v)
		}
		th.done(k, attemptAborted, 3)
		if v, _ := th.attempt(k, now, 3); v != attemptGo {
			t.Fatalf("after one aborted: verdict %d, want go", v)
		}
	})
	t.Run("a success clears the count, an aborted attempt does not", func(t *testing.T) {
		var th authThrottle
		fail(&th, k, now, 2)
		th.attempt(k, now, 2)
		th.done(k, attemptAborted, 2)
		if !fail(&th, k, now, 2) {
			t.Fatal("an aborted attempt cleared the count")
		}
		var th2 authThrottle
		fail(&th2, k, now, 2)
		th2.attempt(k, now, 2)
		th2.done(k, attemptSucceeded, 2)
		if fail(&th2, k, now, 2) {
			t.Fatal("a success did not clear the count")
		}
	})
	t.Run("windows that passed are forgotten as attempts come", func(t *testing.T) {
		var th authThrottle
		for i := range 1000 {
			fail(&th, throttleKey{login: fmt.Sprint(i)}, now.Add(time.Duration(i)*time.Millisecond), 3)
		}
		th.attempt(k, now.Add(2*authFailureWindow), 3)
		if len(th.m) != 1 {
			t.Fatalf("%d keys kept, want 1", len(th.m))
		}
	})
	t.Run("past maxThrottled keys the oldest is forgotten, and a new one still counts", func(t *testing.T) {
		var th authThrottle
		for i := range maxThrottled + 10 {
			fail(&th, throttleKey{host: fmt.Sprint(i / maxThrottledPerHost), login: fmt.Sprint(i)}, now, 1)
		}
		if len(th.m) != maxThrottled {
			t.Fatalf("%d keys kept, want %d", len(th.m), maxThrottled)
		}
		fail(&th, k, now, 1)
		if v, _ := th.attempt(k, now, 1); v != attemptRefused {
			t.Fatal("a new key past the bound was not counted")
		}
	})
	t.Run("one address trying logins of its own cannot make the throttle forget its refused one", func(t *testing.T) {
		var th authThrottle
		for range 3 {
			fail(&th, k, now, 3)
		}
		for i := range maxThrottled {
			// A startup packet each, with a login of its own, left
			// before authenticating.
			if v, _ := th.attempt(throttleKey{host: k.host, login: fmt.Sprint(i)}, now, 3); v == attemptGo {
				th.done(throttleKey{host: k.host, login: fmt.Sprint(i)}, attemptAborted, 3)
			}
		}
		if v, _ := th.attempt(k, now.Add(time.Second), 3); v != attemptRefused {
			t.Fatalf("the refused login after a spray of others: verdict %d, want refused", v)
		}
		if n := len(th.m); n > maxThrottledPerHost {
			t.Fatalf("%d keys kept of one address, want at most %d", n, maxThrottledPerHost)
		}
		other := throttleKey{host: "10.0.0.2", login: "dana"}
		if v, _ := th.attempt(other, now.Add(time.Second), 3); v != attemptGo {
			t.Fatalf("another address: verdict %d, want go", v)
		}
		if v, _ := th.attempt(throttleKey{host: k.host, login: "new"}, now.Add(authFailureWindow), 3); v != attemptGo {
			t.Fatalf("a new login of the address once its keys' window passed: verdict %d, want go", v)
		}
	})
}
