package schema

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func TestOnCluster(t *testing.T) {
	const db = "statepipe_p01"
	for _, c := range []struct {
		name    string
		in      string
		cluster string
		want    []string
		err     string // a part of the error, when one is wanted
	}{
		{name: "no cluster: unchanged", in: "CREATE TABLE IF NOT EXISTS d.current_state (client String) ENGINE = ReplacingMergeTree ORDER BY client",
			want: []string{"CREATE TABLE IF NOT EXISTS d.current_state (client String) ENGINE = ReplacingMergeTree ORDER BY client"}},
		{name: "database", in: "CREATE DATABASE IF NOT EXISTS " + db, cluster: "c",
			want: []string{"CREATE DATABASE IF NOT EXISTS " + db + " ON CLUSTER c"}},
		{name: "sharded table with engine arguments", cluster: "main",
			in: "CREATE TABLE IF NOT EXISTS d.current_state\n(\n    client String,\n    serial UInt64 COMMENT 'a, b'\n)\nENGINE = ReplacingMergeTree(serial)\nORDER BY (topic_type, topic_id, client)",
			want: []string{
				"CREATE TABLE IF NOT EXISTS d.current_state_local ON CLUSTER main\n(\n    client String,\n    serial UInt64 COMMENT 'a, b'\n)\n" +
					"ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', serial)\nORDER BY (topic_type, topic_id, client)",
				"CREATE TABLE IF NOT EXISTS d.current_state ON CLUSTER main AS d.current_state_local\nENGINE = Distributed(main, d, current_state_local, cityHash64(client))",
			}},
		{name: "sharded table, engine without arguments", cluster: "c",
			in: "CREATE TABLE IF NOT EXISTS d.state_messages (client String, serial UInt64) ENGINE = ReplacingMergeTree\nPARTITION BY toYYYYMM(accepted_at)\nORDER BY (client, serial)",
			want: []string{
				"CREATE TABLE IF NOT EXISTS d.state_messages_local ON CLUSTER c\n(client String, serial UInt64)\n" +
					"ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')\nPARTITION BY toYYYYMM(accepted_at)\nORDER BY (client, serial)",
				"CREATE TABLE IF NOT EXISTS d.state_messages ON CLUSTER c AS d.state_messages_local\nENGINE = Distributed(c, d, state_messages_local, cityHash64(client))",
			}},
		{name: "sharded table keyed by client alone", cluster: "c",
			in: "CREATE TABLE d.clients (client String, last_serial UInt64) ENGINE = ReplacingMergeTree(last_serial) ORDER BY client SETTINGS index_granularity = 8192",
			want: []string{
				"CREATE TABLE d.clients_local ON CLUSTER c\n(client String, last_serial UInt64)\n" +
					"ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', last_serial) ORDER BY client SETTINGS index_granularity = 8192",
				"CREATE TABLE d.clients ON CLUSTER c AS d.clients_local\nENGINE = Distributed(c, d, clients_local, cityHash64(client))",
			}},
		{name: "table on every node", cluster: "c",
			in: "CREATE TABLE IF NOT EXISTS d.agg_states (scope String, version UInt64) ENGINE = ReplacingMergeTree(version) ORDER BY (scope, partition)",
			want: []string{"CREATE TABLE IF NOT EXISTS d.agg_states ON CLUSTER c\n(scope String, version UInt64)\n" +
				"ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/all/{database}/{table}', '{shard}-{replica}', version) ORDER BY (scope, partition)"}},
		{name: "plain MergeTree on every node", cluster: "c",
			in: "CREATE TABLE IF NOT EXISTS d.hier_rebuilds (at DateTime64(3, 'UTC') DEFAULT now64(3)) ENGINE = MergeTree ORDER BY at",
			want: []string{"CREATE TABLE IF NOT EXISTS d.hier_rebuilds ON CLUSTER c\n(at DateTime64(3, 'UTC') DEFAULT now64(3))\n" +
				"ENGINE = ReplicatedMergeTree('/clickhouse/tables/all/{database}/{table}', '{shard}-{replica}') ORDER BY at"}},
		{name: "sharded table whose sorting key lacks client", cluster: "c",
			in:  "CREATE TABLE d.scan_history (client String, serial UInt64) ENGINE = ReplacingMergeTree ORDER BY (serial, clientele)",
			err: "the sorting key of scan_history must contain client"},
		{name: "engine outside the MergeTree family", cluster: "c",
			in: "CREATE TABLE d.t (a UInt8) ENGINE = Memory", err: "engine Memory"},
		{name: "engine replicated already", cluster: "c",
			in: "CREATE TABLE d.t (a UInt8) ENGINE = ReplicatedMergeTree('/p', 'r') ORDER BY a", err: "engine ReplicatedMergeTree"},
		{name: "a cluster named already", cluster: "c",
			in: "CREATE TABLE d.t ON CLUSTER x (a UInt8) ENGINE = MergeTree ORDER BY a", err: "names a cluster already"},
		{name: "a table made AS another", cluster: "c",
			in: "CREATE TABLE d.t AS d.u", err: "created with its columns"},
		{name: "view", cluster: "c", in: "CREATE VIEW IF NOT EXISTS d.v_current_state AS\nSELECT * FROM d.current_state FINAL",
			want: []string{"CREATE VIEW IF NOT EXISTS d.v_current_state ON CLUSTER c AS\nSELECT * FROM d.current_state FINAL"}},
		{name: "replaced view", cluster: "c", in: "CREATE OR REPLACE VIEW d.v AS SELECT 1",
			want: []string{"CREATE OR REPLACE VIEW d.v ON CLUSTER c AS SELECT 1"}},
		{name: "materialized view", cluster: "c", in: "CREATE MATERIALIZED VIEW d.mv TO d.t AS SELECT 1", err: "no rule"},
		{name: "alter of a sharded table: columns on both, the sorting key on the shards", cluster: "c",
			in: "ALTER TABLE d.state_messages ADD COLUMN IF NOT EXISTS message_hash FixedString(16) COMMENT 'with (client, serial), the key', MODIFY ORDER BY (client, serial, message_hash)",
			want: []string{
				"ALTER TABLE d.state_messages_local ON CLUSTER c ADD COLUMN IF NOT EXISTS message_hash FixedString(16) COMMENT 'with (client, serial), the key', MODIFY ORDER BY (client, serial, message_hash)",
				"ALTER TABLE d.state_messages ON CLUSTER c ADD COLUMN IF NOT EXISTS message_hash FixedString(16) COMMENT 'with (client, serial), the key'",
			}},
		{name: "alter of a sharded table's sorting key alone", cluster: "c",
			in:   "ALTER TABLE d.full_reports MODIFY ORDER BY (client, topic_type, serial)",
			want: []string{"ALTER TABLE d.full_reports_local ON CLUSTER c MODIFY ORDER BY (client, topic_type, serial)"}},
		{name: "alter of a sharded table's sorting key without client", cluster: "c",
			in: "ALTER TABLE d.full_reports ADD COLUMN x UInt8, MODIFY ORDER BY (topic_type, x)", err: "must contain client"},
		{name: "alter of a table on every node: replication carries it", cluster: "c",
			in:   "ALTER TABLE d.agg_states ADD COLUMN IF NOT EXISTS epoch UInt64, MODIFY ORDER BY (scope, epoch)",
			want: []string{"ALTER TABLE d.agg_states ADD COLUMN IF NOT EXISTS epoch UInt64, MODIFY ORDER BY (scope, epoch)"}},
		{name: "alter of a view", cluster: "c", in: "ALTER TABLE d.v MODIFY QUERY SELECT 2", err: "CREATE OR REPLACE VIEW"},
		{name: "alter naming a cluster", cluster: "c", in: "ALTER TABLE d.clients ON CLUSTER x ADD COLUMN y UInt8", err: "names a cluster already"},
		{name: "rename of a sharded table", cluster: "c", in: "RENAME TABLE d.state_messages TO d.state_messages_before_0014",
			want: []string{
				"DROP TABLE IF EXISTS d.state_messages ON CLUSTER c",
				"RENAME TABLE d.state_messages_local TO d.state_messages_before_0014_local ON CLUSTER c",
				"CREATE TABLE IF NOT EXISTS d.state_messages_before_0014 ON CLUSTER c AS d.state_messages_before_0014_local\n" +
					"ENGINE = Distributed(c, d, state_messages_before_0014_local, cityHash64(client))",
			}},
		{name: "rename of a table on every node", cluster: "c", in: "RENAME TABLE d.offsets TO d.offsets_old\n",
			want: []string{"RENAME TABLE d.offsets TO d.offsets_old ON CLUSTER c"}},
		{name: "rename out of the sharded tables", cluster: "c", in: "RENAME TABLE d.clients TO d.clients_old", err: "both be sharded"},
		{name: "drop of a sharded table", cluster: "c", in: "DROP TABLE IF EXISTS d.client_scans",
			want: []string{"DROP TABLE IF EXISTS d.client_scans ON CLUSTER c", "DROP TABLE IF EXISTS d.client_scans_local ON CLUSTER c SYNC"}},
		{name: "drop of a table on every node", cluster: "c", in: "drop table d.offsets",
			want: []string{"DROP TABLE d.offsets ON CLUSTER c SYNC"}},
		{name: "drop of a view", cluster: "c", in: "DROP VIEW IF EXISTS d.v_agg_states",
			want: []string{"DROP VIEW IF EXISTS d.v_agg_states ON CLUSTER c"}},
		{name: "drop of a database", cluster: "c", in: "DROP DATABASE IF EXISTS " + db,
			want: []string{"DROP DATABASE IF EXISTS " + db + " ON CLUSTER c SYNC"}},
		{name: "truncate of a sharded table", cluster: "c", in: "TRUNCATE TABLE d.raw_reports",
			want: []string{"TRUNCATE TABLE d.raw_reports_local ON CLUSTER c"}},
		{name: "truncate of a table on every node", cluster: "c", in: "TRUNCATE TABLE d.hier_cells",
			want: []string{"TRUNCATE TABLE d.hier_cells"}},
		{name: "backfill: once, through the Distributed table", cluster: "c",
			in:   "INSERT INTO d.client_scans SELECT client, max(serial), argMax(time, serial) FROM d.scan_history GROUP BY client",
			want: []string{"INSERT INTO d.client_scans SELECT client, max(serial), argMax(time, serial) FROM d.scan_history GROUP BY client"}},
		{name: "a statement without a rule", cluster: "c", in: "OPTIMIZE TABLE d.clients FINAL", err: "no rule"},
		{name: "cluster not an identifier", cluster: "my-cluster", in: "CREATE DATABASE d", err: "not a plain identifier"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := OnCluster(c.in, c.cluster)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("OnCluster: %q, %v; want an error containing %q", got, err, c.err)
				}
				if !strings.Contains(err.Error(), "for cluster "+c.cluster) {
					t.Errorf("error %q does not name the cluster", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("OnCluster: %v", err)
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("OnCluster(%q, %q):\n got %q\nwant %q", c.in, c.cluster, got, c.want)
			}
		})
	}
}

