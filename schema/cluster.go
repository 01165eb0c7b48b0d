package schema

import (
	"context"
	"fmt"
	"regexp"
	"strings"
)

// Cluster DDL. On a ClickHouse cluster (the server adapter's --clickhouse.cluster) Migrate
// passes every migration statement through OnCluster, which rewrites it for this layout:
//
//   - The tables keyed by client (shardedTables) are sharded by client. Each shard holds
//     <table>_local, a Replicated* table replicated within the shard
//     ('/clickhouse/tables/{shard}/{database}/{table}', '{replica}'), and every node has
//     <table>, a Distributed table over them with sharding key cityHash64(client). The
//     Distributed table keeps the table's own name, so the views, the projector's inserts, the
//     reports and analysts read and write it unchanged. All of a client's rows land on one
//     shard, and the sorting key of every sharded table contains client (OnCluster refuses
//     one that does not): every version of a row is on one shard, where FINAL collapses it,
//     so FINAL through the Distributed table — applied on each shard — is exact.
//   - Every other table (aggregates, offsets and fences, reference data, hierarchy,
//     schema_migrations) is small — rows per partition, catalog entry or cell, not per
//     client — and read whole, joined with the sharded ones: it is replicated to every node
//     of the cluster, one replica set across all shards
//     ('/clickhouse/tables/all/{database}/{table}', replica '{shard}-{replica}', unique
//     across the cluster as long as {replica} is unique within its shard), and read locally. Its ALTERs, mutations and TRUNCATEs run without ON CLUSTER: replication
//     carries them to every replica, and ON CLUSTER would run them once per shard on the
//     same replicated table, concurrently.
//   - Views are created on every node, reading the tables by their names.
//
// Queries that join two sharded tables (v_live_state does) need distributed_product_mode =
// 'local' so that each shard joins its own rows; they join on client, so that is exact. The
// server adapter sets it on its connections; analysts' own ClickHouse users need it in their
// profile.

// shardedTables are the tables keyed by client: sharded by it on a cluster. A table created
// with a client column belongs here (TestShardedTablesAreTheClientTables), and so does the
// name a RENAME gives one.
var shardedTables = map[string]bool{
	"state_messages":             true,
	"state_messages_before_0014": true,
	"raw_reports":                true,
	"current_state":              true,
	"full_reports":               true,
	"clients":                    true,
	"scan_history":               true,
	"client_scans":               true,
}

const (
	shardPath    = "/clickhouse/tables/{shard}/{database}/{table}"
	shardReplica = "{replica}"
	everyPath    = "/clickhouse/tables/all/{database}/{table}"
	everyReplica = "{shard}-{replica}"
	localSuffix  = "_local"
	shardingKey  = "cityHash64(client)"
)

// ValidClusterName reports whether name can be the cluster of --clickhouse.cluster: a plain
// ClickHouse identifier, written into DDL unquoted.
func ValidClusterName(name string) bool { return databaseName.MatchString(name) }

const qualifiedName = `([A-Za-z_][A-Za-z0-9_]*)\.([A-Za-z_][A-Za-z0-9_]*)`

