package pgtest

import (
	"context"

	"github.com/sluice-proxy/sluice/internal/pgserver"
)

// pgbenchTables are created by `pgbench -i`.
var pgbenchTables = []string{"pgbench_accounts", "pgbench_branches", "pgbench_history", "pgbench_tellers"}

// createFixtures makes the roles, AppDB and the pgbench tables. pgbench -i
// runs as the trusted superuser (no password plumbing), then hands the
// tables to AppUser and grants MD5User everything pgbench -S/-N needs
// (SELECT/UPDATE/INSERT, and TRUNCATE for the history table).
func createFixtures(ctx context.Context, c *pgserver.Cluster) error {
	if err := c.CreateRole(ctx, AppUser, AppPassword, "scram-sha-256"); err != nil {
		return err
	}
	if err := c.CreateRole(ctx, MD5User, MD5Password, "md5"); err != nil {
		return err
	}
	if err := c.CreateDatabase(ctx, AppDB, AppUser); err != nil {
		return err
	}
	if _, err := c.Pgbench(ctx, "-i", "-s", "1", "-q", AppDB); err != nil {
		return err
	}
	sql := "GRANT CONNECT, TEMPORARY ON DATABASE " + pgserver.QuoteIdent(AppDB) + " TO " + pgserver.QuoteIdent(MD5User) + ";\n"
	for _, tbl := range pgbenchTables {
		sql += "ALTER TABLE " + pgserver.QuoteIdent(tbl) + " OWNER TO " + pgserver.QuoteIdent(AppUser) + ";\n"
		sql += "GRANT ALL ON TABLE " + pgserver.QuoteIdent(tbl) + " TO " + pgserver.QuoteIdent(MD5User) + ";\n"
	}
	return c.ExecDB(ctx, AppDB, sql)
}
