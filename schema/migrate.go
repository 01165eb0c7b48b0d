package schema

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

//go:embed ddl/*.sql
var ddlFiles embed.FS

// Migration is one numbered DDL file from ddl/.
type Migration struct {
	Version    int
	Name       string
	Statements []string // with {db} still in place
}

var migrationName = regexp.MustCompile(`^(\d{4})_([a-z0-9_]+)\.sql$`)

// Migrations returns the embedded DDL files in version order.
func Migrations() ([]Migration, error) {
	entries, err := fs.ReadDir(ddlFiles, "ddl")
	if err != nil {
		return nil, fmt.Errorf("cannot read embedded ddl: %w", err)
	}
	var ms []Migration
	for _, e := range entries {
		m := migrationName.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("cannot use ddl file %q: name must be NNNN_name.sql", e.Name())
		}
		body, err := ddlFiles.ReadFile("ddl/" + e.Name())
		if err != nil {
			return nil, fmt.Errorf("cannot read ddl file %q: %w", e.Name(), err)
		}
		v, _ := strconv.Atoi(m[1])
		ms = append(ms, Migration{Version: v, Name: m[2], Statements: splitStatements(string(body))})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	for i := 1; i < len(ms); i++ {
		if ms[i].Version == ms[i-1].Version {
			return nil, fmt.Errorf("cannot use ddl: version %d appears twice", ms[i].Version)
		}
	}
	return ms, nil
}

// splitStatements splits a DDL file on semicolons that end a line, dropping comment lines.
func splitStatements(body string) []string {
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(body, "\n") {
		t := strings.TrimSpace(line)
		if t == "" || strings.HasPrefix(t, "--") {
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
		if strings.HasSuffix(t, ";") {
			out = append(out, strings.TrimSuffix(strings.TrimSpace(cur.String()), ";"))
			cur.Reset()
		}
	}
	if s := strings.TrimSpace(cur.String()); s != "" {
		out = append(out, s)
	}
	return out
}

// Execer runs statements and queries; both store adapters satisfy it.
type Execer interface {
	Exec(ctx context.Context, query string) error
	Query(ctx context.Context, query string) (*Result, error)
}

// Database is the ClickHouse database of a site: statepipe_ and the site code in lower case.
func Database(site string) string { return "statepipe_" + strings.ToLower(site) }

// SiteOfDatabase is the site code of a database Database named (the database's own name in
// upper case otherwise): the views of the hierarchy name the site whose own cells they show.
func SiteOfDatabase(db string) string {
	return strings.ToUpper(strings.TrimPrefix(db, "statepipe_"))
}

var databaseName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// renameStatement is the one DDL statement without an IF NOT EXISTS form that migrations use.
// On a cluster it ends with ON CLUSTER (OnCluster).
var renameStatement = regexp.MustCompile(`(?is)^\s*RENAME\s+TABLE\s+([A-Za-z0-9_.{}]+)\s+TO\s+([A-Za-z0-9_.{}]+)(?:\s+ON\s+CLUSTER\s+[A-Za-z0-9_]+)?\s*$`)

// renamedBefore reports whether st is a RENAME TABLE whose target exists already: a migration
// interrupted after it runs again, and the rename is then done.
func renamedBefore(ctx context.Context, ex Execer, st string) (bool, error) {
	m := renameStatement.FindStringSubmatch(st)
	if m == nil {
		return false, nil
	}
	res, err := ex.Query(ctx, "EXISTS TABLE "+m[2])
	if err != nil {
		return false, fmt.Errorf("cannot tell whether %s exists: %w", m[2], err)
	}
	var exists int64
	if len(res.Rows) != 1 {
		return false, fmt.Errorf("cannot tell whether %s exists: %d rows", m[2], len(res.Rows))
	}
	if err := res.Scan(0, &exists); err != nil {
		return false, fmt.Errorf("cannot tell whether %s exists: %w", m[2], err)
	}
	return exists == 1, nil
}

// Migrate brings database db up to the newest embedded DDL version. It is idempotent: applied
// versions are recorded in db.schema_migrations and skipped, and every statement is written
// with IF NOT EXISTS (a RENAME TABLE is skipped when its target exists) so a migration
// interrupted half-way can simply run again.
//
// On a store on a ClickHouse cluster (Clustered) every statement, schema_migrations' own
// included, is rewritten by OnCluster, and a database created in the other layout is refused.
func Migrate(ctx context.Context, ex Execer, db string) (applied []int, err error) {
	if !databaseName.MatchString(db) {
		return nil, fmt.Errorf("cannot migrate database %q: not a plain identifier", db)
	}
	ms, err := Migrations()
	if err != nil {
		return nil, err
	}
	cluster := clusterOf(ex)
	if err := checkLayout(ctx, ex, db, cluster); err != nil {
		return nil, err
	}
	for _, q := range []string{
		"CREATE DATABASE IF NOT EXISTS " + db,
		"CREATE TABLE IF NOT EXISTS " + db + ".schema_migrations (version UInt32, name String, applied_at DateTime DEFAULT now()) ENGINE = ReplacingMergeTree ORDER BY version",
	} {
		if err := apply(ctx, ex, q, cluster); err != nil {
			return nil, fmt.Errorf("cannot prepare migrations in %s: %w", db, err)
		}
	}
	res, err := ex.Query(ctx, "SELECT version FROM "+db+".schema_migrations")
	if err != nil {
		return nil, fmt.Errorf("cannot read applied migrations of %s: %w", db, err)
	}
	done := map[int64]bool{}
	for i := range res.Rows {
		var v int64
		if err := res.Scan(i, &v); err != nil {
			return nil, fmt.Errorf("cannot read applied migrations of %s: %w", db, err)
		}
		done[v] = true
	}
	for _, m := range ms {
		if done[int64(m.Version)] {
			continue
		}
		for _, st := range m.Statements {
			st = strings.NewReplacer("{db}", db, "{site}", SiteOfDatabase(db)).Replace(st)
			if err := apply(ctx, ex, st, cluster); err != nil {
				return applied, fmt.Errorf("cannot apply migration %04d_%s to %s: %w", m.Version, m.Name, db, err)
			}
		}
		if err := ex.Exec(ctx, fmt.Sprintf("INSERT INTO %s.schema_migrations (version, name) VALUES (%d, '%s')", db, m.Version, m.Name)); err != nil {
			return applied, fmt.Errorf("cannot record migration %04d in %s: %w", m.Version, db, err)
		}
		applied = append(applied, m.Version)
	}
	return applied, nil
}

// apply runs one statement of a migration, skipped when it is a RENAME TABLE whose target
// exists already (renamedBefore): on cluster, the statements OnCluster makes of it, each
// RENAME TABLE among them skipped likewise.
func apply(ctx context.Context, ex Execer, st, cluster string) error {
	if done, err := renamedBefore(ctx, ex, st); err != nil || done {
		return err
	}
	sts, err := OnCluster(st, cluster)
	if err != nil {
		return err
	}
	for _, s := range sts {
		if s != st {
			if done, err := renamedBefore(ctx, ex, s); err != nil {
				return err
			} else if done {
				continue
			}
		}
		if err := ex.Exec(ctx, s); err != nil {
			return err
		}
	}
	return nil
}
