package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
)

// msg encodes one regular message of type typ with body.
func msg(typ byte, body string) []byte {
	b := []byte{typ, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[1:], uint32(4+len(body)))
	return append(b, body...)
}

// concat joins messages into one stream.
func concat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// TestReaderHeader holds Header to the framing rules: the type and total
// length of the next message, refusing lengths below 4 and above the cap.
func TestReaderHeader(t *testing.T) {
	tests := []struct {
		name      string
		in        []byte
		max       int
		wantTyp   byte
		wantTotal int
		wantErr   error
	}{
		{name: "an empty message is five bytes", in: msg('S', ""), max: 100, wantTyp: 'S', wantTotal: 5},
		{name: "a body counts in the total", in: msg('Q', "SELECT 1\x00"), max: 100, wantTyp: 'Q', wantTotal: 14},
		{name: "a message of exactly the cap passes", in: msg('Q', "abcde"), max: 10, wantTyp: 'Q', wantTotal: 10},
		{name: "a message one byte over the cap is too large", in: msg('Q', "abcdef"), max: 10, wantErr: ErrMessageTooLarge},
		{name: "a length below 4 is refused", in: []byte{'Q', 0, 0, 0, 3}, max: 100, wantErr: ErrBadLength},
		{name: "the largest length is too large, not negative", in: []byte{'Q', 0xff, 0xff, 0xff, 0xff}, max: 1 << 30, wantErr: ErrMessageTooLarge},
		{name: "nothing at all is io.EOF", in: nil, max: 100, wantErr: io.EOF},
		{name: "a header cut short is io.ErrUnexpectedEOF", in: []byte{'Q', 0, 0}, max: 100, wantErr: io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewReader(bytes.NewReader(tt.in), 16, tt.max)
			typ, total, err := r.Header()
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Header() error = %v; want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil || typ != tt.wantTyp || total != tt.wantTotal {
				t.Fatalf("Header() = %q, %d, %v; want %q, %d, nil", typ, total, err, tt.wantTyp, tt.wantTotal)
			}
		})
	}
}

// TestReaderMessages reads streams message by message through buffers
// smaller and larger than the messages, one byte per read or all at once.
func TestReaderMessages(t *testing.T) {
	big := msg('D', string(bytes.Repeat([]byte("x"), 300)))
	stream := concat(msg('Q', "SELECT 1\x00"), big, msg('S', ""), msg('Z', "I"))
	sources := map[string]func() io.Reader{
		"read all at once": func() io.Reader { return bytes.NewReader(stream) },
		"read byte by byte": func() io.Reader {
			return iotest.OneByteReader(bytes.NewReader(stream))
		},
		"read with the last bytes and io.EOF together": func() io.Reader {
			return iotest.DataErrReader(bytes.NewReader(stream))
		},
	}
	for name, src := range sources {
		for _, size := range []int{8, 64, 1024} {
			t.Run(name+" through a buffer of "+strconv.Itoa(size)+" bytes", func(t *testing.T) {
				r := NewReader(src(), size, 1<<20)
				var got [][]byte
				for {
					_, total, err := r.Header()
					if err == io.EOF {
						break
					}
					if err != nil {
						t.Fatalf("Header: %v", err)
					}
					m, err := r.Message(total)
					if err != nil {
						t.Fatalf("Message: %v", err)
					}
					got = append(got, bytes.Clone(m))
					r.Release()
				}
				if !bytes.Equal(concat(got...), stream) || len(got) != 4 {
					t.Fatalf("read %d messages %q; want the 4 messages of the stream", len(got), got)
				}
				if len(r.buf) != size {
					t.Fatalf("buffer is %d bytes after Release; want %d", len(r.buf), size)
				}
			})
		}
	}
}