func TestTopLevelScanning(t *testing.T) {
	s := `a, f(b, c), 'd, ''e'' \' (', "g, h", ` + "`i, j`" + `, (k)`
	want := []string{"a", " f(b, c)", ` 'd, ''e'' \' ('`, ` "g, h"`, " `i, j`", " (k)"}
	if got := splitTopLevel(s); !slices.Equal(got, want) {
		t.Errorf("splitTopLevel:\n got %q\nwant %q", got, want)
	}
	if got := closingParen("(a, ')', (b)) c", 0); got != 12 {
		t.Errorf("closingParen = %d, want 12", got)
	}
	if got := closingParen("(a", 0); got != -1 {
		t.Errorf("closingParen of an open list = %d, want -1", got)
	}
	for key, want := range map[string]bool{"client": true, "(client, serial)": true, " ( serial , client ) ": true,
		"(serial, clientele)": false, "cityHash64(client)": false, "(f(client), serial)": false, "": false} {
		if got := keyHasClient(key); got != want {
			t.Errorf("keyHasClient(%q) = %v, want %v", key, got, want)
		}
	}
	if got := sortingKey("\nPARTITION BY toYYYYMM(t)\nORDER BY (client, serial)\nSETTINGS x = 1"); got != "(client, serial)\n" {
		t.Errorf("sortingKey = %q", got)
	}
}

