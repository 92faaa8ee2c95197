package proxytest

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// SendBatch sends msgs and reads the answers up to a ReadyForQuery,
// returning the DataRows and the error codes seen.
func SendBatch(t *testing.T, fe *pgproto3.Frontend, msgs ...pgproto3.FrontendMessage) (rows int, codes []string) {
	t.Helper()
	for _, m := range msgs {
		fe.Send(m)
	}
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	for {
		m, err := fe.Receive()
		if err != nil {
			t.Fatal(err)
		}
		switch m := m.(type) {
		case *pgproto3.DataRow:
			rows++
		case *pgproto3.ErrorResponse:
			codes = append(codes, m.Code)
		case *pgproto3.ReadyForQuery:
			return rows, codes
		}
	}
}

// PipelineBatches sends msgs in one write and reads nRFQ ReadyForQuery; it
// returns, per batch, the first DataRow value and error code.
func PipelineBatches(t *testing.T, c *pgx.Conn, nRFQ int, msgs ...pgproto3.FrontendMessage) (vals, codes, errs []string) {
	t.Helper()
	fe := c.PgConn().Frontend()
	for _, m := range msgs {
		fe.Send(m)
	}
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	val, code, msg := "", "", ""
	for len(vals) < nRFQ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = ctx
		m, err := fe.Receive()
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		switch m := m.(type) {
		case *pgproto3.DataRow:
			if val == "" && len(m.Values) > 0 {
				val = string(m.Values[0])
			}
		case *pgproto3.ErrorResponse:
			if code == "" {
				code, msg = m.Code, m.Message
			}
		case *pgproto3.ReadyForQuery:
			vals, codes, errs = append(vals, val), append(codes, code), append(errs, msg)
			val, code, msg = "", "", ""
		}
	}
	return
}

// RunPipeline sends steps on one pipeline of c, syncs, and returns the
// error of each result (nil for success) in order, up to the sync.
func RunPipeline(t *testing.T, c *pgx.Conn, steps func(p *pgconn.Pipeline)) []error {
	t.Helper()
	p := c.PgConn().StartPipeline(context.Background())
	steps(p)
	if err := p.Sync(); err != nil {
		t.Fatal(err)
	}
	var errs []error
	for {
		res, err := p.GetResults()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		switch r := res.(type) {
		case *pgconn.ResultReader:
			_, err := r.Close()
			errs = append(errs, err)
			continue
		case *pgconn.PipelineSync:
			if err := p.Close(); err != nil {
				var pe *pgconn.PgError
				if !errors.As(err, &pe) {
					t.Fatal(err)
				}
			}
			return errs
		case nil:
			t.Fatal("pipeline ended before its sync")
		default:
			errs = append(errs, nil)
		}
	}
}

// HeldHeapMiB returns the live heap after a GC, in MiB.
func HeldHeapMiB() float64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return float64(m.HeapAlloc) / (1 << 20)
}
