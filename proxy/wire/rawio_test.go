package wire

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"testing"
	"time"
)

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listening: %v", err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			accepted <- nil
			return
		}
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("dialing: %v", err)
	}
	server = <-accepted
	if server == nil {
		t.Fatal("accepting failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// TestRawIO holds NewRawIO, the raw system calls on Linux and the plain
// net.Conn elsewhere, to the contract the relays rely on.
func TestRawIO(t *testing.T) {
	t.Run("a write larger than the socket buffers arrives whole and in order", func(t *testing.T) {
		a, b := tcpPair(t)
		w, r := NewRawIO(a), NewRawIO(b)
		want := make([]byte, 8<<20)
		for i := range want {
			want[i] = byte(i * 7)
		}
		got := make(chan []byte, 1)
		go func() {
			buf, _ := io.ReadAll(io.LimitReader(r, int64(len(want))))
			got <- buf
		}()
		if n, err := w.Write(want); n != len(want) || err != nil {
			t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(want))
		}
		if !bytes.Equal(<-got, want) {
			t.Fatal("the bytes read differ from the bytes written")
		}
	})

	t.Run("a read of nothing returns at once", func(t *testing.T) {
		a, _ := tcpPair(t)
		if n, err := NewRawIO(a).Read(nil); n != 0 || err != nil {
			t.Fatalf("Read(nil) = %d, %v; want 0, nil", n, err)
		}
	})

	t.Run("a read after the peer closes is io.EOF", func(t *testing.T) {
		a, b := tcpPair(t)
		if _, err := b.Write([]byte("last")); err != nil {
			t.Fatal(err)
		}
		b.Close()
		buf, err := io.ReadAll(NewRawIO(a))
		if string(buf) != "last" || err != nil {
			t.Fatalf("ReadAll = %q, %v; want \"last\", nil (io.EOF ends it)", buf, err)
		}
	})

	t.Run("a read honours the connection's deadline", func(t *testing.T) {
		a, _ := tcpPair(t)
		if err := a.SetReadDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		_, err := NewRawIO(a).Read(make([]byte, 16))
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Read = %v; want a deadline error", err)
		}
	})

	t.Run("a write to a closed peer fails without killing the process", func(t *testing.T) {
		a, b := tcpPair(t)
		b.Close()
		w := NewRawIO(a)
		var err error
		for i := 0; i < 100 && err == nil; i++ {
			_, err = w.Write(make([]byte, 64<<10))
			time.Sleep(time.Millisecond)
		}
		if err == nil {
			t.Fatal("writes to a closed peer kept succeeding")
		}
	})
}

func TestWaitReadable(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("elsewhere WaitReadable returns at once, and the read waits")
	}
	t.Run("it returns once the peer writes, consuming nothing", func(t *testing.T) {
		c, s := tcpPair(t)
		rw := NewRawIO(s)
		go func() {
			time.Sleep(20 * time.Millisecond)
			_, _ = c.Write([]byte("hello"))
		}()
		if err := WaitReadable(rw); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 5)
		if _, err := io.ReadFull(rw, buf); err != nil || string(buf) != "hello" {
			t.Fatalf("read %q, %v", buf, err)
		}
	})
	t.Run("it returns at once when data is already there, and again after", func(t *testing.T) {
		c, s := tcpPair(t)
		rw := NewRawIO(s)
		if _, err := c.Write([]byte("ab")); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			done := make(chan error, 1)
			go func() { done <- WaitReadable(rw) }()
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("WaitReadable waited with data buffered")
			}
		}
	})
	t.Run("it returns at the peer's end of the connection", func(t *testing.T) {
		c, s := tcpPair(t)
		rw := NewRawIO(s)
		go func() {
			time.Sleep(20 * time.Millisecond)
			c.Close()
		}()
		if err := WaitReadable(rw); err != nil {
			t.Fatal(err)
		}
		if _, err := rw.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("read after the end: %v", err)
		}
	})
	t.Run("a deadline ends the wait with its error", func(t *testing.T) {
		_, s := tcpPair(t)
		rw := NewRawIO(s)
		_ = s.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		if err := WaitReadable(rw); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("want a deadline error, got %v", err)
		}
	})
}

func TestNonBlockingRawIO(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("event loops are Linux's")
	}
	t.Run("a read with nothing to read would block, then reads what came", func(t *testing.T) {
		c, s := tcpPair(t)
		rw := NewRawIO(s)
		if !SetNonBlocking(rw, true, true) {
			t.Fatal("a raw connection refused non-blocking mode")
		}
		if _, err := rw.Read(make([]byte, 8)); !errors.Is(err, ErrWouldBlock) {
			t.Fatalf("read of an empty socket: %v, want ErrWouldBlock", err)
		}
		if _, err := c.Write([]byte("hi")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 8)
		deadline := time.Now().Add(5 * time.Second)
		for {
			n, err := rw.Read(buf)
			if err == nil {
				if string(buf[:n]) != "hi" {
					t.Fatalf("read %q", buf[:n])
				}
				break
			}
			if !errors.Is(err, ErrWouldBlock) || time.Now().After(deadline) {
				t.Fatalf("read: %v", err)
			}
			time.Sleep(time.Millisecond)
		}
	})
	t.Run("a write to a full socket returns what it wrote, and waits again once switched back", func(t *testing.T) {
		c, s := tcpPair(t)
		rw := NewRawIO(s)
		SetNonBlocking(rw, false, true)
		big := make([]byte, 64<<20)
		n, err := rw.Write(big)
		if !errors.Is(err, ErrWouldBlock) || n <= 0 || n >= len(big) {
			t.Fatalf("Write = %d, %v; want part of it and ErrWouldBlock", n, err)
		}
		SetNonBlocking(rw, false, false)
		go func() { _, _ = io.Copy(io.Discard, c) }()
		if m, err := rw.Write(big[n:]); err != nil || m != len(big)-n {
			t.Fatalf("waiting Write = %d, %v", m, err)
		}
	})
	t.Run("Quiet tells a silent connection from one that was sent something or closed", func(t *testing.T) {
		c, s := tcpPair(t)
		rw := NewRawIO(s)
		if q, ok := Quiet(rw); !ok || !q {
			t.Fatalf("Quiet = %v, %v on a silent connection", q, ok)
		}
		if _, err := c.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		waitFor(t, func() bool { q, _ := Quiet(rw); return !q })
		buf := make([]byte, 1)
		if _, err := io.ReadFull(rw, buf); err != nil || buf[0] != 'x' {
			t.Fatalf("Quiet consumed the byte: %q, %v", buf, err)
		}
		if q, _ := Quiet(rw); !q {
			t.Fatal("not quiet once read")
		}
		c.Close()
		waitFor(t, func() bool { q, _ := Quiet(rw); return !q })
	})
	t.Run("RawFD names the connection's socket", func(t *testing.T) {
		_, s := tcpPair(t)
		if fd, ok := RawFD(NewRawIO(s)); !ok || fd < 0 {
			t.Fatalf("RawFD = %d, %v", fd, ok)
		}
		if _, ok := RawFD(struct{ io.ReadWriter }{}); ok {
			t.Fatal("RawFD of something else succeeded")
		}
	})
}

// waitFor waits up to five seconds for cond.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(time.Millisecond)
	}
}
