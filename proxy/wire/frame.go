package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// HeaderLen is the size of a regular message header: a type byte and a
// big-endian int32 length that counts itself but not the type byte.
const HeaderLen = 5

// ErrMessageTooLarge is returned by Reader when a peer announces a
// message larger than the reader's cap.
var ErrMessageTooLarge = errors.New("message too large")

// ErrBadLength is returned when a peer announces a length below 4.
var ErrBadLength = errors.New("invalid message length")

// ErrWouldBlock is returned by a non-blocking source or destination (an
// FD in an event loop) that is not ready. A Reader passes it on; a Writer
// keeps what it could not write, for a later Flush.
var ErrWouldBlock = errors.New("operation would block")

// Reader reads PostgreSQL protocol messages from a connection through
// one fixed-size buffer. Messages the proxy does not decode are never
// assembled: Forward streams them to a Writer chunk by chunk, so a
// 1 GiB DataRow costs the same memory as a 10-byte one.
//
// NOTE: buf[r:w] holds bytes read from src and not yet consumed. The buffer
// grows only to hold one whole message the proxy must decode, bounded by
// max, and shrinks back to its initial size after such a message. An
// event loop's reader gives its buffer back while it holds nothing
// (Idle): buf is then nil and the next read takes one from a pool.
type Reader struct {
	src  io.Reader
	buf  []byte
	r, w int
	// initial is the steady-state buffer size.
	initial int
	// max caps the announced length of any message, header included.
	max int
}

// NewReader returns a Reader of src with a buffer of size bytes, taken
// at its first read, that refuses messages larger than max bytes, header
// included.
func NewReader(src io.Reader, size, max int) *Reader {
	return &Reader{src: src, initial: size, max: max}
}

// Held reports the capacity of the buffer f holds.
func (f *Reader) Held() int { return cap(f.buf) }

// SetSource makes f read from src from now on; what f buffered stays.
func (f *Reader) SetSource(src io.Reader) { f.src = src }

// Idle gives the buffer back to its pool when it holds nothing; the next
// read takes one again. An idle event-loop session holds no buffer.
func (f *Reader) Idle() {
	if f.r == f.w && f.buf != nil {
		if len(f.buf) == f.initial {
			putBuf(f.buf)
		}
		f.buf, f.r, f.w = nil, 0, 0
	}
}

