package chdb

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/statepipe/statepipe/schema"
)

// clusterDDL formats, with ClickHouse's own parser (formatQuery, which parses and prints a
// statement without running it: the engine here has no cluster and no Keeper), every
// statement schema.OnCluster makes of the statements of ms for database db on cluster. It
// returns how many statements it formatted and an error for each that does not parse or
// lost its cluster or engine on the way, naming the migration and the statement.
func clusterDDL(ctx context.Context, st *Store, ms []schema.Migration, db, cluster string) (int, []error) {
	r := strings.NewReplacer("{db}", db, "{site}", schema.SiteOfDatabase(db))
	var errs []error
	n := 0
	for _, m := range ms {
		for _, stmt := range m.Statements {
			sts, err := schema.OnCluster(r.Replace(stmt), cluster)
			if err != nil {
				errs = append(errs, fmt.Errorf("%04d_%s: %w", m.Version, m.Name, err))
				continue
			}
			for _, s := range sts {
				n++
				res, err := st.Query(ctx, "SELECT formatQuery("+schema.QuoteSQL(s)+")")
				var formatted string
				if err == nil {
					err = res.Scan(0, &formatted)
				}
				switch {
				case err != nil:
					errs = append(errs, fmt.Errorf("%04d_%s: statement does not parse:\n%s\n: %w", m.Version, m.Name, s, err))
				case strings.Contains(s, " ON CLUSTER ") && !strings.Contains(formatted, " ON CLUSTER "+cluster):
					errs = append(errs, fmt.Errorf("%04d_%s: ClickHouse reads no ON CLUSTER %s in:\n%s\n(formatted: %s)", m.Version, m.Name, cluster, s, formatted))
				case strings.Contains(s, "ENGINE = ") && !strings.Contains(formatted, "ENGINE = Replicated") && !strings.Contains(formatted, "ENGINE = Distributed("):
					errs = append(errs, fmt.Errorf("%04d_%s: ClickHouse reads neither a replicated nor a distributed engine in:\n%s\n(formatted: %s)", m.Version, m.Name, s, formatted))
				}
			}
		}
	}
	return n, errs
}

// The DDL every embedded migration becomes on a cluster parses with ClickHouse's parser.
func TestClusterDDLParses(t *testing.T) {
	requireLibrary(t)
	st, err := New(Config{Path: testDataDir})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := st.Close(); err != nil {
			t.Error(err)
		}
	}()
	ctx := context.Background()
	ms, err := schema.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	statements := 0
	for _, m := range ms {
		statements += len(m.Statements)
	}
	n, errs := clusterDDL(ctx, st, ms, "statepipe_p01", "statepipe")
	for _, err := range errs {
		t.Error(err)
	}
	if n <= statements {
		t.Errorf("%d migration statements became %d on a cluster: the sharded tables' should have added some", statements, n)
	}
	t.Logf("%d statements of %d migrations became %d on cluster statepipe, each parsed by ClickHouse %s", statements, len(ms), n, engineVersion(t, st))

	// The check can fail: a statement the parser refuses is reported with its migration.
	broken := []schema.Migration{{Version: 99, Name: "broken", Statements: []string{
		"CREATE TABLE IF NOT EXISTS {db}.clients (client String, last_serial UInt64 DEFAULT) ENGINE = ReplacingMergeTree(last_serial) ORDER BY client",
		"CREATE VIEW IF NOT EXISTS {db}.v_fine AS SELECT client FROM {db}.clients",
	}}}
	n, errs = clusterDDL(ctx, st, broken, "statepipe_p01", "statepipe")
	if n != 3 || len(errs) != 1 || !strings.Contains(errs[0].Error(), "0099_broken: statement does not parse") ||
		!strings.Contains(errs[0].Error(), "statepipe_p01.clients_local ON CLUSTER statepipe") {
		t.Errorf("a broken statement: %d formatted, errors %v; want 3 and one error naming 0099_broken and clients_local", n, errs)
	}
}

func engineVersion(t *testing.T, st *Store) string {
	res, err := st.Query(context.Background(), "SELECT version()")
	var v string
	if err == nil {
		err = res.Scan(0, &v)
	}
	if err != nil {
		t.Fatal(err)
	}
	return v
}