// clusterStatements are the statements Migrate runs for every embedded migration on cluster,
// with the migration and its statement (placeholders replaced) they come from.
func clusterStatements(t *testing.T, db, cluster string) (out []struct{ migration, from, st string }) {
	t.Helper()
	ms, err := Migrations()
	if err != nil {
		t.Fatal(err)
	}
	r := strings.NewReplacer("{db}", db, "{site}", SiteOfDatabase(db))
	for _, m := range ms {
		for _, st := range m.Statements {
			st = r.Replace(st)
			sts, err := OnCluster(st, cluster)
			if err != nil {
				t.Errorf("%04d_%s: %v", m.Version, m.Name, err)
				continue
			}
			for _, s := range sts {
				out = append(out, struct{ migration, from, st string }{fmt.Sprintf("%04d_%s", m.Version, m.Name), st, s})
			}
		}
	}
	return out
}

// Every embedded migration has a rule on a cluster, and what it becomes names the cluster,
// but for what runs once (backfills) or replicates (the ALTERs of tables on every node).
// The DDL text is checked against ClickHouse's parser in internal/chdb.
func TestEveryMigrationOnCluster(t *testing.T) {
	const db, cluster = "statepipe_p01", "statepipe"
	for _, s := range clusterStatements(t, db, cluster) {
		a := alterStmt.FindStringSubmatch(s.st)
		once := insertStmt.MatchString(s.st) || (a != nil && !shardedTables[strings.TrimSuffix(a[2], localSuffix)])
		if named := strings.Contains(s.st, " ON CLUSTER "+cluster); named == once {
			t.Errorf("%s: %.70q names the cluster: %v, want %v", s.migration, s.st, named, !once)
		}
		if strings.Contains(s.st, "ENGINE = ") && !strings.Contains(s.st, "ENGINE = Replicated") && !strings.Contains(s.st, "ENGINE = Distributed(") {
			t.Errorf("%s: %.70q creates a table that is neither replicated nor distributed", s.migration, s.st)
		}
	}
}

