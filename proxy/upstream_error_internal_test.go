package proxy

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

func TestUpstreamConnectError(t *testing.T) {
	tests := []struct {
		name  string
		cause error
		code  string
	}{
		{"an upstream with no slot free is 53300", &pgconn.PgError{Code: "53300", Message: `too many connections for role "svc"`}, "53300"},
		{"an upstream shutting down is 57P03", fmt.Errorf("failed to connect: %w", &pgconn.PgError{Code: "57P03", Message: "the database system is shutting down"}), "57P03"},
		{"a refused password is 08001", &pgconn.PgError{Code: "28P01", Message: `password authentication failed for user "svc"`}, "08001"},
		{"a refused dial is 08001", errors.New("dial tcp 127.0.0.1:5432: connect: connection refused"), "08001"},
		{"a hung upstream is 08001", context.DeadlineExceeded, "08001"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := upstreamConnectError("ERROR", tt.cause)
			if r.Code != tt.code || r.Hint == "" || r.Severity != "ERROR" {
				t.Fatalf("got %s %q (hint %q, severity %s), want %s with a hint", r.Code, r.Message, r.Hint, r.Severity, tt.code)
			}
			if r.Message == tt.cause.Error() || r.Detail != "" {
				t.Errorf("the server's own text reached the client: %q %q", r.Message, r.Detail)
			}
		})
	}
}
