package proxy_test

import (
	"crypto/tls"
	"encoding/binary"
	"net"
	"testing"
	"time"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy"
)

// TestSessionCountForgetsEveryStartupEnd ends connections at each way a
// startup can end short of a session and checks the server counts none
// once their clients have closed: neither a connection left in conns nor
// one counted twice.
func TestSessionCountForgetsEveryStartupEnd(t *testing.T) {
	proxytest.NoLeaks(t)
	p := proxytest.StartProxy(t, proxytest.WithTLS(t, false), func(c *policy.Config, o *proxy.Options) {
		proxy.StaticIdentities(c, o)
		users := o.Users
		o.Users = func(login string) (*policy.User, bool) {
			if login == "panics" {
				panic("a bug reached in startup")
			}
			return users(login)
		}
	})
	raw := func(t *testing.T, b []byte) net.Conn {
		c, err := net.Dial("tcp", p.Addr)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write(b); err != nil {
			t.Fatal(err)
		}
		return c
	}
	code := func(n uint32) []byte {
		b := make([]byte, 8)
		binary.BigEndian.PutUint32(b, 8)
		binary.BigEndian.PutUint32(b[4:], n)
		return b
	}
	readOne := func(c net.Conn) {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, _ = c.Read(make([]byte, 1))
	}
	cases := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"a CancelRequest with an unknown key", func(t *testing.T) {
			b := make([]byte, 16)
			binary.BigEndian.PutUint32(b, 16)
			binary.BigEndian.PutUint32(b[4:], 80877102)
			c := raw(t, b)
			readOne(c)
			c.Close()
		}},
		{"an SSLRequest then a close", func(t *testing.T) {
			c := raw(t, code(80877103))
			readOne(c)
			c.Close()
		}},
		{"an SSLRequest then a failed handshake", func(t *testing.T) {
			c := raw(t, code(80877103))
			readOne(c)
			_, _ = c.Write([]byte("not a TLS hello at all, just bytes"))
			readOne(c)
			c.Close()
		}},
		{"a TLS handshake the server refuses", func(t *testing.T) {
			c := raw(t, code(80877103))
			readOne(c)
			// The listener requires TLS 1.2 at least.
			tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11})
			_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
			if err := tc.Handshake(); err == nil {
				t.Fatal("a TLS 1.1 handshake succeeded")
			}
			c.Close()
		}},
		{"a GSSENCRequest then a close", func(t *testing.T) {
			c := raw(t, code(80877104))
			readOne(c)
			c.Close()
		}},
		{"a malformed startup packet", func(t *testing.T) {
			c := raw(t, code(12345))
			readOne(c)
			c.Close()
		}},
		{"a panic in startup", func(t *testing.T) {
			c, fe := startupRaw(t, p.Addr, map[string]string{"user": "panics", "database": proxytest.TestDB})
			_, _ = fe.Receive()
			c.Close()
		}},
	}
	for _, tc := range cases {
		t.Run("forgets "+tc.name, func(t *testing.T) {
			proxytest.WaitSessions(t, p, 0)
			tc.run(t)
			proxytest.WaitSessions(t, p, 0)
		})
	}
}