var columnName = regexp.MustCompile(`^\s*([A-Za-z_][A-Za-z0-9_]*)\s`)

// The sharded tables are exactly the tables that have a client column, and no migration
// creates a replicated table under a name a RENAME moved away from: the renamed table keeps
// its Keeper path, which names the table it was created as.
func TestShardedTablesAreTheClientTables(t *testing.T) {
	ms, err := Migrations()
	if err != nil {
		t.Fatal(err)
	}
	renamedFrom := map[string]string{}
	for _, m := range ms {
		for _, st := range m.Statements {
			st = strings.ReplaceAll(st, "{db}", "d")
			if r := renameStmt.FindStringSubmatch(st); r != nil {
				renamedFrom[r[2]] = fmt.Sprintf("%04d_%s", m.Version, m.Name)
			}
			c := createTableStmt.FindStringSubmatchIndex(st)
			if c == nil {
				continue
			}
			table, rest := st[c[6]:c[7]], st[c[1]:]
			if by, ok := renamedFrom[table]; ok {
				t.Errorf("%04d_%s creates %s, which %s renamed: on a cluster its Keeper path is taken (pick a new name)", m.Version, m.Name, table, by)
			}
			hasClient := false
			if end := closingParen(rest, 0); strings.HasPrefix(rest, "(") && end > 0 {
				for _, col := range splitTopLevel(rest[1:end]) {
					if n := columnName.FindStringSubmatch(col); n != nil && n[1] == "client" {
						hasClient = true
					}
				}
			}
			if hasClient != shardedTables[table] {
				t.Errorf("%04d_%s: table %s has a client column: %v, but is in shardedTables: %v (schema/cluster.go)", m.Version, m.Name, table, hasClient, shardedTables[table])
			}
		}
	}
}