var (
	createDatabaseStmt = regexp.MustCompile(`(?is)^\s*CREATE\s+DATABASE\s+(?:IF\s+NOT\s+EXISTS\s+)?[A-Za-z_][A-Za-z0-9_]*\b`)
	createTableStmt    = regexp.MustCompile(`(?is)^\s*CREATE\s+TABLE\s+(IF\s+NOT\s+EXISTS\s+)?` + qualifiedName + `\s*`)
	createViewStmt     = regexp.MustCompile(`(?is)^\s*CREATE\s+(?:OR\s+REPLACE\s+)?VIEW\s+(?:IF\s+NOT\s+EXISTS\s+)?` + qualifiedName + `\s+AS\s`)
	alterStmt          = regexp.MustCompile(`(?is)^\s*ALTER\s+TABLE\s+` + qualifiedName + `\s+(.*)$`)
	renameStmt         = regexp.MustCompile(`(?is)^\s*RENAME\s+TABLE\s+` + qualifiedName + `\s+TO\s+` + qualifiedName + `\s*$`)
	dropStmt           = regexp.MustCompile(`(?is)^\s*DROP\s+(TABLE|VIEW|DICTIONARY)\s+(IF\s+EXISTS\s+)?` + qualifiedName + `(\s+SYNC)?\s*$`)
	dropDatabaseStmt   = regexp.MustCompile(`(?is)^\s*DROP\s+DATABASE\s+(?:IF\s+EXISTS\s+)?[A-Za-z_][A-Za-z0-9_]*\b`)
	truncateStmt       = regexp.MustCompile(`(?is)^\s*TRUNCATE\s+(?:TABLE\s+)?(?:IF\s+EXISTS\s+)?` + qualifiedName + `\s*$`)
	insertStmt         = regexp.MustCompile(`(?is)^\s*INSERT\s+INTO\s`)

	onCluster    = regexp.MustCompile(`(?is)^\s*ON\s+CLUSTER\b`)
	engineClause = regexp.MustCompile(`(?is)^\s*ENGINE\s*=\s*([A-Za-z_][A-Za-z0-9_]*)`)
	orderBy      = regexp.MustCompile(`(?is)\bORDER\s+BY\s`)
	afterOrderBy = regexp.MustCompile(`(?is)\b(?:PRIMARY\s+KEY|SAMPLE\s+BY|TTL|SETTINGS|COMMENT)\b`)
	modifyOrder  = regexp.MustCompile(`(?is)^\s*MODIFY\s+ORDER\s+BY\s+(.*)$`)
	columnClause = regexp.MustCompile(`(?is)^\s*(?:ADD|DROP|MODIFY|RENAME|COMMENT)\s+COLUMN\s`)
	modifyQuery  = regexp.MustCompile(`(?is)^\s*MODIFY\s+QUERY\s`)
)

