package main

import (
	"context"
	"fmt"
	"time"
)

// streamResult is one streamed query.
type streamResult struct {
	rows    int64
	bytes   int64 // value bytes, in text format
	elapsed time.Duration
}

// rate returns the value bytes per second.
func (r streamResult) rate() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.bytes) / r.elapsed.Seconds()
}

// streamQuery returns the statement that produces rows rows of about 107
// bytes each.
func streamQuery(rows int) string {
	return fmt.Sprintf("SELECT g, repeat('x', 100) FROM generate_series(1, %d) g", rows)
}

// measureStream reads the streamQuery result through t with the extended
// protocol, touching every value, and times the query alone (the
// connection is opened before the clock starts).
func measureStream(ctx context.Context, t *target, rows int) (streamResult, error) {
	conn, err := t.connect(ctx)
	if err != nil {
		return streamResult{}, err
	}
	defer conn.Close(context.Background())

	var res streamResult
	begin := time.Now()
	rr := conn.ExecParams(ctx, streamQuery(rows), nil, nil, nil, nil)
	for rr.NextRow() {
		for _, v := range rr.Values() {
			res.bytes += int64(len(v))
		}
		res.rows++
	}
	if _, err := rr.Close(); err != nil {
		return streamResult{}, fmt.Errorf("stream %d rows through %s (after %d rows): %w", rows, t.name, res.rows, err)
	}
	res.elapsed = time.Since(begin)
	if res.rows != int64(rows) {
		return streamResult{}, fmt.Errorf("stream through %s: got %d rows, want %d", t.name, res.rows, rows)
	}
	return res, nil
}