// TestReaderForward streams messages without assembling them.
func TestReaderForward(t *testing.T) {
	t.Run("a message larger than the buffer reaches the writer whole", func(t *testing.T) {
		big := msg('D', string(bytes.Repeat([]byte("0123456789"), 1000)))
		r := NewReader(iotest.HalfReader(bytes.NewReader(concat(big, msg('Z', "I")))), 32, 1<<20)
		var out bytes.Buffer
		w := NewWriter(&out, 64)
		_, total, err := r.Header()
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Forward(total, w); err != nil {
			t.Fatalf("Forward: %v", err)
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out.Bytes(), big) {
			t.Fatalf("forwarded %d bytes; want the %d of the message", out.Len(), len(big))
		}
		if len(r.buf) != 32 {
			t.Fatalf("buffer grew to %d bytes to forward; want it kept at 32", len(r.buf))
		}
		if typ, _, err := r.Header(); typ != 'Z' || err != nil {
			t.Fatalf("next Header = %q, %v; want 'Z', nil", typ, err)
		}
	})

	t.Run("a skipped message is gone and the next one reads", func(t *testing.T) {
		r := NewReader(bytes.NewReader(concat(msg('d', "data"), msg('c', ""))), 8, 100)
		_, total, _ := r.Header()
		if err := r.Skip(total); err != nil {
			t.Fatalf("Skip: %v", err)
		}
		if typ, _, err := r.Header(); typ != 'c' || err != nil {
			t.Fatalf("next Header = %q, %v; want 'c', nil", typ, err)
		}
	})

	t.Run("a message cut short is io.ErrUnexpectedEOF", func(t *testing.T) {
		m := msg('D', "0123456789")
		r := NewReader(bytes.NewReader(m[:8]), 64, 100)
		_, total, _ := r.Header()
		if err := r.Forward(total, nil); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("Forward = %v; want io.ErrUnexpectedEOF", err)
		}
	})

	t.Run("a reader that makes no progress is an error, not a loop", func(t *testing.T) {
		r := NewReader(iotest.ErrReader(nil), 8, 100)
		r.Preload(msg('D', "abcdefgh")[:6])
		_, total, err := r.Header()
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Forward(total, nil); !errors.Is(err, io.ErrNoProgress) {
			t.Fatalf("Forward = %v; want io.ErrNoProgress", err)
		}
	})
}

// TestReaderPreload holds Preload to putting bytes before the source's.
func TestReaderPreload(t *testing.T) {
	first, second := msg('S', "a=b\x00"), msg('Z', "I")
	r := NewReader(bytes.NewReader(second), 4, 100)
	r.Preload(first)
	if r.Buffered() != len(first) {
		t.Fatalf("Buffered() = %d; want %d", r.Buffered(), len(first))
	}
	for _, want := range [][]byte{first, second} {
		_, total, err := r.Header()
		if err != nil {
			t.Fatal(err)
		}
		m, err := r.Message(total)
		if err != nil || !bytes.Equal(m, want) {
			t.Fatalf("Message = %q, %v; want %q", m, err, want)
		}
	}
}

// TestReaderPeekStrings holds PeekStrings to reading the leading names of
// a message without consuming it, whatever their length.
func TestReaderPeekStrings(t *testing.T) {
	long := string(bytes.Repeat([]byte("p"), 100))
	tests := []struct {
		name    string
		m       []byte
		skip, n int
		want    string
	}{
		{name: "two short names", m: msg('B', "portal\x00stmt\x00\x00\x00"), n: 2, want: "portal\x00stmt\x00"},
		{name: "names longer than the buffer", m: msg('B', long+"\x00"+long+"\x00rest"), n: 2, want: long + "\x00" + long + "\x00"},
		{name: "a name after skipped bytes", m: msg('C', "Sname\x00"), skip: 1, n: 1, want: "Sname\x00"},
		{name: "fewer names than asked give the whole message", m: msg('E', "p\x00"), n: 3, want: "p\x00"},
		{name: "a name without its NUL gives the whole message", m: msg('E', long), n: 1, want: long},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewReader(bytes.NewReader(tt.m), 16, 1<<20)
			_, total, err := r.Header()
			if err != nil {
				t.Fatal(err)
			}
			b, err := r.PeekStrings(total, tt.skip, tt.n)
			if err != nil {
				t.Fatalf("PeekStrings: %v", err)
			}
			if got := string(b[HeaderLen:]); got != tt.want {
				t.Fatalf("PeekStrings = %q; want %q", got, tt.want)
			}
			r.Release()
			m, err := r.Message(total)
			if err != nil || !bytes.Equal(m, tt.m) {
				t.Fatalf("Message after PeekStrings = %q, %v; want the whole message", m, err)
			}
		})
	}
}

// failWriter fails every write.
type failWriter struct{ n int }

