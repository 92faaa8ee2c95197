package pgtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// LoadDemo creates database (dropping it first) from the *.sql files of
// dir, run in name order, then sets the password of the demo's service
// account pgveil_svc when servicePassword is not empty. The demo runner
// and the tests of every package load testdata/demo this way.
func (c *Cluster) LoadDemo(ctx context.Context, dir, database, servicePassword string) error {
	files, err := filepath.Glob(filepath.Join(dir, "*.sql"))
	if err != nil || len(files) == 0 {
		return fmt.Errorf("pgtest: no SQL files in %s", dir)
	}
	sort.Strings(files)
	if err := c.CreateDatabase(ctx, database); err != nil {
		return err
	}
	for _, f := range files {
		sql, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("pgtest: reading %s: %w", f, err)
		}
		if err := c.Exec(ctx, database, string(sql)); err != nil {
			return fmt.Errorf("pgtest: loading %s: %w", filepath.Base(f), err)
		}
	}
	if servicePassword == "" {
		return nil
	}
	if strings.ContainsAny(servicePassword, `'\`) {
		return fmt.Errorf("pgtest: the service password must not contain quotes or backslashes")
	}
	return c.Exec(ctx, database, "ALTER ROLE pgveil_svc PASSWORD '"+servicePassword+"'")
}
