package storetest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/statepipe/statepipe/schema"
)

// The analyst SQL contract (QueryReadOnly): what runs, what is refused and why, the site's
// database as its only scope, the limits (the answer's counted as it arrives), and that an
// analyst query holds up neither folding nor reports and stops when asked.

// longSQL runs for minutes on one thread unless stopped: the query that once froze a site
// for 12 minutes (a limit on rows read stops it at once, so the stores that run it have none).
const longSQL = "SELECT count() FROM numbers(30000000000) WHERE sipHash64(number) = 0"

// runningSQL counts the analyst queries the engine is running.
const runningSQL = "SELECT count() FROM system.processes WHERE query LIKE '/* statepipe-sql %' OR query_id LIKE 'statepipe-sql-%'"

type sqlCase struct {
	q   string
	why string // "" runs; refused with a reason holding why, or any reason for anyReason
}

// anyReason marks a statement refused by the parser or the engine in words of their own.
const anyReason = "*"

// testSQLStatements runs every kind of statement ClickHouse's parser knows through
// QueryReadOnly: SELECT in its forms runs; everything else, output to files, SETTINGS, table
// functions that reach out and functions that read files are refused as a *schema.FieldError
// naming query — and no file is written, no table touched.
func testSQLStatements(t *testing.T, st schema.Store, ro ReadOnlyQuerier, db string) {
	ctx := context.Background()
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("site key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	before := query(t, st, "SELECT count() FROM "+db+".current_state")
	tbl := db + ".current_state"
	const (
		notAllowed = "is not allowed"
		outfile    = "INTO OUTFILE"
		settings   = "SETTINGS"
		tableFn    = "table function"
		fn         = "function"
		syntax     = "Syntax error"
	)
	cases := []sqlCase{
		// SELECT in its forms.
		{"SELECT 1", ""},
		{"SELECT 1;", ""},
		{"  select 1  \n", ""},
		{"SELECT 1 -- a comment; DROP TABLE " + tbl, ""},
		{"/* leading */ SELECT 1 /* ; DROP TABLE " + tbl + " */", ""},
		{"WITH 2 AS two SELECT two", ""},
		{"WITH t AS (SELECT 1 AS x) SELECT x FROM t", ""},
		{"SELECT 1 UNION ALL SELECT 2", ""},
		{"SELECT 1 UNION DISTINCT SELECT 1", ""},
		{"SELECT 1 INTERSECT SELECT 1", ""},
		{"SELECT 1 EXCEPT SELECT 2", ""},
		{"(SELECT 1) UNION ALL (SELECT 2)", ""},
		{"SELECT count() FROM " + tbl + " FINAL", ""},
		{"SELECT x.number FROM numbers(3) AS x JOIN numbers(3) AS y ON x.number = y.number", ""},
		{"SELECT number FROM numbers(10) WHERE number IN (SELECT number FROM numbers(5))", ""},
		{"SELECT count() OVER () FROM numbers(2)", ""},
		{"SELECT 'INTO OUTFILE', 'SETTINGS readonly = 0', 'x; DROP TABLE y', format('{}-{}', 1, 2)", ""},
		{"SELECT 1 AS `file`", ""},
		{"SELECT name FROM system.tables WHERE database = '" + db + "' ORDER BY name", ""},
		{"SELECT name, type FROM system.columns WHERE database = '" + db + "' AND table = 'current_state'", ""},
		{"SELECT * FROM numbers(3)", ""},
		{"SELECT * FROM numbers_mt(3)", ""},
		{"SELECT * FROM generateSeries(1, 3)", ""},
		{"SELECT * FROM generate_series(1, 3)", ""},
		{"SELECT * FROM values('a UInt8', 1, 2)", ""},
		{"SELECT * FROM view(SELECT 1)", ""},
		{"SELECT * FROM null('a UInt8')", ""},
		{"SELECT * FROM generateRandom('a UInt8', 1) LIMIT 2", ""},

		// Every other statement.
		{"", "empty"},
		{" ; ", anyReason},
		{"INSERT INTO " + tbl + " (client) VALUES ('ro')", notAllowed},
		{"INSERT INTO " + tbl + " (client) SELECT 'ro'", notAllowed},
		{"INSERT INTO FUNCTION file('" + out + "', 'CSV') SELECT 1", notAllowed},
		{"CREATE TABLE " + db + ".ro (a UInt8) ENGINE = Memory", notAllowed},
		{"CREATE DATABASE ro_db", notAllowed},
		{"CREATE VIEW " + db + ".ro AS SELECT 1", notAllowed},
		{"CREATE FUNCTION ro_fn AS x -> x", notAllowed},
		{"CREATE USER ro_user", notAllowed},
		{"ALTER TABLE " + tbl + " DELETE WHERE 1", notAllowed},
		{"ALTER TABLE " + tbl + " ADD COLUMN z UInt8", notAllowed},
		{"DROP TABLE " + tbl, notAllowed},
		{"DROP DATABASE " + db, notAllowed},
		{"TRUNCATE TABLE " + tbl, notAllowed},
		{"RENAME TABLE " + tbl + " TO " + db + ".gone", notAllowed},
		{"EXCHANGE TABLES " + tbl + " AND " + db + ".state_messages", notAllowed},
		{"OPTIMIZE TABLE " + tbl + " FINAL", notAllowed},
		{"SYSTEM FLUSH LOGS", notAllowed},
		{"SYSTEM SHUTDOWN", notAllowed},
		{"KILL QUERY WHERE 1", notAllowed},
		{"SET readonly = 0", notAllowed},
		{"SET max_threads = 64", notAllowed},
		{"USE system", notAllowed},
		{"SHOW DATABASES", notAllowed},
		{"SHOW TABLES", notAllowed},
		{"SHOW TABLES FROM " + db, notAllowed},
		{"SHOW CREATE TABLE " + tbl, notAllowed},
		{"SHOW COLUMNS FROM " + tbl, notAllowed},
		{"SHOW INDEX FROM " + tbl, notAllowed},
		{"SHOW PROCESSLIST", notAllowed},
		{"SHOW GRANTS", notAllowed},
		{"SHOW USERS", notAllowed},
		{"SHOW ROLES", notAllowed},
		{"SHOW PRIVILEGES", notAllowed},
		{"SHOW CREATE USER default", notAllowed},
		{"SHOW SETTINGS LIKE 'max%'", notAllowed},
		{"SHOW CHANGED SETTINGS LIKE '%'", notAllowed},
		{"SHOW FUNCTIONS", notAllowed},
		{"SHOW DICTIONARIES", notAllowed},
		{"SHOW ENGINES", notAllowed},
		{"SHOW CLUSTERS", notAllowed},
		{"SHOW ACCESS", notAllowed},
		{"DESCRIBE TABLE " + tbl, notAllowed},
		{"DESC " + tbl, notAllowed},
		{"DESCRIBE file('" + secret + "', 'LineAsString')", notAllowed},
		{"DESCRIBE (SELECT 1)", notAllowed},
		{"EXISTS TABLE " + tbl, notAllowed},
		{"EXISTS " + tbl, notAllowed},
		{"EXISTS DATABASE " + db, notAllowed},
		{"CHECK TABLE " + tbl, notAllowed},
		{"EXPLAIN SELECT 1", notAllowed},
		{"EXPLAIN AST SELECT 1", notAllowed},
		{"EXPLAIN PIPELINE SELECT 1", notAllowed},
		{"GRANT SELECT ON *.* TO default", notAllowed},
		{"REVOKE SELECT ON *.* FROM default", notAllowed},
		{"ATTACH TABLE " + db + ".gone", notAllowed},
		{"DETACH TABLE " + tbl, notAllowed},
		{"BACKUP TABLE " + tbl + " TO File('b.zip')", notAllowed},
		{"RESTORE TABLE " + tbl + " FROM File('b.zip')", notAllowed},
		{"UNDROP TABLE " + db + ".gone", notAllowed},
		{"DELETE FROM " + tbl + " WHERE 1", notAllowed},
		{"UPDATE " + tbl + " SET state = 0 WHERE 1", notAllowed},
		{"WATCH " + db + ".v", anyReason},
		{"MOVE USER ro_user TO local_directory", anyReason},
		{"BEGIN TRANSACTION", notAllowed},
		{"COMMIT", notAllowed},
		{"ROLLBACK", notAllowed},

		// One statement, whole.
		{"SELECT 1; SELECT 2", "Multi-statements"},
		{"SELECT 1; DROP TABLE " + tbl, "Multi-statements"},
		{"SELECT 1 -- comment\n; DROP TABLE " + tbl, "Multi-statements"},
		{"SELECT 1) UNION ALL (SELECT 2", syntax},
		{"SELECT 1)) SETTINGS readonly = 0 ((SELECT 1", syntax},
		{"SELECT 1 /* unclosed", anyReason},
		{"SELEC 1", syntax},

		// Output to files, whatever the statement.
		{"SELECT 1 INTO OUTFILE '" + out + "'", outfile},
		{"SELECT 1 INTO OUTFILE '" + out + "' TRUNCATE", outfile},
		{"SELECT 1 INTO OUTFILE '" + out + "' APPEND", outfile},
		{"SELECT 1 INTO OUTFILE '" + out + "' AND STDOUT", outfile},
		{"SELECT 1 INTO OUTFILE '" + out + "' COMPRESSION 'gzip'", outfile},
		{"SELECT 1 INTO OUTFILE '" + out + "' COMPRESSION 'gzip' LEVEL 3", outfile},
		{"SELECT 1 INTO OUTFILE '" + out + "' FORMAT CSV", outfile},
		{"select 1 into\toutfile '" + out + "' truncate", outfile},
		{"SELECT 1 /* x */ INTO /* y */ OUTFILE '" + out + "'", outfile},
		{"WITH 1 AS x SELECT x INTO OUTFILE '" + out + "'", outfile},
		{"SELECT 1 UNION ALL SELECT 2 INTO OUTFILE '" + out + "'", outfile},
		{"SHOW DATABASES INTO OUTFILE '" + out + "' TRUNCATE", outfile},
		{"SHOW TABLES INTO OUTFILE '" + out + "'", outfile},
		{"EXISTS TABLE " + tbl + " INTO OUTFILE '" + out + "'", outfile},
		{"DESCRIBE TABLE " + tbl + " INTO OUTFILE '" + out + "'", outfile},
		{"SELECT * FROM zeros(3)", anyReason},
		{"SELECT 1 FORMAT JSON", outfile},
		{"SELECT 1 FORMAT TSV", outfile},

		// SETTINGS anywhere: they would lift the limits or readonly.
		{"SELECT 1 SETTINGS readonly = 0", settings},
		{"SELECT 1 SETTINGS max_threads = 1", settings},
		{"SELECT * FROM (SELECT 1 SETTINGS max_execution_time = 0)", settings},
		{"SELECT 1 UNION ALL (SELECT 2 SETTINGS readonly = 0)", settings},
		{"SELECT * FROM file('" + secret + "', 'LineAsString') SETTINGS readonly = 0", anyReason},

		// Table functions outside the allowlist.
		{"SELECT * FROM file('" + secret + "', 'LineAsString')", tableFn},
		{"SELECT * FROM numbers(1) AS n, file('" + secret + "', 'LineAsString')", tableFn},
		{"SELECT * FROM numbers(1) AS n JOIN file('" + secret + "', 'LineAsString') AS f ON 1", tableFn},
		{"SELECT (SELECT count() FROM file('" + secret + "', 'LineAsString'))", tableFn},
		{"SELECT * FROM view(SELECT * FROM file('" + secret + "', 'LineAsString'))", tableFn},
		{"WITH t AS (SELECT * FROM url('http://127.0.0.1:1/', 'LineAsString')) SELECT * FROM t", tableFn},
		{"SELECT * FROM remote('127.0.0.1:1', system.one)", tableFn},
		{"SELECT * FROM remoteSecure('127.0.0.1:1', system.one)", tableFn},
		{"SELECT * FROM cluster('default', system.one)", tableFn},
		{"SELECT * FROM mysql('127.0.0.1:1', 'd', 't', 'u', 'p')", tableFn},
		{"SELECT * FROM postgresql('127.0.0.1:1', 'd', 't', 'u', 'p')", tableFn},
		{"SELECT * FROM sqlite('" + secret + "', 't')", tableFn},
		{"SELECT * FROM s3('http://127.0.0.1:1/b/k', 'CSV')", tableFn},
		{"SELECT * FROM hdfs('hdfs://127.0.0.1:1/k', 'CSV')", tableFn},
		{"SELECT * FROM executable('id', 'LineAsString', 'x String')", tableFn},
		{"SELECT * FROM format(CSV, '1')", tableFn},
		{"SELECT * FROM dictionary('d')", tableFn},
		{"SELECT * FROM loop(numbers(1)) LIMIT 1", tableFn},
		{"SELECT * FROM merge('" + db + "', '.*')", tableFn},
		{"SELECT * FROM mergeTreeIndex('" + db + "', 'current_state')", tableFn},
		{"SELECT * FROM filesystem('" + dir + "')", tableFn},
		{"SELECT * FROM (EXPLAIN SELECT 1)", tableFn},
		{"SELECT * FROM viewIfPermitted(SELECT 1 ELSE null('a UInt8'))", tableFn},

		// Functions that read files or reach out.
		{"SELECT file('" + secret + "')", fn},
		{"SELECT FILE('" + secret + "')", fn},
		{"SELECT `file`('" + secret + "')", fn},
		{"SELECT arrayMap(x -> file(x), ['" + secret + "'])", fn},
		{"SELECT number FROM numbers(1) WHERE file('" + secret + "') != ''", fn},
		{"SELECT dictGet('d', 'a', toUInt64(1))", fn},
		{"SELECT dictHas('d', toUInt64(1))", fn},
		{"SELECT catboostEvaluate('" + secret + "', 1)", fn},
		{"SELECT hasColumnInTable('127.0.0.1', '" + db + "', 'current_state', 'client')", fn},
		{"SELECT addressToSymbol(toUInt64(1))", fn},
		{"SELECT filesystemAvailable()", fn},
	}
	runSQLCases(t, ro, db, cases, "site key")
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("analyst SQL wrote %s (stat: %v)", out, err)
	}
	if _, err := os.Stat(out + ".gz"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("analyst SQL wrote %s.gz (stat: %v)", out, err)
	}
	checkRows(t, query(t, st, "SELECT count() FROM "+db+".current_state"), before.Rows)
	checkRows(t, query(t, st, "SELECT count() FROM system.databases WHERE name IN ('ro_db', '"+db+"')"), [][]any{{int64(1)}})

	// The embedded engine's default database shows files as tables (clickhouse-local's
	// overlay): readonly refuses them; a server has no such table.
	if _, err := ro.QueryReadOnly(ctx, db, "SELECT * FROM `"+secret+"`"); err == nil {
		t.Errorf("analyst SQL read %s as a table", secret)
	}
}

