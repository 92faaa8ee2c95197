package proxy

import (
	"fmt"
	"testing"
	"time"
)

func TestAuthThrottle(t *testing.T) {
	now := time.Unix(1000, 0)
	k := throttleKey{host: "10.0.0.1", login: "dana"}
	t.Run("attempts past the limit are refused until the window ends", func(t *testing.T) {
		var th authThrottle
		for i := 1; i <= 3; i++ {
			if blocked, _, nth := th.attempt(k, now, 3); blocked || nth != i {
				t.Fatalf("attempt %d: blocked %v, nth %d", i, blocked, nth)
			}
		}
		blocked, until, _ := th.attempt(k, now.Add(30*time.Second), 3)
		if !blocked || !until.Equal(now.Add(authFailureWindow)) {
			t.Fatalf("4th: blocked %v until %v", blocked, until)
		}
		if blocked, _, nth := th.attempt(k, now.Add(authFailureWindow), 3); blocked || nth != 1 {
			t.Fatalf("after the window: blocked %v, nth %d", blocked, nth)
		}
	})
	t.Run("a success clears the count", func(t *testing.T) {
		var th authThrottle
		th.attempt(k, now, 2)
		th.attempt(k, now, 2)
		th.succeeded(k)
		if blocked, _, nth := th.attempt(k, now, 2); blocked || nth != 1 {
			t.Fatalf("blocked %v, nth %d", blocked, nth)
		}
	})
	t.Run("windows that passed are forgotten as attempts come", func(t *testing.T) {
		var th authThrottle
		for i := range 1000 {
			th.attempt(throttleKey{login: fmt.Sprint(i)}, now.Add(time.Duration(i)*time.Millisecond), 3)
		}
		th.attempt(k, now.Add(2*authFailureWindow), 3)
		if len(th.m) != 1 {
			t.Fatalf("%d keys kept, want 1", len(th.m))
		}
	})
	t.Run("past maxThrottled keys the oldest is forgotten, and a new one still counts", func(t *testing.T) {
		var th authThrottle
		for i := range maxThrottled + 10 {
			th.attempt(throttleKey{login: fmt.Sprint(i)}, now, 1)
		}
		if len(th.m) != maxThrottled {
			t.Fatalf("%d keys kept, want %d", len(th.m), maxThrottled)
		}
		th.attempt(k, now, 1)
		if blocked, _, _ := th.attempt(k, now, 1); !blocked {
			t.Fatal("a new key past the bound was not counted")
		}
	})
}