// ReadOnce reads once from src, as much as one read returns, with room
// for the next want bytes (a message the caller waits for whole, bounded
// by max). It returns what src returned: ErrWouldBlock when a
// non-blocking src has nothing yet, io.EOF at its end.
func (f *Reader) ReadOnce(want int) error {
	if f.r == f.w {
		f.r, f.w = 0, 0
	}
	f.ensureRoom(max(1, min(want, f.max)-(f.w-f.r)))
	m, err := f.src.Read(f.buf[f.w:])
	f.w += m
	if m > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// Peek returns the next n buffered bytes without consuming them; the
// caller has checked that Buffered() >= n. The slice is valid until the
// next call on f.
func (f *Reader) Peek(n int) []byte { return f.buf[f.r : f.r+n] }

// ForwardBuffered moves up to total buffered bytes to dst (nil discards
// them) without reading, and returns how many it moved: the part of a
// message an event loop can pass on now.
func (f *Reader) ForwardBuffered(total int, dst *Writer) (int, error) {
	n := min(total, f.w-f.r)
	if n == 0 {
		return 0, nil
	}
	if dst != nil {
		if err := dst.Write(f.buf[f.r : f.r+n]); err != nil {
			return 0, err
		}
	}
	f.r += n
	return n, nil
}

// Buffered reports how many unconsumed bytes are in the buffer.
func (f *Reader) Buffered() int { return f.w - f.r }

// Preload puts bytes in front of anything read from src later. It is used
// for bytes another reader buffered before the connection was handed over.
func (f *Reader) Preload(b []byte) {
	f.ensureRoom(len(b))
	f.w += copy(f.buf[f.w:], b)
}

// ensureRoom makes space for n more bytes after w, compacting and growing
// the buffer as needed.
func (f *Reader) ensureRoom(n int) {
	if f.buf == nil {
		f.buf, f.r, f.w = getBuf(f.initial), 0, 0
	}
	if len(f.buf)-f.w >= n {
		return
	}
	have := f.w - f.r
	if have+n > len(f.buf) {
		nb := make([]byte, have+n)
		copy(nb, f.buf[f.r:f.w])
		f.buf = nb
	} else {
		copy(f.buf, f.buf[f.r:f.w])
	}
	f.r, f.w = 0, have
}

// fill reads until at least n bytes are buffered.
func (f *Reader) fill(n int) error {
	if f.w-f.r >= n {
		return nil
	}
	if f.r == f.w {
		f.r, f.w = 0, 0
	}
	f.ensureRoom(n - (f.w - f.r))
	for f.w-f.r < n {
		m, err := f.src.Read(f.buf[f.w:])
		f.w += m
		if err != nil {
			if f.w-f.r >= n {
				return nil
			}
			if errors.Is(err, io.EOF) && f.w-f.r > 0 {
				return io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

// readMore reads at least one more byte into the buffer, as much as one
// read returns.
func (f *Reader) readMore() error { return f.ReadOnce(1) }

// Header returns the type and total length (type byte included) of the
// next message, reading if fewer than 5 bytes are buffered.
func (f *Reader) Header() (typ byte, total int, err error) {
	if err := f.fill(HeaderLen); err != nil {
		return 0, 0, err
	}
	typ = f.buf[f.r]
	n := binary.BigEndian.Uint32(f.buf[f.r+1:])
	if n < 4 {
		return typ, 0, fmt.Errorf("%w %d for message type %q", ErrBadLength, n, typ)
	}
	if uint64(n)+1 > uint64(f.max) {
		return typ, 0, fmt.Errorf("%w: type %q announces %d bytes, the limit is %d", ErrMessageTooLarge, typ, n, f.max)
	}
	return typ, int(n) + 1, nil
}

// Message reads the whole message of total bytes and returns it (header
// included). The slice is valid until the next call on f.
func (f *Reader) Message(total int) ([]byte, error) {
	if err := f.fill(total); err != nil {
		return nil, err
	}
	m := f.buf[f.r : f.r+total]
	f.r += total
	return m, nil
}

// Unread puts back the message of total bytes Message just returned, for
// the next call to return again. It is valid only right after that
// Message, before any other call on f.
func (f *Reader) Unread(total int) { f.r -= total }

// PeekStrings returns the start of the next message, of total bytes,
// without consuming it: up to and including the n-th NUL byte after the
// header and skip more bytes, or the whole message when it holds fewer.
// It reads the names a Bind, Execute or Close starts with, whatever their
// length: the buffer grows as far as they need, bounded by total (which
// max bounds), and Release shrinks it back. The slice is valid until the
// next call on f.
func (f *Reader) PeekStrings(total, skip, n int) ([]byte, error) {
	size := min(total, f.initial)
	i := HeaderLen + skip
	for {
		if err := f.fill(size); err != nil {
			return nil, err
		}
		b := f.buf[f.r : f.r+size]
		for i < size {
			j := bytes.IndexByte(b[i:], 0)
			if j < 0 {
				i = size
				break
			}
			i += j + 1
			if n--; n == 0 {
				return b[:i], nil
			}
		}
		if size == total {
			return b, nil
		}
		size = min(total, 2*size)
	}
}

// PeekAtMost returns the first min(total, n) bytes of the next message,
// of total bytes, without consuming it: the head of a message whose
// rest is to be streamed (the parameter values of a Bind, for the audit
// trail). The buffer grows as PeekStrings's does, and Release shrinks it
// back. The slice is valid until the next call on f.
func (f *Reader) PeekAtMost(total, n int) ([]byte, error) {
	size := min(total, n)
	if err := f.fill(size); err != nil {
		return nil, err
	}
	return f.buf[f.r : f.r+size], nil
}

// Release shrinks the buffer back to its initial size once a large
// message has been consumed.
func (f *Reader) Release() {
	if len(f.buf) > f.initial && f.w-f.r <= f.initial {
		nb := make([]byte, f.initial)
		f.w = copy(nb, f.buf[f.r:f.w])
		f.r = 0
		f.buf = nb
	}
}

// Skip discards the next total bytes without keeping them.
func (f *Reader) Skip(total int) error {
	return f.Forward(total, nil)
}

// Forward moves the next total bytes to dst (nil discards them) without
// assembling them: buffered bytes first, then straight from src.
func (f *Reader) Forward(total int, dst *Writer) error {
	for total > 0 {
		if f.r == f.w {
			if err := f.readMore(); err != nil {
				if errors.Is(err, io.EOF) {
					return io.ErrUnexpectedEOF
				}
				return err
			}
		}
		n := min(total, f.w-f.r)
		if dst != nil {
			if err := dst.Write(f.buf[f.r : f.r+n]); err != nil {
				return err
			}
		}
		f.r += n
		total -= n
	}
	return nil
}

// WriteError marks an error writing to the destination of a Writer,
// so relays can tell which side of a session failed.
type WriteError struct{ err error }

// Error implements error.
func (e *WriteError) Error() string { return "write: " + e.err.Error() }

// Unwrap returns the error of the destination.
func (e *WriteError) Unwrap() error { return e.err }

// IsWriteErr reports whether err came from a Writer.
func IsWriteErr(err error) bool {
	var we *WriteError
	return errors.As(err, &we)
}

// Writer batches bytes for one connection and writes them when the
// batch fills or when Flush is called.
//
// A Writer to a non-blocking destination (an FD in an event loop) never
// waits: what the destination would not take stays in the batch, which
// grows past its size, until a later Flush; the event loop stops reading
// what feeds it meanwhile, which bounds it.
//
// NOTE: Writer is not safe for concurrent use; the session serialises
// writers to the client with its own mutex. buf is nil while an idle
// event-loop session holds no batch (Idle).
type Writer struct {
	dst  io.Writer
	buf  []byte
	size int
}

// NewWriter returns a Writer to dst that batches up to size bytes, in a
// buffer taken at its first write.
func NewWriter(dst io.Writer, size int) *Writer {
	return &Writer{dst: dst, size: size}
}

// SetDest makes w write to dst from now on; what w batched stays.
func (w *Writer) SetDest(dst io.Writer) { w.dst = dst }

// Held reports the capacity of the buffer w holds.
func (w *Writer) Held() int { return cap(w.buf) }

// Pending reports how many bytes wait in the batch.
func (w *Writer) Pending() int { return len(w.buf) }

// Idle gives the batch's buffer back to its pool when it is empty.
func (w *Writer) Idle() {
	if len(w.buf) == 0 && w.buf != nil {
		if cap(w.buf) == w.size {
			putBuf(w.buf[:w.size])
		}
		w.buf = nil
	}
}

// Write appends p, flushing whenever the batch is full. A chunk at least
// as large as the batch goes out directly, saving a copy.
func (w *Writer) Write(p []byte) error {
	if len(w.buf) == 0 && len(p) >= w.size {
		n, err := w.dst.Write(p)
		if err == nil {
			return nil
		}
		if !errors.Is(err, ErrWouldBlock) {
			return &WriteError{err}
		}
		p = p[n:]
	}
	for len(p) > 0 {
		if w.buf == nil {
			w.buf = getBuf(w.size)[:0]
		}
		if len(w.buf) == cap(w.buf) {
			// Full, and a non-blocking destination left it so: keep
			// the rest too.
			w.buf = append(w.buf, p...)
			return nil
		}
		n := copy(w.buf[len(w.buf):cap(w.buf)], p)
		w.buf = w.buf[:len(w.buf)+n]
		p = p[n:]
		if len(w.buf) == cap(w.buf) {
			if err := w.Flush(); err != nil {
				return err
			}
		}
	}
	return nil
}

// Flush writes the batch. A non-blocking destination may take part of
// it: the rest stays for the next Flush.
func (w *Writer) Flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	n, err := w.dst.Write(w.buf)
	if err != nil && errors.Is(err, ErrWouldBlock) {
		rest := copy(w.buf, w.buf[n:])
		w.buf = w.buf[:rest]
		if rest <= w.size && cap(w.buf) > w.size {
			// Back under the batch size: drop what it grew by.
			nb := getBuf(w.size)[:rest]
			copy(nb, w.buf)
			w.buf = nb
		}
		return nil
	}
	if cap(w.buf) > w.size {
		w.buf = nil
	} else {
		w.buf = w.buf[:0]
	}
	if err != nil {
		return &WriteError{err}
	}
	return nil
}

// WaitReadable waits until src, one of NewRawIO's, has something to read,
// holding no buffer meanwhile. It returns at once where it cannot wait
// so (TLS, other systems): the caller's next read then waits with its
// buffer.
func WaitReadable(src io.Reader) error {
	if w, ok := src.(interface{ WaitReadable() error }); ok {
		return w.WaitReadable()
	}
	return nil
}
