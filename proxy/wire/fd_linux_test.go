package wire

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// fdPair returns an FD taken from one end of a loopback TCP connection,
// and the other end.
func fdPair(t *testing.T) (*FD, io.ReadWriteCloser) {
	t.Helper()
	a, b := tcpPair(t)
	// Small socket buffers, so that a writer meets a full one soon.
	_ = a.(*net.TCPConn).SetWriteBuffer(16 << 10)
	_ = b.(*net.TCPConn).SetReadBuffer(16 << 10)
	if !Takeable(a) {
		t.Fatalf("a %T is not takeable", a)
	}
	fd, err := TakeFD(a)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fd.Shutdown(); fd.Close() })
	return fd, b
}

func TestFD(t *testing.T) {
	t.Run("a non-blocking read of an empty socket would block", func(t *testing.T) {
		fd, peer := fdPair(t)
		r := NewReader(fd, 64, 1<<20)
		if err := r.ReadOnce(HeaderLen); !errors.Is(err, ErrWouldBlock) {
			t.Fatalf("got %v, want ErrWouldBlock", err)
		}
		if _, err := peer.Write([]byte("Q\x00\x00\x00\x05")); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for r.Buffered() < HeaderLen && time.Now().Before(deadline) {
			if err := r.ReadOnce(HeaderLen); err != nil && !errors.Is(err, ErrWouldBlock) {
				t.Fatal(err)
			}
		}
		typ, total, err := r.Header()
		if err != nil || typ != 'Q' || total != 6 {
			t.Fatalf("got %q %d %v", typ, total, err)
		}
	})

	t.Run("a writer to a socket that is not read keeps the rest and never blocks", func(t *testing.T) {
		fd, peer := fdPair(t)
		w := NewWriter(fd, 1024)
		var sent bytes.Buffer
		chunk := bytes.Repeat([]byte("0123456789abcdef"), 4096)
		for i := 0; w.Pending() == 0; i++ {
			if i > 10000 {
				t.Fatal("the socket took 640 MB without pushing back")
			}
			if err := w.Write(chunk); err != nil {
				t.Fatal(err)
			}
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			sent.Write(chunk)
		}
		got := make(chan []byte)
		go func() {
			b, _ := io.ReadAll(io.LimitReader(peer, int64(sent.Len())))
			got <- b
		}()
		for w.Pending() > 0 {
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Millisecond)
		}
		if b := <-got; !bytes.Equal(b, sent.Bytes()) {
			t.Fatalf("the peer read %d bytes, not the %d sent in order", len(b), sent.Len())
		}
		if w.Held() > 1024 {
			t.Fatalf("the drained writer holds %d bytes", w.Held())
		}
	})

	t.Run("an idle reader and writer hold no buffer and work again", func(t *testing.T) {
		fd, peer := fdPair(t)
		r := NewReader(fd, 64, 1<<20)
		w := NewWriter(fd, 64)
		r.Idle()
		w.Idle()
		if r.Held() != 0 || w.Held() != 0 {
			t.Fatalf("held %d and %d bytes", r.Held(), w.Held())
		}
		if err := w.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 4)
		if _, err := io.ReadFull(peer, b); err != nil || string(b) != "ping" {
			t.Fatalf("got %q, %v", b, err)
		}
		if _, err := peer.Write([]byte("pong")); err != nil {
			t.Fatal(err)
		}
		fd.SetReadWait(true)
		if err := r.ReadOnce(4); err != nil || string(r.Peek(r.Buffered())) != "pong" {
			t.Fatalf("got %q, %v", r.Peek(r.Buffered()), err)
		}
	})

	t.Run("a read waiting on a socket ends when it is shut down", func(t *testing.T) {
		fd, _ := fdPair(t)
		fd.SetReadWait(true)
		done := make(chan error, 1)
		go func() {
			_, err := fd.Read(make([]byte, 16))
			done <- err
		}()
		time.Sleep(50 * time.Millisecond)
		fd.Shutdown()
		select {
		case err := <-done:
			if !errors.Is(err, io.EOF) {
				t.Fatalf("got %v, want EOF", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the read went on waiting after the shutdown")
		}
	})
}