// runSQLCases runs each case through QueryReadOnly in db: a case without a reason must run,
// the others must be refused as a *schema.FieldError naming query whose reason says why and
// never shows secret.
func runSQLCases(t *testing.T, ro ReadOnlyQuerier, db string, cases []sqlCase, secret string) {
	t.Helper()
	for _, c := range cases {
		res, err := ro.QueryReadOnly(context.Background(), db, c.q)
		if c.why == "" {
			if err != nil {
				t.Errorf("%q: refused: %v", c.q, err)
			} else if res == nil {
				t.Errorf("%q: no result", c.q)
			}
			continue
		}
		var fe *schema.FieldError
		switch {
		case err == nil:
			t.Errorf("%q: ran (want refused): %v", c.q, res.Rows)
		case !errors.As(err, &fe) || fe.Field != "query":
			t.Errorf("%q: error %v (%T), want a *schema.FieldError naming query", c.q, err, err)
		case c.why != anyReason && !strings.Contains(fe.Reason, c.why):
			t.Errorf("%q: reason %q, want it to say %q", c.q, fe.Reason, c.why)
		case strings.Contains(fe.Reason, secret):
			t.Errorf("%q: reason %q shows the secret", c.q, fe.Reason)
		}
	}
}

// testSQLScope: several sites share a store (one process hosting a hierarchy, one ClickHouse
// server), so analyst SQL reads the querying site's database only — its tables and views,
// qualified or not — and system.one, system.numbers(_mt), and system.tables and
// system.columns showing that database alone. Another database, the other system tables
// (databases, disks and their paths, settings, other queries' text) and every way around
// (IN, JOIN, subqueries, view(), WITH, merge(), joinGet, a quoted name with a dot) are
// refused, 400 naming query and saying why.
func testSQLScope(t *testing.T, st schema.Store, ro ReadOnlyQuerier, db string) {
	ctx := context.Background()
	other := db + "_other"
	for _, q := range []string{
		"DROP DATABASE IF EXISTS " + other,
		"CREATE DATABASE " + other,
		"CREATE TABLE " + other + ".secret (x String) ENGINE = MergeTree ORDER BY x",
		"INSERT INTO " + other + ".secret VALUES ('the other site''s secret')",
		"CREATE TABLE " + other + ".j (k UInt8, v String) ENGINE = Join(ANY, LEFT, k)",
		"INSERT INTO " + other + ".j VALUES (1, 'the other site''s secret')",
	} {
		if err := st.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	t.Cleanup(func() { _ = st.Exec(context.Background(), "DROP DATABASE IF EXISTS "+other) })
	const outside = "outside this site's database"
	sec := other + ".secret"
	cases := []sqlCase{
		// Another site's database, however it is reached.
		{"SELECT * FROM " + sec, outside},
		{"SELECT * FROM `" + other + "`.`secret`", outside},
		{"SELECT * FROM \"" + other + "\".secret", outside},
		{"SELECT * FROM " + sec + " AS s FINAL", outside},
		{"SELECT c.client FROM " + db + ".current_state AS c JOIN " + sec + " AS s ON c.client = s.x", outside},
		{"SELECT client FROM current_state WHERE client IN (SELECT x FROM " + sec + ")", outside},
		{"SELECT 'a' IN " + sec, outside},
		{"SELECT 'a' NOT IN " + sec, outside},
		{"SELECT 'a' GLOBAL IN " + sec, outside},
		{"SELECT (SELECT any(x) FROM " + sec + ")", outside},
		{"SELECT * FROM view(SELECT * FROM " + sec + ")", outside},
		{"WITH s AS (SELECT * FROM " + sec + ") SELECT * FROM s", outside},
		{"SELECT * FROM current_state UNION ALL SELECT * FROM " + sec, outside},
		{"SELECT * FROM merge('" + other + "', '.*')", "table function merge"},
		{"SELECT joinGet('" + other + ".j', 'v', toUInt8(1))", "function joinGet"},
		{"SELECT joinGet(" + other + ".j, 'v', toUInt8(1))", "function joinGet"},
		{"SELECT * FROM `" + sec + "`", "dot"},
		{"SELECT * FROM " + db + ".`x.y`", "dot"},
		{"SELECT 1 AS `a.b`", "dot"},
		// The engine's own tables, but for the few analysts explore with.
		{"SELECT * FROM system.databases", outside},
		{"SELECT name, path FROM system.disks", outside},
		{"SELECT name, value FROM system.settings", outside},
		{"SELECT query FROM system.processes", outside},
		{"SELECT * FROM system.parts", outside},
		{"SELECT * FROM system.query_log", outside},
		{"SELECT * FROM system.users", outside},
		{"SELECT * FROM system.functions", outside},
		{"SELECT * FROM information_schema.tables", outside},
		{"SELECT * FROM INFORMATION_SCHEMA.TABLES", outside},
		{"SELECT number FROM numbers(1) WHERE number IN system.one", ""},
		{"SELECT getServerSetting('path')", "function getServerSetting"},

		// The site's own: tables and views, qualified or not; WITH names; the allowed system tables.
		{"SELECT count() FROM current_state", ""},
		{"SELECT count() FROM " + db + ".current_state FINAL", ""},
		{"SELECT count() FROM v_live_state", ""},
		{"SELECT count() FROM " + db + ".v_live_state", ""},
		{"SELECT client FROM current_state WHERE client IN (SELECT client FROM " + db + ".clients)", ""},
		{"SELECT 'a' IN current_state", anyReason}, // a table of several columns: the engine's refusal
		{"WITH t AS (SELECT 1 AS x) SELECT x FROM t WHERE x IN t", ""},
		{"SELECT * FROM system.one", ""},
		{"SELECT number FROM system.numbers LIMIT 3", ""},
		{"SELECT number FROM system.numbers_mt LIMIT 3", ""},
		{"SELECT name FROM system.tables", ""},
		{"SELECT name FROM system.columns WHERE table = 'current_state'", ""},
	}
	runSQLCases(t, ro, db, cases, "the other site")
	for _, c := range []struct {
		q    string
		want [][]any
	}{
		{"SELECT currentDatabase()", [][]any{{db}}},
		{"SELECT DISTINCT database FROM system.tables", [][]any{{db}}},
		{"SELECT count() FROM system.tables WHERE database IN ('" + other + "', 'system', 'default')", [][]any{{int64(0)}}},
		{"SELECT DISTINCT database FROM system.columns", [][]any{{db}}},
		{"SELECT count() FROM system.columns WHERE database != '" + db + "'", [][]any{{int64(0)}}},
		{"SELECT count() FROM (SELECT name FROM system.tables) AS t JOIN (SELECT table FROM system.columns WHERE database = '" + other + "') AS c ON t.name = c.table", [][]any{{int64(0)}}},
		{"SELECT count() FROM view(SELECT * FROM system.tables WHERE database = '" + other + "')", [][]any{{int64(0)}}},
		{"SELECT count() > 10 FROM system.tables", [][]any{{int64(1)}}},
		{"SELECT name FROM system.tables WHERE name = 'current_state'", [][]any{{"current_state"}}},
		{"SELECT count() FROM current_state", query(t, st, "SELECT count() FROM "+db+".current_state").Rows},
	} {
		res, err := ro.QueryReadOnly(ctx, db, c.q)
		if err != nil {
			t.Errorf("%s: %v", c.q, err)
			continue
		}
		if !reflect.DeepEqual(res.Rows, c.want) {
			t.Errorf("%s: %v, want %v", c.q, res.Rows, c.want)
		}
	}
	// The engine's databases are no site's: a caller cannot scope a query to them.
	for _, bad := range []string{"system", "INFORMATION_SCHEMA", "", "a; DROP", db + "`"} {
		if _, err := ro.QueryReadOnly(ctx, bad, "SELECT 1"); err == nil {
			t.Errorf("analyst SQL ran in database %q", bad)
		}
	}
	// Two databases through one store, one after another: each query sees its own.
	for _, d := range []string{other, db, other} {
		res, err := ro.QueryReadOnly(ctx, d, "SELECT currentDatabase(), (SELECT count() FROM system.tables)")
		if err != nil {
			t.Fatalf("in %s: %v", d, err)
		}
		if res.Rows[0][0] != d {
			t.Errorf("in %s: current database %v", d, res.Rows[0][0])
		}
	}
}

// sqlStore is a store of the engine under test with the given analyst SQL limits, closed
// when the test ends.
func sqlStore(t *testing.T, newStore NewStore, l schema.SQLLimits) (schema.Store, ReadOnlyQuerier) {
	t.Helper()
	st := newStore(t, l)
	t.Cleanup(func() { _ = st.Close() })
	ro, ok := st.(ReadOnlyQuerier)
	if !ok {
		t.Skipf("%T has no QueryReadOnly", st)
	}
	return st, ro
}

// testSQLLimits: each limit stops a query and is named, with its flag, in the refusal.
func testSQLLimits(t *testing.T, newStore NewStore, db string) {
	ctx := context.Background()
	base := schema.SQLLimits{MaxConcurrent: 2, Timeout: time.Minute, MaxThreads: 1}
	for _, c := range []struct {
		name  string
		tune  func(*schema.SQLLimits)
		q     string
		flag  string // in the reason; "" runs
		quick time.Duration
	}{
		{"timeout", func(l *schema.SQLLimits) { l.Timeout = time.Second }, longSQL, "--sql.timeout", 20 * time.Second},
		{"rows read", func(l *schema.SQLLimits) { l.MaxRowsRead = 1_000_000 }, "SELECT count() FROM numbers(10000000)", "--sql.max-rows-read", 10 * time.Second},
		{"rows read stops the query that froze a site", func(l *schema.SQLLimits) { *l = schema.DefaultSQLLimits() }, longSQL, "--sql.max-rows-read", 10 * time.Second},
		{"memory", func(l *schema.SQLLimits) { l.MaxMemoryBytes = 50 << 20 }, "SELECT groupArray(number) FROM numbers(50000000)", "--sql.max-memory-bytes", 20 * time.Second},
		{"result rows", func(l *schema.SQLLimits) { l.MaxResultRows = 10 }, "SELECT number FROM numbers(11)", "--sql.max-result-rows", 10 * time.Second},
		{"result rows: exactly the limit", func(l *schema.SQLLimits) { l.MaxResultRows = 10 }, "SELECT number FROM numbers(10)", "", 10 * time.Second},
		{"result rows: subqueries are not the answer", func(l *schema.SQLLimits) { l.MaxResultRows = 10 },
			"SELECT count() FROM numbers(100000) WHERE number IN (SELECT number FROM numbers(50000))", "", 10 * time.Second},
		{"result bytes", func(l *schema.SQLLimits) { l.MaxResultBytes = 1000 }, "SELECT repeat('x', 2000)", "--sql.max-result-bytes", 10 * time.Second},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := base
			c.tune(&l)
			_, ro := sqlStore(t, newStore, l)
			start := time.Now()
			res, err := ro.QueryReadOnly(ctx, db, c.q)
			took := time.Since(start)
			if took > c.quick {
				t.Errorf("took %v, want under %v", took, c.quick)
			}
			if c.flag == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if len(res.Rows) == 0 {
					t.Fatal("no rows")
				}
				return
			}
			var fe *schema.FieldError
			if !errors.As(err, &fe) || fe.Field != "query" || !strings.Contains(fe.Reason, c.flag) {
				t.Fatalf("error %v, want a *schema.FieldError naming query and %s", err, c.flag)
			}
			t.Logf("refused in %v: %s", took.Round(time.Millisecond), fe.Reason)
		})
	}
	t.Run("the limits cannot be changed from the query", func(t *testing.T) {
		_, ro := sqlStore(t, newStore, schema.SQLLimits{MaxConcurrent: 1, Timeout: 7 * time.Second, MaxThreads: 1, MaxMemoryBytes: 1 << 30})
		res, err := ro.QueryReadOnly(ctx, db, "SELECT toString(getSetting('max_execution_time')), toString(getSetting('max_memory_usage')), toString(getSetting('max_threads')), toString(getSetting('readonly'))")
		if err != nil {
			t.Fatal(err)
		}
		checkRows(t, res, [][]any{{"7", "1073741824", "1", "1"}})
	})
}

