package pgtest

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// RunScript runs script on conn as psql runs a file: its statements with
// the simple query protocol and, after each line COPY … FROM STDIN; (in
// any case), the lines that follow up to one holding only \. as that
// COPY's data. It returns the first error.
func RunScript(ctx context.Context, conn *pgconn.PgConn, script string) error {
	var sql []string
	flush := func() error {
		text := strings.Join(sql, "\n")
		sql = sql[:0]
		if strings.TrimSpace(text) == "" {
			return nil
		}
		_, err := conn.Exec(ctx, text).ReadAll()
		return err
	}
	lines := strings.Split(script, "\n")
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		up := strings.ToUpper(strings.TrimSpace(line))
		if !strings.HasPrefix(up, "COPY ") || !strings.HasSuffix(up, " FROM STDIN;") {
			sql = append(sql, line)
			continue
		}
		if err := flush(); err != nil {
			return err
		}
		var data strings.Builder
		for i++; ; i++ {
			if i == len(lines) {
				return fmt.Errorf("pgtest: the data of %q ends without \\.", line)
			}
			if lines[i] == `\.` {
				break
			}
			data.WriteString(lines[i])
			data.WriteByte('\n')
		}
		stmt := strings.TrimSuffix(strings.TrimSpace(line), ";")
		if _, err := conn.CopyFrom(ctx, strings.NewReader(data.String()), stmt); err != nil {
			return err
		}
	}
	return flush()
}

// ExecScript runs script, a psql script that may hold COPY … FROM STDIN
// with its data (RunScript), in database as the superuser.
func (c *Cluster) ExecScript(ctx context.Context, database, script string) error {
	conn, err := c.Connect(ctx, database)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if err := RunScript(ctx, conn, script); err != nil {
		return fmt.Errorf("pgtest: script in database %q: %w", database, err)
	}
	return nil
}