// clusterStore is an Execer on a cluster that records what runs: schema_migrations answers
// the versions recorded, system.tables the engine of schema_migrations (once created),
// EXISTS TABLE whether a table was created or renamed to.
type clusterStore struct {
	cluster  string
	engine   string // of schema_migrations before Migrate; "" when absent
	exists   map[string]bool
	versions []int64
	execs    []string
}

func (s *clusterStore) Cluster() string { return s.cluster }

func (s *clusterStore) Exec(_ context.Context, q string) error {
	s.execs = append(s.execs, q)
	if m := createTableStmt.FindStringSubmatch(q); m != nil {
		s.exists[m[2]+"."+m[3]] = true
		if m[3] == "schema_migrations" && s.engine == "" {
			s.engine = strings.Fields(q[strings.Index(q, "ENGINE = ")+len("ENGINE = "):])[0]
		}
	}
	if m := renameStmt.FindStringSubmatch(strings.TrimSuffix(q, " ON CLUSTER "+s.cluster)); m != nil {
		s.exists[m[3]+"."+m[4]] = true
	}
	if _, values, ok := strings.Cut(q, ".schema_migrations (version, name) VALUES ("); ok {
		var v int64
		if _, err := fmt.Sscanf(values, "%d", &v); err != nil {
			return err
		}
		s.versions = append(s.versions, v)
	}
	return nil
}

func (s *clusterStore) Query(_ context.Context, q string) (*Result, error) {
	switch {
	case strings.Contains(q, "FROM system.tables"):
		if s.engine == "" {
			return &Result{}, nil
		}
		return &Result{Rows: [][]any{{s.engine}}}, nil
	case strings.HasPrefix(q, "EXISTS TABLE "):
		exists := int64(0)
		if s.exists[strings.TrimPrefix(q, "EXISTS TABLE ")] {
			exists = 1
		}
		return &Result{Rows: [][]any{{exists}}}, nil
	case strings.Contains(q, "schema_migrations"):
		res := &Result{}
		for _, v := range s.versions {
			res.Rows = append(res.Rows, []any{v})
		}
		return res, nil
	}
	return nil, fmt.Errorf("unexpected query %q", q)
}