// OnCluster rewrites one DDL statement of a migration (names qualified with the database,
// placeholders replaced) into the statements that make the same change on cluster, in the
// order they must run, for the layout the comment at the top of this file describes. With
// cluster "" it returns the statement as it is. It is a pure function of its arguments, and
// refuses — rather than guesses at — a statement it has no rule for:
//
//	CREATE DATABASE d                 CREATE DATABASE d ON CLUSTER c
//	CREATE TABLE d.t (…) ENGINE = E   sharded t: d.t_local ON CLUSTER c with ReplicatedE('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', E's arguments),
//	                                  then d.t ON CLUSTER c AS d.t_local ENGINE = Distributed(c, d, t_local, cityHash64(client));
//	                                  other t: ON CLUSTER c with ReplicatedE('/clickhouse/tables/all/{database}/{table}', '{shard}-{replica}', …)
//	CREATE [OR REPLACE] VIEW d.v      … ON CLUSTER c
//	ALTER TABLE d.t …                 sharded t: d.t_local ON CLUSTER c, then its column changes on d.t ON CLUSTER c;
//	                                  other t: unchanged (replicated)
//	RENAME TABLE d.a TO d.b           sharded: DROP the Distributed d.a, RENAME the _local tables ON CLUSTER c, a Distributed d.b;
//	                                  other: … ON CLUSTER c
//	DROP TABLE|VIEW|DICTIONARY|DATABASE  … ON CLUSTER c (tables SYNC: a dropped replicated table frees its Keeper path now);
//	                                  sharded: the Distributed table, then the _local one
//	TRUNCATE TABLE d.t                sharded: d.t_local ON CLUSTER c; other: unchanged (replicated)
//	INSERT INTO …                     unchanged: run once, the Distributed table or replication spreads the rows
func OnCluster(statement, cluster string) ([]string, error) {
	if cluster == "" {
		return []string{statement}, nil
	}
	fail := func(why string, args ...any) ([]string, error) {
		return nil, fmt.Errorf("cannot write %q for cluster %s: %s", shorten(statement), cluster, fmt.Sprintf(why, args...))
	}
	if !ValidClusterName(cluster) {
		return fail("the cluster is not a plain identifier")
	}
	on := " ON CLUSTER " + cluster
	if m := createDatabaseStmt.FindStringIndex(statement); m != nil {
		if onCluster.MatchString(statement[m[1]:]) {
			return fail("it names a cluster already")
		}
		return []string{statement[:m[1]] + on + statement[m[1]:]}, nil
	}
	if m := createTableStmt.FindStringSubmatchIndex(statement); m != nil {
		sts, err := createTableOnCluster(statement, m, cluster)
		if err != nil {
			return fail("%s", err)
		}
		return sts, nil
	}
	if m := createViewStmt.FindStringSubmatchIndex(statement); m != nil {
		return []string{statement[:m[5]] + on + statement[m[5]:]}, nil
	}
	if m := alterStmt.FindStringSubmatchIndex(statement); m != nil {
		db, table, clauses := statement[m[2]:m[3]], statement[m[4]:m[5]], statement[m[6]:m[7]]
		if onCluster.MatchString(clauses) {
			return fail("it names a cluster already")
		}
		var columns []string
		for _, c := range splitTopLevel(clauses) {
			switch {
			case modifyQuery.MatchString(c):
				return fail("a view is replaced with CREATE OR REPLACE VIEW, not altered")
			case columnClause.MatchString(c):
				columns = append(columns, strings.TrimSpace(c))
			case shardedTables[table]:
				if o := modifyOrder.FindStringSubmatch(c); o != nil && !keyHasClient(o[1]) {
					return fail("the sorting key of %s must contain client: it is sharded by client, and FINAL collapses rows within a shard only", table)
				}
			}
		}
		if !shardedTables[table] {
			return []string{statement}, nil
		}
		sts := []string{"ALTER TABLE " + db + "." + table + localSuffix + on + " " + clauses}
		if len(columns) > 0 {
			sts = append(sts, "ALTER TABLE "+db+"."+table+on+" "+strings.Join(columns, ", "))
		}
		return sts, nil
	}
	if m := renameStmt.FindStringSubmatch(statement); m != nil {
		db, from, toDB, to := m[1], m[2], m[3], m[4]
		switch {
		case shardedTables[from] != shardedTables[to]:
			return fail("%s and %s must both be sharded by client or both not", from, to)
		case !shardedTables[from]:
			return []string{strings.TrimSpace(statement) + on}, nil
		case db != toDB:
			return fail("a sharded table stays in its database")
		}
		// Migrate skips all three once d.to exists (renamedBefore), and the RENAME once
		// d.to_local does: a migration interrupted between them runs again.
		return []string{
			"DROP TABLE IF EXISTS " + db + "." + from + on,
			"RENAME TABLE " + db + "." + from + localSuffix + " TO " + db + "." + to + localSuffix + on,
			distributedTable(db, to, "IF NOT EXISTS ", cluster),
		}, nil
	}
	if m := dropStmt.FindStringSubmatch(statement); m != nil {
		kind, ifExists, db, name := strings.ToUpper(m[1]), "", m[3], m[4]
		if m[2] != "" {
			ifExists = "IF EXISTS "
		}
		sync := ""
		if kind == "TABLE" || m[5] != "" {
			sync = " SYNC"
		}
		if kind == "TABLE" && shardedTables[name] {
			return []string{
				"DROP TABLE " + ifExists + db + "." + name + on,
				"DROP TABLE " + ifExists + db + "." + name + localSuffix + on + sync,
			}, nil
		}
		return []string{"DROP " + kind + " " + ifExists + db + "." + name + on + sync}, nil
	}
	if m := dropDatabaseStmt.FindStringIndex(statement); m != nil {
		rest := strings.TrimSpace(statement[m[1]:])
		if rest != "" && !strings.EqualFold(rest, "SYNC") {
			return fail("DROP DATABASE takes nothing after the name but SYNC here")
		}
		return []string{statement[:m[1]] + on + " SYNC"}, nil
	}
	if m := truncateStmt.FindStringSubmatchIndex(statement); m != nil {
		if !shardedTables[statement[m[4]:m[5]]] {
			return []string{statement}, nil
		}
		return []string{statement[:m[4]] + statement[m[4]:m[5]] + localSuffix + on}, nil
	}
	if insertStmt.MatchString(statement) {
		return []string{statement}, nil
	}
	return fail("no rule for this kind of statement (CREATE DATABASE|TABLE|VIEW, ALTER TABLE, RENAME TABLE, DROP, TRUNCATE, INSERT)")
}