// Write counts the call and fails it.
func (f *failWriter) Write(p []byte) (int, error) {
	f.n++
	return 0, errors.New("broken pipe")
}

// TestWriter holds Writer to batching and to marking its errors.
func TestWriter(t *testing.T) {
	t.Run("small writes wait for Flush", func(t *testing.T) {
		var out bytes.Buffer
		w := NewWriter(&out, 16)
		if err := w.Write([]byte("abc")); err != nil {
			t.Fatal(err)
		}
		if out.Len() != 0 {
			t.Fatalf("%d bytes written before Flush; want 0", out.Len())
		}
		if err := w.Flush(); err != nil || out.String() != "abc" {
			t.Fatalf("after Flush: %q, %v; want \"abc\", nil", out.String(), err)
		}
	})

	t.Run("a full batch goes out without Flush", func(t *testing.T) {
		var out bytes.Buffer
		w := NewWriter(&out, 4)
		if err := w.Write([]byte("abcdef")); err != nil {
			t.Fatal(err)
		}
		if out.String() != "abcdef" {
			t.Fatalf("written %q; want the chunk at least as large as the batch at once", out.String())
		}
		_ = w.Write([]byte("gh"))
		_ = w.Write([]byte("ij"))
		if out.String() != "abcdefghij" {
			t.Fatalf("written %q; want the full batch flushed", out.String())
		}
	})

	t.Run("a destination's error is a WriteError", func(t *testing.T) {
		fw := &failWriter{}
		w := NewWriter(fw, 4)
		_ = w.Write([]byte("ab"))
		err := w.Flush()
		if !IsWriteErr(err) {
			t.Fatalf("Flush = %v; want a WriteError", err)
		}
		if IsWriteErr(io.EOF) {
			t.Fatal("IsWriteErr(io.EOF) = true; want false")
		}
	})

	t.Run("flushing nothing writes nothing", func(t *testing.T) {
		fw := &failWriter{}
		if err := NewWriter(fw, 4).Flush(); err != nil || fw.n != 0 {
			t.Fatalf("Flush = %v after %d writes; want nil after none", err, fw.n)
		}
	})
}

// FuzzReader reads arbitrary bytes as a message stream, decoding some
// messages and streaming others: the reader must never panic, never
// return a message of another length than its header announces, and
// stream exactly the bytes it was given.
func FuzzReader(f *testing.F) {
	f.Add(concat(msg('Q', "SELECT 1\x00"), msg('Z', "I")), uint8(8))
	f.Add(concat(msg('B', "p\x00s\x00\x00\x00"), msg('E', "p\x00\x00\x00\x00\x00")), uint8(3))
	f.Add([]byte{'Q', 0, 0, 0, 3}, uint8(16))
	f.Add([]byte{'Q', 0xff, 0xff, 0xff, 0xff}, uint8(16))
	f.Fuzz(func(t *testing.T, data []byte, size uint8) {
		r := NewReader(iotest.HalfReader(bytes.NewReader(data)), int(size)%64+5, 4096)
		var out bytes.Buffer
		w := NewWriter(&out, 32)
		for i := 0; ; i++ {
			typ, total, err := r.Header()
			if err != nil {
				return
			}
			if total < HeaderLen || total > 4096 {
				t.Fatalf("Header total %d outside [5, 4096]", total)
			}
			switch i % 3 {
			case 0:
				m, err := r.Message(total)
				if err != nil {
					return
				}
				if len(m) != total || m[0] != typ {
					t.Fatalf("Message = %d bytes of type %q; want %d of %q", len(m), m[0], total, typ)
				}
				r.Release()
			case 1:
				b, err := r.PeekStrings(total, 0, 2)
				if err != nil {
					return
				}
				if len(b) > total {
					t.Fatalf("PeekStrings returned %d bytes of a %d-byte message", len(b), total)
				}
				r.Release()
				if err := r.Skip(total); err != nil {
					return
				}
			default:
				before := out.Len() + len(w.buf)
				if err := r.Forward(total, w); err != nil {
					return
				}
				if got := out.Len() + len(w.buf) - before; got != total {
					t.Fatalf("Forward moved %d bytes; want %d", got, total)
				}
			}
		}
	})
}