// Migrate on a store on a cluster runs OnCluster's statements, schema_migrations' own
// included, and refuses a database made in the other layout.
func TestMigrateOnCluster(t *testing.T) {
	ctx := context.Background()
	const db = "statepipe_p01"
	st := &clusterStore{cluster: "main", exists: map[string]bool{}}
	applied, err := Migrate(ctx, st, db)
	if err != nil {
		t.Fatal(err)
	}
	ms, err := Migrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(applied) != len(ms) {
		t.Fatalf("applied %v, want all %d migrations", applied, len(ms))
	}
	if want := "CREATE DATABASE IF NOT EXISTS " + db + " ON CLUSTER main"; st.execs[0] != want {
		t.Errorf("first statement %q, want %q", st.execs[0], want)
	}
	if !strings.HasPrefix(st.execs[1], "CREATE TABLE IF NOT EXISTS "+db+".schema_migrations ON CLUSTER main") ||
		!strings.Contains(st.execs[1], "ReplicatedReplacingMergeTree('/clickhouse/tables/all/{database}/{table}', '{shard}-{replica}')") {
		t.Errorf("schema_migrations is not replicated to every node: %q", st.execs[1])
	}
	want := 2
	for _, s := range clusterStatements(t, db, "main") {
		if !slices.Contains(st.execs, s.st) {
			t.Errorf("%s: %.70q not run", s.migration, s.st)
		}
		want++
	}
	if want += len(ms); len(st.execs) != want {
		t.Errorf("%d statements run, want %d (the cluster's, and a record per migration)", len(st.execs), want)
	}

	// Once applied, nothing runs again.
	st.execs = nil
	if applied, err := Migrate(ctx, st, db); err != nil || len(applied) != 0 {
		t.Fatalf("second Migrate: applied %v, %v; want nothing", applied, err)
	}
	for _, s := range st.execs {
		if strings.HasPrefix(s, "RENAME") {
			t.Errorf("second Migrate renamed again: %q", s)
		}
	}

	// The other layout is refused, naming the flag.
	single := &clusterStore{engine: "ReplacingMergeTree", exists: map[string]bool{}, cluster: "main"}
	if _, err := Migrate(ctx, single, db); err == nil || !strings.Contains(err.Error(), "created on a single server") || len(single.execs) != 0 {
		t.Errorf("Migrate on a cluster of a single server's database: %v after %d statements, want a refusal before any", err, len(single.execs))
	}
	clustered := &clusterStore{engine: "ReplicatedReplacingMergeTree", exists: map[string]bool{}}
	if _, err := Migrate(ctx, clustered, db); err == nil || !strings.Contains(err.Error(), "set --clickhouse.cluster") || len(clustered.execs) != 0 {
		t.Errorf("Migrate without a cluster of a cluster's database: %v after %d statements, want a refusal before any", err, len(clustered.execs))
	}

	var renamed *Migration // the last migration with a RENAME, and what it renamed to
	var renamedTo string
	for i, m := range ms {
		for _, s := range m.Statements {
			if r := renameStmt.FindStringSubmatch(strings.ReplaceAll(s, "{db}", db)); r != nil {
				renamed, renamedTo = &ms[i], r[3]+"."+r[4]
			}
		}
	}
	if renamed == nil {
		return
	}
	// Interrupted after the rename: it runs again, and nothing of the rename does (its
	// DROP of the old name would drop what the migration put there since).
	rerun := func(what string) {
		t.Helper()
		st.versions = slices.DeleteFunc(st.versions, func(v int64) bool { return v == int64(renamed.Version) })
		st.execs = nil
		if _, err := Migrate(ctx, st, db); err != nil {
			t.Fatalf("Migrate after %04d_%s was interrupted %s: %v", renamed.Version, renamed.Name, what, err)
		}
	}
	rerun("after its rename")
	for _, s := range st.execs {
		if strings.HasPrefix(s, "RENAME") || strings.HasPrefix(s, "DROP") {
			t.Errorf("Migrate ran %q again", s)
		}
	}
	// Interrupted between the shards' RENAME and the Distributed table's creation: the
	// RENAME is skipped, the rest runs.
	delete(st.exists, renamedTo)
	rerun("inside its rename")
	var kinds []string
	for _, s := range st.execs {
		if strings.HasPrefix(s, "RENAME") || strings.HasPrefix(s, "DROP") || strings.HasPrefix(s, "CREATE TABLE IF NOT EXISTS "+renamedTo+" ") {
			kinds = append(kinds, strings.Fields(s)[0])
		}
	}
	if !slices.Equal(kinds, []string{"DROP", "CREATE"}) {
		t.Errorf("Migrate interrupted inside a rename ran %v of it again, want [DROP CREATE]", kinds)
	}
}
