package proxytest

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// Answer runs sql on c (simple protocol) and returns every row as
// text, or "error <SQLSTATE>".
func Answer(ctx context.Context, c *pgconn.PgConn, sql string) string {
	var b strings.Builder
	rs, err := c.Exec(ctx, sql).ReadAll()
	for _, res := range rs {
		for _, r := range res.Rows {
			fmt.Fprintf(&b, "%q\n", r)
		}
		if res.Err != nil && err == nil {
			err = res.Err
		}
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return "error " + pe.Code + " " + pe.Message
	}
	if err != nil {
		return "error " + err.Error()
	}
	return b.String()
}

// SQLState is err's SQLSTATE, or its text when PostgreSQL (or pgveil)
// did not send one.
func SQLState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return err.Error()
}
