package live

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5/pgconn"
)

// Field describes a column of a result; identical to policy.Field.
type Field = struct {
	// Name is the column's name.
	Name string
	// OID is the column's type.
	OID uint32
}

// Server runs the policy package's statements on one connection.
type Server struct {
	conn *pgconn.PgConn
}

// New returns the Server of conn, a connection as the service account
// with the pinned settings.
func New(conn *pgconn.PgConn) *Server { return &Server{conn: conn} }

// Exec runs sql, one or more statements, with the simple query protocol,
// and discards their results.
func (s *Server) Exec(ctx context.Context, sql string) error {
	_, err := s.conn.Exec(ctx, sql).ReadAll()
	return rejected(err)
}

// Query runs one statement with the extended protocol and params as its
// text parameters, and returns its columns and its rows in text format.
func (s *Server) Query(ctx context.Context, sql string, params ...string) ([]Field, [][][]byte, error) {
	var values [][]byte
	for _, p := range params {
		values = append(values, []byte(p))
	}
	// NOTE: not ResultReader.Read, whose Result has the columns of its
	// first row only: a query that returns no row (an identity table
	// emptied for a reload) would have none, and be refused as having no
	// login column.
	rr := s.conn.ExecParams(ctx, sql, values, nil, nil, nil)
	var rows [][][]byte
	for rr.NextRow() {
		values := rr.Values()
		row := make([][]byte, len(values))
		for i, v := range values {
			if v != nil {
				row[i] = append([]byte{}, v...)
			}
		}
		rows = append(rows, row)
	}
	cols := columns(rr.FieldDescriptions())
	if _, err := rr.Close(); err != nil {
		return nil, nil, rejected(err)
	}
	return cols, rows, nil
}

// Describe prepares sql as the unnamed statement and returns its
// columns.
func (s *Server) Describe(ctx context.Context, sql string) ([]Field, error) {
	sd, err := s.conn.Prepare(ctx, "", sql, nil)
	if err != nil {
		return nil, rejected(err)
	}
	return columns(sd.Fields), nil
}

// columns converts field descriptions.
func columns(fields []pgconn.FieldDescription) []Field {
	cols := make([]Field, len(fields))
	for i, f := range fields {
		cols[i] = Field{Name: f.Name, OID: f.DataTypeOID}
	}
	return cols
}

// Error is a statement PostgreSQL rejected: err, which is or wraps pg.
type Error struct {
	err error
	pg  *pgconn.PgError
}

// Error returns the text of the error as pgconn gave it.
func (e *Error) Error() string { return e.err.Error() }

// Unwrap returns the error as pgconn gave it.
func (e *Error) Unwrap() error { return e.err }

// ServerMessage returns the server's message and detail, which policy
// puts in diagnostics.
func (e *Error) ServerMessage() (message, detail string) { return e.pg.Message, e.pg.Detail }

// ServerHint returns the server's hint ("Perhaps you meant to reference
// the column …"), which policy adds to the diagnostics of queries a DBA
// wrote.
func (e *Error) ServerHint() string { return e.pg.Hint }

// rejected wraps an error holding a PgError about the statement in an
// Error; other errors (a failed connection) and nil are returned as they
// are. An error of the server's state, not of the statement — a lock not
// available in time, a cancel or timeout, an operator's intervention,
// resources, a system error — is not the statement's rejection: a check
// reporting it as one would go on to the next statement, and wait again.
func rejected(err error) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return err
	}
	if pgErr.Code == "55P03" || pgErr.Code == "57014" {
		return err
	}
	switch pgErr.Code[:min(2, len(pgErr.Code))] {
	case "08", "53", "57", "58", "XX":
		return err
	}
	return &Error{err: err, pg: pgErr}
}