// stutter is a non-blocking source or destination that takes or gives
// at most the next step's count of bytes at a time, and would block when
// that count is 0 — never twice in a row, as a socket that becomes
// ready after a wait.
type stutter struct {
	steps   []byte
	i       int
	blocked bool
	src     []byte
	dst     bytes.Buffer
}

func (s *stutter) step() int {
	if len(s.steps) == 0 {
		return 7
	}
	n := int(s.steps[s.i%len(s.steps)]) % 9
	s.i++
	if n == 0 && s.blocked {
		n = 1
	}
	s.blocked = n == 0
	return n
}

func (s *stutter) Read(p []byte) (int, error) {
	if len(s.src) == 0 {
		return 0, io.EOF
	}
	n := min(s.step(), len(p), len(s.src))
	if n == 0 {
		return 0, ErrWouldBlock
	}
	copy(p, s.src[:n])
	s.src = s.src[n:]
	return n, nil
}

func (s *stutter) Write(p []byte) (int, error) {
	n := min(s.step(), len(p))
	s.dst.Write(p[:n])
	if n < len(p) {
		return n, ErrWouldBlock
	}
	return n, nil
}

// FuzzNonBlocking holds the event loop's way of reading and writing —
// one read at a time, messages decoded once whole, the others passed on
// as they arrive, writes that take part of what they are given, buffers
// given back while empty — to the blocking Reader: the same messages,
// the same bytes, in the same order.
func FuzzNonBlocking(f *testing.F) {
	f.Add(concat(msg('Q', "SELECT 1\x00"), msg('D', strings.Repeat("x", 300)), msg('Z', "I")), []byte{3, 0, 8, 1}, uint8(8))
	f.Add(concat(msg('d', "abc"), msg('c', "")), []byte{0, 0, 5}, uint8(1))
	f.Fuzz(func(t *testing.T, data, steps []byte, size uint8) {
		const limit = 4096
		// What the blocking reader reads: each message, decoded (even
		// positions) or forwarded (odd ones).
		var want bytes.Buffer
		var wantMsgs int
		br := NewReader(bytes.NewReader(data), 64, limit)
		for i := 0; ; i++ {
			_, total, err := br.Header()
			if err != nil {
				break
			}
			m, err := br.Message(total)
			if err != nil {
				break
			}
			want.Write(m)
			wantMsgs++
		}

		src := &stutter{steps: steps, src: data}
		dst := &stutter{steps: steps}
		r := NewReader(src, int(size)%64+5, limit)
		w := NewWriter(dst, 16)
		var got bytes.Buffer
		gotMsgs, remain, want5 := 0, 0, HeaderLen
		for spins := 0; spins < 1_000_000; spins++ {
			if remain > 0 {
				n, err := r.ForwardBuffered(remain, w)
				if err != nil {
					t.Fatal(err)
				}
				if remain -= n; remain == 0 {
					gotMsgs++
					continue
				}
			} else if r.Buffered() >= HeaderLen {
				_, total, err := r.Header()
				if err != nil {
					break
				}
				switch {
				case gotMsgs%2 == 1:
					// Streamed as it arrives.
					remain = total
					continue
				case r.Buffered() >= total:
					m, err := r.Message(total)
					if err != nil {
						t.Fatal(err)
					}
					if err := w.Flush(); err != nil {
						t.Fatal(err)
					}
					// Decoded: written whole, behind what was streamed.
					if err := w.Write(m); err != nil {
						t.Fatal(err)
					}
					r.Release()
					gotMsgs++
					continue
				default:
					want5 = total
				}
			}
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			if r.Buffered() == 0 {
				r.Idle()
			}
			if w.Pending() == 0 {
				w.Idle()
			}
			err := r.ReadOnce(max(want5, remain))
			want5 = HeaderLen
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil && !errors.Is(err, ErrWouldBlock) {
				t.Fatal(err)
			}
		}
		for w.Pending() > 0 {
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
		}
		got.Write(dst.dst.Bytes())
		// A message cut off by the end of data is streamed in part by
		// the non-blocking reader only: compare the whole messages.
		if !bytes.HasPrefix(got.Bytes(), want.Bytes()) || gotMsgs < wantMsgs {
			t.Fatalf("non-blocking path gave %d messages, %d bytes; blocking %d messages, %d bytes", gotMsgs, got.Len(), wantMsgs, want.Len())
		}
	})
}