// createTableOnCluster rewrites CREATE TABLE (m: createTableStmt's submatches) for cluster.
func createTableOnCluster(st string, m []int, cluster string) ([]string, error) {
	ifNotExists := ""
	if m[2] >= 0 {
		ifNotExists = "IF NOT EXISTS "
	}
	db, table, rest := st[m[4]:m[5]], st[m[6]:m[7]], st[m[1]:]
	if onCluster.MatchString(rest) {
		return nil, fmt.Errorf("it names a cluster already")
	}
	if !strings.HasPrefix(rest, "(") {
		return nil, fmt.Errorf("a table is created with its columns here (not AS another table or a SELECT)")
	}
	end := closingParen(rest, 0)
	if end < 0 {
		return nil, fmt.Errorf("its column list is not closed")
	}
	columns, after := rest[:end+1], rest[end+1:]
	e := engineClause.FindStringSubmatchIndex(after)
	if e == nil {
		return nil, fmt.Errorf("an ENGINE clause must follow the columns")
	}
	engine, args, tail := after[e[2]:e[3]], "", after[e[1]:]
	if t := strings.TrimLeft(tail, " \t\r\n"); strings.HasPrefix(t, "(") {
		close := closingParen(t, 0)
		if close < 0 {
			return nil, fmt.Errorf("the arguments of %s are not closed", engine)
		}
		args, tail = strings.TrimSpace(t[1:close]), t[close+1:]
	}
	if !strings.HasSuffix(engine, "MergeTree") || strings.HasPrefix(engine, "Replicated") {
		return nil, fmt.Errorf("engine %s: only the MergeTree family, not replicated yet, can be made Replicated", engine)
	}
	path, replica, name := everyPath, everyReplica, table
	if shardedTables[table] {
		if !keyHasClient(sortingKey(tail)) {
			return nil, fmt.Errorf("the sorting key of %s must contain client: it is sharded by client, and FINAL collapses rows within a shard only", table)
		}
		path, replica, name = shardPath, shardReplica, table+localSuffix
	}
	engineArgs := QuoteSQL(path) + ", " + QuoteSQL(replica)
	if args != "" {
		engineArgs += ", " + args
	}
	sts := []string{"CREATE TABLE " + ifNotExists + db + "." + name + " ON CLUSTER " + cluster + "\n" + columns +
		"\nENGINE = Replicated" + engine + "(" + engineArgs + ")" + tail}
	if shardedTables[table] {
		sts = append(sts, distributedTable(db, table, ifNotExists, cluster))
	}
	return sts, nil
}

// distributedTable is the statement that creates db.table, the Distributed table over the
// shards' db.table_local.
func distributedTable(db, table, ifNotExists, cluster string) string {
	local := table + localSuffix
	return "CREATE TABLE " + ifNotExists + db + "." + table + " ON CLUSTER " + cluster + " AS " + db + "." + local +
		"\nENGINE = Distributed(" + cluster + ", " + db + ", " + local + ", " + shardingKey + ")"
}

// sortingKey returns the ORDER BY expression of a CREATE TABLE's clauses after the engine.
func sortingKey(clauses string) string {
	m := findTopLevel(clauses, orderBy)
	if m == nil {
		return ""
	}
	key := clauses[m[1]:]
	if e := findTopLevel(key, afterOrderBy); e != nil {
		key = key[:e[0]]
	}
	return key
}

// keyHasClient reports whether the sorting key expression key — one expression or a tuple —
// has the column client as an element.
func keyHasClient(key string) bool {
	key = strings.TrimSpace(key)
	if strings.HasPrefix(key, "(") && closingParen(key, 0) == len(key)-1 {
		key = key[1 : len(key)-1]
	}
	for _, e := range splitTopLevel(key) {
		if strings.TrimSpace(e) == "client" {
			return true
		}
	}
	return false
}