// testSQLBusy: beyond MaxConcurrent a query is refused at once as busy, not queued.
func testSQLBusy(t *testing.T, newStore NewStore, db string) {
	st, ro := sqlStore(t, newStore, schema.SQLLimits{MaxConcurrent: 1, Timeout: time.Minute, MaxThreads: 1})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := ro.QueryReadOnly(ctx, db, longSQL); done <- err }()
	waitRunning(t, st, 1)
	start := time.Now()
	_, err := ro.QueryReadOnly(context.Background(), db, "SELECT 1")
	var busy *schema.SQLBusyError
	if !errors.As(err, &busy) || time.Since(start) > 30*time.Second { // at once: not after the running query
		t.Errorf("second query beside a running one (max 1): %v after %v, want a *schema.SQLBusyError at once", err, time.Since(start))
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled query: %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("cancelled query still running after 5s")
	}
	if _, err := ro.QueryReadOnly(context.Background(), db, "SELECT 1"); err != nil {
		t.Errorf("query after the slot freed: %v", err)
	}
}

// testSQLBesideFolding: while an analyst query runs, inserts (folding) and report queries
// complete as fast as without it, and the analyst query stops when its caller goes away. On
// the embedded engine all of them once shared one connection, whose queries run one after
// another: one analyst query held the projector and every report for 12 minutes.
func testSQLBesideFolding(t *testing.T, newStore NewStore, st schema.Store, db string) {
	sqlSt, ro := sqlStore(t, newStore, schema.SQLLimits{MaxConcurrent: 2, Timeout: 10 * time.Minute, MaxThreads: 1})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { _, err := ro.QueryReadOnly(ctx, db, longSQL); done <- err }()
	waitRunning(t, sqlSt, 1)
	const quick = 2 * time.Second
	for i := 0; i < 5; i++ {
		start := time.Now()
		err := within(quick, func() error {
			return st.Insert(context.Background(), &CurrentRows{DB: db, Rows: []CurrentRow{
				{TopicType: 500, TopicID: "upd-beside", Client: "c-beside", Serial: uint64(100 + i), State: 2, Time: t1, AcceptedAt: t2}}})
		})
		if err != nil {
			t.Fatalf("insert %d beside an analyst query: %v", i, err)
		}
		insertTook := time.Since(start)
		start = time.Now()
		var res *schema.Result
		err = within(quick, func() (err error) {
			res, err = st.Query(context.Background(), "SELECT max(serial) FROM "+db+".current_state FINAL WHERE client = 'c-beside'")
			return err
		})
		if err != nil {
			t.Fatalf("report query %d beside an analyst query: %v", i, err)
		}
		checkRows(t, res, [][]any{{int64(100 + i)}})
		t.Logf("beside a running analyst query: insert %v, report query %v", insertTook.Round(time.Microsecond), time.Since(start).Round(time.Microsecond))
	}
	select {
	case err := <-done:
		t.Fatalf("the analyst query ended early: %v", err)
	default:
	}
	start := time.Now()
	cancel() // the caller went away
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("analyst query whose caller went away: %v, want context.Canceled", err)
		}
		t.Logf("analyst query stopped %v after its caller went away", time.Since(start).Round(time.Millisecond))
	case <-time.After(5 * time.Second):
		t.Fatal("analyst query still running 5s after its caller went away")
	}
	waitRunning(t, sqlSt, 0)
}

// testSQLClose: closing the store kills its running analyst queries and returns promptly.
func testSQLClose(t *testing.T, newStore NewStore, db string) {
	st := newStore(t, schema.SQLLimits{MaxConcurrent: 2, Timeout: 10 * time.Minute, MaxThreads: 1})
	ro, ok := st.(ReadOnlyQuerier)
	if !ok {
		_ = st.Close()
		t.Skipf("%T has no QueryReadOnly", st)
	}
	done := make(chan error, 2)
	for i := 0; i < 2; i++ {
		go func() { _, err := ro.QueryReadOnly(context.Background(), db, longSQL); done <- err }()
	}
	waitRunning(t, st, 2)
	start := time.Now()
	closed := make(chan error, 1)
	go func() { closed <- st.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
		t.Logf("Close returned %v after it was called, two analyst queries running", time.Since(start).Round(time.Millisecond))
	case <-time.After(5 * time.Second):
		t.Fatal("Close still waiting after 5s with analyst queries running")
	}
	for i := 0; i < 2; i++ {
		select {
		case err := <-done:
			if !errors.Is(err, schema.ErrSQLUnavailable) {
				t.Errorf("analyst query stopped by Close: %v, want schema.ErrSQLUnavailable", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("analyst query still running 5s after Close")
		}
	}
	if _, err := ro.QueryReadOnly(context.Background(), db, "SELECT 1"); !errors.Is(err, schema.ErrSQLUnavailable) {
		t.Errorf("query after Close: %v, want schema.ErrSQLUnavailable", err)
	}
}

// waitRunning waits until the engine runs n analyst queries (of any store on it).
func waitRunning(t *testing.T, st schema.Store, n int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var got int64 = -1
	for time.Now().Before(deadline) {
		var res *schema.Result
		err := within(2*time.Second, func() (err error) {
			res, err = st.Query(context.Background(), runningSQL)
			return err
		})
		if err != nil {
			t.Fatalf("cannot count running analyst queries: %v", err)
		}
		if len(res.Rows) == 1 {
			if err := res.Scan(0, &got); err != nil {
				t.Fatalf("cannot count running analyst queries: %v", err)
			}
			if got == n {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%d analyst queries running after 10s, want %d", got, n)
}

// within runs f and returns its error, or an error once d has passed (f goes on in the
// background: on a store whose queries wait for each other it may take minutes).
func within(d time.Duration, f func() error) error {
	ch := make(chan error, 1)
	go func() { ch <- f() }()
	select {
	case err := <-ch:
		return err
	case <-time.After(d):
		return errors.New("still waiting after " + d.String())
	}
}

// BigAnswerSQL answers 600 MB: 150 rows of 4 MB, in three blocks of 200 MB. With the answer
// built whole, copied and decoded before its size was checked, it took a site from 207 MB to
// 3.3 GB before it was refused.
const BigAnswerSQL = "SELECT repeat('xxxxxxxxxx', 400000) AS s FROM numbers(50)" +
	" UNION ALL SELECT repeat('xxxxxxxxxx', 400000) FROM numbers(50)" +
	" UNION ALL SELECT repeat('xxxxxxxxxx', 400000) FROM numbers(50)"

// Bounds of what BigAnswerSQL may cost under a 1 MiB --sql.max-result-bytes: the Go heap
// holds at most the limit and the row being read (4 MB, its text and its value) — a small
// multiple of the limit; the process (RSS) at most the engine's block of 200 MB, its JSON and
// their copies — not the 600 MB answer several times over (3 GB).
const (
	BigAnswerHeapBound = 32 << 20
	BigAnswerRSSBound  = 1536 << 20
)

// testSQLAnswerBounded: an answer past --sql.max-result-bytes is refused as it arrives, and
// the process never holds more than about the limit of it (plus the engine's block).
func testSQLAnswerBounded(t *testing.T, newStore NewStore, db string) {
	ctx := context.Background()
	_, ro := sqlStore(t, newStore, schema.SQLLimits{MaxConcurrent: 1, Timeout: time.Minute, MaxThreads: 1, MaxResultBytes: 1 << 20})
	if _, err := ro.QueryReadOnly(ctx, db, "SELECT 1"); err != nil { // connections opened before measuring
		t.Fatal(err)
	}
	w := WatchMemory()
	start := time.Now()
	_, err := ro.QueryReadOnly(ctx, db, BigAnswerSQL)
	took := time.Since(start)
	heap, rss := w.Stop()
	var fe *schema.FieldError
	if !errors.As(err, &fe) || fe.Field != "query" || !strings.Contains(fe.Reason, "--sql.max-result-bytes") {
		t.Fatalf("a 600 MB answer under a 1 MiB limit: %v, want a *schema.FieldError naming query and --sql.max-result-bytes", err)
	}
	t.Logf("a 600 MB answer under a 1 MiB limit refused in %v: Go heap grew by at most %.1f MiB, peak RSS by %.1f MiB",
		took.Round(time.Millisecond), float64(heap)/(1<<20), float64(rss)/(1<<20))
	if heap > BigAnswerHeapBound {
		t.Errorf("the Go heap grew by %d bytes, want at most %d", heap, BigAnswerHeapBound)
	}
	if rss > BigAnswerRSSBound {
		t.Errorf("the peak RSS grew by %d bytes, want at most %d", rss, BigAnswerRSSBound)
	}
}

// MemoryWatch follows the peak of the Go heap and of the process's resident memory from
// WatchMemory to Stop.
type MemoryWatch struct {
	stop    chan struct{}
	done    chan int64
	heap0   int64
	rss0    int64
	rssPeak bool // the kernel's peak RSS was reset at the start
}

// WatchMemory starts a MemoryWatch, after a garbage collection.
func WatchMemory() *MemoryWatch {
	runtime.GC()
	w := &MemoryWatch{stop: make(chan struct{}), done: make(chan int64, 1), heap0: heapBytes(), rss0: procStatus("VmRSS")}
	// Writing 5 to clear_refs resets VmHWM, the peak RSS, to the current RSS (Linux).
	w.rssPeak = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil && w.rss0 > 0
	go func() {
		peak := w.heap0
		for {
			peak = max(peak, heapBytes())
			select {
			case <-w.stop:
				w.done <- peak
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	return w
}

// Stop returns how much the Go heap and the peak RSS grew; rss is 0 where the kernel keeps no
// peak that can be reset.
func (w *MemoryWatch) Stop() (heap, rss int64) {
	close(w.stop)
	heap = <-w.done - w.heap0
	if w.rssPeak {
		rss = procStatus("VmHWM") - w.rss0
	}
	return heap, rss
}

func heapBytes() int64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64())
}

// procStatus reads a kB field of /proc/self/status in bytes, or 0.
func procStatus(field string) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n << 10
			}
		}
	}
	return 0
}