// depths returns, for each byte of s, its parenthesis depth (a parenthesis counts as outside
// the pair it makes), or -1 inside a quoted string or identifier ('…', "…", `…`, with
// backslash and doubled-quote escapes).
func depths(s string) []int {
	d := make([]int, len(s))
	depth := 0
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		if quote != 0 {
			d[i] = -1
			switch {
			case c == '\\' && i+1 < len(s):
				i++
				d[i] = -1
			case c == quote && i+1 < len(s) && s[i+1] == quote:
				i++
				d[i] = -1
			case c == quote:
				quote = 0
			}
			continue
		}
		switch c {
		case '\'', '"', '`':
			quote, d[i] = c, -1
			continue
		case '(':
			d[i] = depth
			depth++
			continue
		case ')':
			depth--
		}
		d[i] = depth
	}
	return d
}

// closingParen returns the index of the parenthesis that closes the one at open, or -1.
func closingParen(s string, open int) int {
	d := depths(s)
	for i := open + 1; i < len(s); i++ {
		if s[i] == ')' && d[i] == d[open] {
			return i
		}
	}
	return -1
}

// splitTopLevel splits s at the commas outside parentheses and quotes.
func splitTopLevel(s string) []string {
	var parts []string
	d, start := depths(s), 0
	for i := 0; i < len(s); i++ {
		if s[i] == ',' && d[i] == 0 {
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}

// findTopLevel returns the first match of re in s that starts outside parentheses and
// quotes, as FindStringIndex does, or nil.
func findTopLevel(s string, re *regexp.Regexp) []int {
	d := depths(s)
	for _, m := range re.FindAllStringIndex(s, -1) {
		if d[m[0]] == 0 {
			return m
		}
	}
	return nil
}

// shorten is the start of a statement on one line, for errors.
func shorten(st string) string {
	st = strings.Join(strings.Fields(st), " ")
	if len(st) > 80 {
		return st[:80] + "…"
	}
	return st
}

// Clustered is what Migrate asks of a store on a ClickHouse cluster: the cluster's name in
// the servers' remote_servers, which its DDL runs ON. A store without the method, or one
// that answers "", is a single server (or the embedded engine).
type Clustered interface {
	Cluster() string
}

// clusterOf returns the cluster ex is on, "" for a single server.
func clusterOf(ex Execer) string {
	if c, ok := ex.(Clustered); ok {
		return c.Cluster()
	}
	return ""
}

// checkLayout refuses to migrate a database created in the other layout (its
// schema_migrations is Replicated exactly when it was created on a cluster): cluster DDL
// would alter _local tables a single server does not have, and single-server DDL would add
// unreplicated tables to one node of a cluster. A database that does not exist yet passes.
func checkLayout(ctx context.Context, ex Execer, db, cluster string) error {
	res, err := ex.Query(ctx, "SELECT engine FROM system.tables WHERE database = "+QuoteSQL(db)+" AND name = 'schema_migrations'")
	if err != nil {
		return fmt.Errorf("cannot read the engine of %s.schema_migrations: %w", db, err)
	}
	if len(res.Rows) == 0 {
		return nil
	}
	var engine string
	if err := res.Scan(0, &engine); err != nil {
		return fmt.Errorf("cannot read the engine of %s.schema_migrations: %w", db, err)
	}
	replicated := strings.HasPrefix(engine, "Replicated")
	switch {
	case cluster != "" && !replicated:
		return fmt.Errorf("cannot migrate %s on cluster %s: it was created on a single server (%s.schema_migrations is %s), and --clickhouse.cluster does not convert a database", db, cluster, db, engine)
	case cluster == "" && replicated:
		return fmt.Errorf("cannot migrate %s: it was created on a cluster (%s.schema_migrations is %s): set --clickhouse.cluster", db, db, engine)
	}
	return nil
}
