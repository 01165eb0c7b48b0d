// Package storetest is the contract test suite of schema.Store: both ClickHouse adapters
// (internal/chdb, embedded; internal/clickhouse, server) run Run against a real engine, so
// they agree on migrations, batch inserts, ReplacingMergeTree semantics, errors and, above
// all, on the normalised value types of schema.Result.
//
// It holds test code only (it imports testing) and must not be imported by non-test code.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/statepipe/statepipe/projector/fold"
	"github.com/statepipe/statepipe/schema"
)

// ReadOnlyQuerier is the optional capability behind `statepipe sql`: an analyst's statement,
// vetted, scoped to the site's database and run within the store's SQL limits (sql.go).
type ReadOnlyQuerier interface {
	QueryReadOnly(ctx context.Context, database, query string) (*schema.Result, error)
}

// NewStore returns a store on the engine under test whose analyst SQL has the given limits
// (the zero value: schema.DefaultSQLLimits). The caller closes it.
type NewStore func(t *testing.T, sql schema.SQLLimits) schema.Store

// Run runs the contract suite. newStore returns a store on the engine under test; Run calls
// it once for the suite, closing that store when the suite ends, and again for the analyst
// SQL tests that need limits of their own. db is a database name the suite owns: Run drops
// it first (and at the end), so never pass one that holds data.
func Run(t *testing.T, newStore NewStore, db string) {
	t.Helper()
	ctx := context.Background()
	st := newStore(t, schema.SQLLimits{})
	t.Cleanup(func() {
		if err := st.Exec(ctx, "DROP DATABASE IF EXISTS "+db); err != nil {
			t.Errorf("cannot drop database %s: %v", db, err)
		}
		if err := st.Close(); err != nil {
			t.Errorf("cannot close store: %v", err)
		}
	})
	if err := st.Exec(ctx, "DROP DATABASE IF EXISTS "+db); err != nil {
		t.Fatalf("cannot drop database %s: %v", db, err)
	}

	if !t.Run("migrate", func(t *testing.T) { testMigrate(t, st, db) }) {
		t.Fatal("migrate failed: the other contract tests need the tables")
	}
	t.Run("insert and query current_state", func(t *testing.T) { testInsertQuery(t, st, db) })
	t.Run("ReplacingMergeTree FINAL keeps the greatest serial", func(t *testing.T) { testReplacing(t, st, db) })
	t.Run("Array(String) round trip", func(t *testing.T) { testArray(t, st, db) })
	t.Run("binary values that contain blank lines", func(t *testing.T) { testBlankLines(t, st, db) })
	t.Run("the raw log: one row per report, one per message in state_messages", func(t *testing.T) { testRawLog(t, st, db) })
	t.Run("value types", func(t *testing.T) { testValueTypes(t, st) })
	t.Run("errors", func(t *testing.T) { testErrors(t, st, db) })
	t.Run("empty result", func(t *testing.T) { testEmpty(t, st, db) })
	t.Run("Each streams the rows Query returns", func(t *testing.T) { testEach(t, st) })
	t.Run("analyst SQL", func(t *testing.T) {
		ro, ok := st.(ReadOnlyQuerier)
		if !ok {
			t.Skipf("%T has no QueryReadOnly", st)
		}
		t.Run("reads", func(t *testing.T) { testReadOnly(t, st, ro, db) })
		t.Run("every statement kind", func(t *testing.T) { testSQLStatements(t, st, ro, db) })
		t.Run("the site's database only", func(t *testing.T) { testSQLScope(t, st, ro, db) })
		t.Run("limits", func(t *testing.T) { testSQLLimits(t, newStore, db) })
		t.Run("the answer is counted as it arrives", func(t *testing.T) { testSQLAnswerBounded(t, newStore, db) })
		t.Run("busy", func(t *testing.T) { testSQLBusy(t, newStore, db) })
		t.Run("beside folding and reports", func(t *testing.T) { testSQLBesideFolding(t, newStore, st, db) })
		t.Run("Close stops it", func(t *testing.T) { testSQLClose(t, newStore, db) })
	})
}

// Times with milliseconds, including a leading zero in the fraction.
var (
	t1 = time.Date(2026, 11, 25, 21, 0, 0, 123_000_000, time.UTC).UnixMilli()
	t2 = time.Date(2026, 11, 25, 21, 0, 1, 5_000_000, time.UTC).UnixMilli()
	t3 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixMilli()
)

const (
	t1Text = "2026-11-25 21:00:00.123"
	t2Text = "2026-11-25 21:00:01.005"
	t3Text = "2026-01-02 03:04:05.000"
)

func testMigrate(t *testing.T, st schema.Store, db string) {
	ctx := context.Background()
	ms, err := schema.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	var all []int
	for _, m := range ms {
		all = append(all, m.Version)
	}
	applied, err := schema.Migrate(ctx, st, db)
	if err != nil {
		t.Fatalf("first migrate: %v", err)
	}
	if !slices.Equal(applied, all) {
		t.Fatalf("first migrate applied %v, want %v", applied, all)
	}
	applied, err = schema.Migrate(ctx, st, db)
	if err != nil {
		t.Fatalf("second migrate: %v", err)
	}
	if len(applied) != 0 {
		t.Fatalf("second migrate applied %v, want nothing (idempotent)", applied)
	}
	res := query(t, st, "SELECT version FROM "+db+".schema_migrations FINAL ORDER BY version")
	var recorded []int
	for i := range res.Rows {
		var v int64
		if err := res.Scan(i, &v); err != nil {
			t.Fatalf("schema_migrations: %v", err)
		}
		recorded = append(recorded, int(v))
	}
	if !slices.Equal(recorded, all) {
		t.Fatalf("schema_migrations records %v, want %v", recorded, all)
	}
}

func testInsertQuery(t *testing.T, st schema.Store, db string) {
	const big = uint64(math.MaxInt64) + 5
	insert(t, st, &CurrentRows{DB: db, Rows: []CurrentRow{
		{TopicType: 500, TopicID: "upd-a", Client: "c1", Serial: 7, State: 3, Error: 0, Time: t1, AcceptedAt: t2},
		{TopicType: 402, TopicID: "upd-b", Client: "c1", Serial: 8, State: 11, Error: -2145124341, Time: t2, AcceptedAt: t3},
		{TopicType: 500, TopicID: "upd-a", Client: "c2", Serial: big, State: -1, Error: math.MaxInt32, Time: t3, AcceptedAt: t1},
	}})
	res := query(t, st, "SELECT topic_type, topic_id, client, serial, state, error, time, accepted_at FROM "+db+
		".current_state FINAL WHERE topic_id IN ('upd-a', 'upd-b') ORDER BY client, topic_type")
	wantColumns := []schema.Column{
		{Name: "topic_type", Type: "UInt16"}, {Name: "topic_id", Type: "String"},
		{Name: "client", Type: "String"}, {Name: "serial", Type: "UInt64"},
		{Name: "state", Type: "Int16"}, {Name: "error", Type: "Int32"},
		{Name: "time", Type: "DateTime64(3, 'UTC')"}, {Name: "accepted_at", Type: "DateTime64(3, 'UTC')"},
	}
	if !reflect.DeepEqual(res.Columns, wantColumns) {
		t.Errorf("columns\n got %+v\nwant %+v", res.Columns, wantColumns)
	}
	checkRows(t, res, [][]any{
		{int64(402), "upd-b", "c1", int64(8), int64(11), int64(-2145124341), t2Text, t3Text},
		{int64(500), "upd-a", "c1", int64(7), int64(3), int64(0), t1Text, t2Text},
		{int64(500), "upd-a", "c2", big, int64(-1), int64(math.MaxInt32), t3Text, t1Text},
	})
}

func testReplacing(t *testing.T, st schema.Store, db string) {
	row := func(serial uint64, state int16) *CurrentRows {
		return &CurrentRows{DB: db, Rows: []CurrentRow{{TopicType: 500, TopicID: "upd-r", Client: "c3",
			Serial: serial, State: state, Time: t1 + int64(serial), AcceptedAt: t2}}}
	}
	// Separate batches are separate parts; FINAL must merge them at read time.
	for _, b := range []*CurrentRows{row(10, 2), row(5, 1), row(20, 3), row(15, 0), row(20, 3)} {
		insert(t, st, b)
	}
	q := " FROM " + db + ".current_state FINAL WHERE topic_id = 'upd-r'"
	checkRows(t, query(t, st, "SELECT client, serial, state, time"+q),
		[][]any{{"c3", int64(20), int64(3), "2026-11-25 21:00:00.143"}})
	checkRows(t, query(t, st, "SELECT count()"+q), [][]any{{int64(1)}})
	checkRows(t, query(t, st, "SELECT serial, state FROM "+db+".v_current_state WHERE topic_id = 'upd-r'"),
		[][]any{{int64(20), int64(3)}})
}

// testBlankLines is the regression test for a batch that chDB cut short: encoded values that
// hold "\n\n" (here offset 0x0a0a and a topic id with an empty line) once ended the inline
// insert data, because chDB's multi-statement splitter ends INSERT data at a blank line.
func testBlankLines(t *testing.T, st schema.Store, db string) {
	r := &schema.Report{V: 1, Client: "c-blank", Site: "P01"}
	for i := 0; i < 50; i++ {
		r.Messages = append(r.Messages, schema.StateMessage{Serial: uint64(0x0a0a + i), Time: t1, TopicType: 500,
			TopicID: "a\n\nb", State: 2, Error: 0x0a0a0a0a})
	}
	insert(t, st, rawReports(db, fold.Record{Partition: 0x0a0a, Offset: 0x0a0a, AcceptedAt: t2, Report: r}))
	checkRows(t, query(t, st, "SELECT count(), min(serial), max(offset), any(topic_id) FROM "+db+".state_messages FINAL WHERE client = 'c-blank'"),
		[][]any{{int64(50), int64(0x0a0a), int64(0x0a0a), "a\n\nb"}})
}

// testRawLog checks the raw log of ddl/0014: a report is one raw_reports row, redeliveries
// of it collapse and a different report under the same serial is kept; state_messages shows
// one row per message of both, and the rows written before 0014 (state_messages_before_0014)
// beside them; and 0014 runs again without harm (the rename is skipped once done).
func testRawLog(t *testing.T, st schema.Store, db string) {
	ctx := context.Background()
	rep := func(state int32, msgs int) *schema.Report {
		r := &schema.Report{V: 1, Client: "c-raw", Site: "P01", FullTypes: []schema.TopicType{500}}
		for i := 0; i < msgs; i++ {
			r.Messages = append(r.Messages, schema.StateMessage{Serial: uint64(100 + i), Time: t1, TopicType: 500,
				TopicID: "u" + strconv.Itoa(i), State: state})
		}
		return r
	}
	a := rep(2, 3)
	insert(t, st, rawReports(db, fold.Record{Partition: 1, Offset: 7, AcceptedAt: t2, Report: a}))
	// The same report again (a client's retry, accepted an hour later at another offset), and a
	// different one under serial 100.
	later := t2 + time.Hour.Milliseconds()
	insert(t, st, rawReports(db, fold.Record{Partition: 1, Offset: 9, AcceptedAt: later, Report: a},
		fold.Record{Partition: 1, Offset: 11, AcceptedAt: later, Report: rep(3, 2)}))
	if err := st.Exec(ctx, "INSERT INTO "+db+".state_messages_before_0014 (client, serial, time, topic_type, topic_id, state, full, accepted_at, report_serial, full_types) "+
		"VALUES ('c-raw', 5, '2026-11-25 20:00:00.000', 500, 'old', 1, 1, '2026-11-25 20:00:00.000', 5, [500])"); err != nil {
		t.Fatal(err)
	}
	checkRows(t, query(t, st, "SELECT count() FROM "+db+".raw_reports FINAL WHERE client = 'c-raw'"), [][]any{{int64(2)}})
	want := [][]any{
		{int64(5), "old", int64(1), int64(1), int64(5)},
		{int64(100), "u0", int64(2), int64(1), int64(100)}, {int64(100), "u0", int64(3), int64(1), int64(100)},
		{int64(101), "u1", int64(2), int64(1), int64(100)}, {int64(101), "u1", int64(3), int64(1), int64(100)},
		{int64(102), "u2", int64(2), int64(1), int64(100)},
	}
	q := "SELECT serial, topic_id, state, full, report_serial FROM " + db + ".state_messages%s WHERE client = 'c-raw' ORDER BY serial, state"
	checkRows(t, query(t, st, fmt.Sprintf(q, "")), want)
	checkRows(t, query(t, st, fmt.Sprintf(q, " FINAL")), want) // a reader's own FINAL changes nothing
	checkRows(t, query(t, st, "SELECT count(DISTINCT message_hash), countIf(message_hash = toFixedString('', 16)) FROM "+db+
		".state_messages WHERE client = 'c-raw'"), [][]any{{int64(6), int64(1)}})
	// Of the two deliveries of the first report, the first accepted stays (first_delivery).
	checkRows(t, query(t, st, "SELECT DISTINCT offset, accepted_at FROM "+db+".state_messages WHERE client = 'c-raw' AND state = 2"),
		[][]any{{int64(7), t2Text}})

	// 0014 interrupted before it was recorded: it runs again.
	for _, q := range []string{"TRUNCATE TABLE " + db + ".schema_migrations",
		"INSERT INTO " + db + ".schema_migrations (version, name) SELECT number, 'before' FROM numbers(1, 13)"} {
		if err := st.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if applied, err := schema.Migrate(ctx, st, db); err != nil || !slices.Contains(applied, 14) {
		t.Fatalf("migration 0014 does not run again: applied %v, %v", applied, err)
	}
	checkRows(t, query(t, st, fmt.Sprintf(q, "")), want)
}

func testArray(t *testing.T, st schema.Store, db string) {
	params := []string{"a", "", "ü, 'quoted' \"double\"", "tab\there", `back\slash`, "new\nline", "[not, an, array]"}
	insert(t, st, rawReports(db,
		fold.Record{Partition: 3, Offset: 1 << 40, AcceptedAt: t2, Report: &schema.Report{V: 1, Client: "c4", Site: "P01",
			FullTypes: []schema.TopicType{402}, Messages: []schema.StateMessage{
				{Serial: 1, Time: t1, TopicType: 402, TopicID: "upd-x", State: 11, Error: -1, Params: params}}}},
		fold.Record{AcceptedAt: t3, Report: &schema.Report{V: 1, Client: "c4", Site: "P01", Messages: []schema.StateMessage{
			{Serial: 2, Time: t2, TopicType: 701}}}}))
	want := make([]any, len(params))
	for i, p := range params {
		want[i] = p
	}
	res := query(t, st, "SELECT serial, params, length(params), error, full, partition, offset, time FROM "+db+
		".state_messages FINAL WHERE client = 'c4' ORDER BY serial")
	if i := res.Index("params"); i < 0 || res.Columns[i].Type != "Array(String)" {
		t.Errorf("params column %+v, want type Array(String)", res.Columns)
	}
	checkRows(t, res, [][]any{
		{int64(1), want, int64(len(params)), int64(-1), int64(1), int64(3), int64(1 << 40), t1Text},
		{int64(2), []any{}, int64(0), int64(0), int64(0), int64(0), int64(0), t2Text},
	})
}

// testValueTypes checks schema.Result's normalisation for the types reports and analysts
// meet, beyond the tables' own columns.
func testValueTypes(t *testing.T, st schema.Store) {
	cases := []struct {
		expr string
		want any
	}{
		{"toUInt8(200)", int64(200)},
		{"toInt8(-5)", int64(-5)},
		{"toUInt32(4000000000)", int64(4000000000)},
		{"toInt64(-9000000000000000000)", int64(-9000000000000000000)},
		{"toUInt64(9223372036854775807)", int64(math.MaxInt64)},
		{"toUInt64(18446744073709551615)", uint64(math.MaxUint64)},
		{"toFloat32(0.1)", 0.1},
		{"toFloat64(-1.5)", -1.5},
		{"toDecimal64(1.25, 2)", 1.25},
		{"true", true},
		{"'héllo'", "héllo"},
		{"toLowCardinality('lc')", "lc"},
		{"toNullable('z')", "z"},
		{"CAST(NULL AS Nullable(String))", nil},
		{"CAST(NULL AS Nullable(Int32))", nil},
		{"toDate('2026-11-25')", "2026-11-25"},
		{"toDateTime('2026-11-25 21:00:00', 'UTC')", "2026-11-25 21:00:00"},
		{"toDateTime64('2026-11-25 21:00:00.123', 3, 'UTC')", t1Text},
		{"toDateTime64('2026-11-25 21:00:00.000123', 6, 'UTC')", "2026-11-25 21:00:00.000123"},
		{"toDateTime64('2026-11-25 21:00:00', 0, 'UTC')", "2026-11-25 21:00:00"},
		{"toUUID('61f0c404-5cb3-11e7-907b-a6006ad3dba0')", "61f0c404-5cb3-11e7-907b-a6006ad3dba0"},
		{"CAST('b' AS Enum8('a' = 1, 'b' = 2))", "b"},
		{"CAST([1, 2] AS Array(UInt8))", []any{int64(1), int64(2)}},
		{"['x', 'y']", []any{"x", "y"}},
		{"CAST([] AS Array(String))", []any{}},
		{"[toDateTime64('2026-11-25 21:00:00.123', 3, 'UTC')]", []any{t1Text}},
		{"CAST(['n', NULL] AS Array(Nullable(String)))", []any{"n", nil}},
		{"[[1], [2, 3]]", []any{[]any{int64(1)}, []any{int64(2), int64(3)}}},
		{"toInt32(-2145124341)", int64(-2145124341)},
		// Wrappers do not change a value's form, however they nest.
		{"CAST(5 AS LowCardinality(Nullable(Int64)))", int64(5)},
		{"CAST(NULL AS LowCardinality(Nullable(Int64)))", nil},
		{"CAST('lc' AS LowCardinality(Nullable(String)))", "lc"},
		{"CAST(NULL AS LowCardinality(Nullable(String)))", nil},
		{"CAST(7 AS Nullable(UInt64))", int64(7)},
		{"CAST(18446744073709551615 AS Nullable(UInt64))", uint64(math.MaxUint64)},
		{"CAST(-1.5 AS Nullable(Float64))", -1.5},
		{"CAST(true AS Nullable(Bool))", true},
		{"CAST([1, -2] AS Array(Int32))", []any{int64(1), int64(-2)}},
		{"CAST([1, NULL] AS Array(Nullable(Int64)))", []any{int64(1), nil}},
		{"CAST(['a', NULL] AS Array(LowCardinality(Nullable(String))))", []any{"a", nil}},
		// Maps with their keys sorted (the server's driver returns a Go map), tuples as JSON.
		{"map('b', toUInt8(2), 'a', toUInt8(1))", `{"a":1,"b":2}`},
		{"(toUInt8(1), 'a')", `[1,"a"]`},
		{"CAST((1, 'x'), 'Tuple(a UInt8, b String)')", `{"a":1,"b":"x"}`},
		{"toIPv4('1.2.3.4')", "1.2.3.4"},
		// 128- and 256-bit integers: as int64 or uint64 when they fit, else as decimal text.
		{"toInt128(-5)", int64(-5)},
		{"toUInt256('18446744073709551615')", uint64(math.MaxUint64)},
		{"toUInt256('340282366920938463463374607431768211456')", "340282366920938463463374607431768211456"},
		{"toInt128('-170141183460469231731687303715884105728')", "-170141183460469231731687303715884105728"},
	}
	exprs := make([]string, len(cases))
	want := make([]any, len(cases))
	for i, c := range cases {
		exprs[i] = fmt.Sprintf("%s AS c%d", c.expr, i)
		want[i] = c.want
	}
	// LowCardinality of numbers is "suspicious" to ClickHouse, yet a column may be declared so.
	res := query(t, st, "SELECT "+strings.Join(exprs, ", ")+" SETTINGS allow_suspicious_low_cardinality_types = 1")
	if len(res.Rows) != 1 || len(res.Rows[0]) != len(cases) {
		t.Fatalf("got %d rows of %v, want 1 row of %d values", len(res.Rows), res.Rows, len(cases))
	}
	for i, c := range cases {
		if got := res.Rows[0][i]; !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s (%s): got %T %#v, want %T %#v", c.expr, res.Columns[i].Type, got, got, c.want, c.want)
		}
	}
}

func testErrors(t *testing.T, st schema.Store, db string) {
	ctx := context.Background()
	_, err := st.Query(ctx, "SELEC 1")
	if err == nil || !strings.Contains(strings.ToLower(err.Error()), "syntax error") {
		t.Errorf("bad query: got error %v, want a syntax error", err)
	}
	if _, err := st.Query(ctx, "SELECT * FROM "+db+".no_such_table"); err == nil || !strings.Contains(err.Error(), "no_such_table") {
		t.Errorf("query of a missing table: got error %v, want one naming the table", err)
	}
	if err := st.Exec(ctx, "CREATE TABLE"); err == nil {
		t.Error("bad statement: got no error")
	}
	err = st.Insert(ctx, &CurrentRows{DB: db + "_missing", Rows: []CurrentRow{{Client: "c"}}})
	if err == nil || !strings.Contains(err.Error(), db+"_missing") {
		t.Errorf("insert into a missing database: got error %v, want one naming it", err)
	}
	if err := st.Insert(ctx, &CurrentRows{DB: db}); err != nil {
		t.Errorf("empty insert: %v", err)
	}
}

func testEmpty(t *testing.T, st schema.Store, db string) {
	res := query(t, st, "SELECT client, serial FROM "+db+".current_state WHERE client = 'nobody'")
	if res.Rows == nil || len(res.Rows) != 0 {
		t.Errorf("rows: got %#v, want an empty non-nil slice", res.Rows)
	}
	if res.Columns == nil {
		t.Error("columns: got nil, want a non-nil slice")
	}
	if len(res.Columns) > 0 && (len(res.Columns) != 2 || res.Columns[0].Name != "client" || res.Columns[1].Name != "serial") {
		t.Errorf("columns: got %+v, want client and serial (or none)", res.Columns)
	}
}

func testEach(t *testing.T, st schema.Store) {
	ctx := context.Background()
	q := `SELECT toString(number) || '\n\nx' AS s, toUInt16(number) AS u16, -toInt32(number) AS i32, toInt16(-3) AS i16,
	             toUInt64(number) * 1000000007 AS u64, toUInt8(number % 2) AS u8, [toString(number), 'b'] AS arr,
	             toUnixTimestamp64Milli(toDateTime64('2026-01-02 03:04:05.678', 3, 'UTC')) AS ms
	      FROM numbers(5) ORDER BY number`
	want := query(t, st, q)
	var got [][]any
	if err := st.Each(ctx, q, func(row []any) error {
		got = append(got, slices.Clone(row))
		return nil
	}); err != nil {
		t.Fatalf("Each: %v", err)
	}
	if !reflect.DeepEqual(got, want.Rows) {
		t.Errorf("Each rows differ from Query's:\n got %#v\nwant %#v", got, want.Rows)
	}
	if len(got) != 5 || got[4][7] != int64(1767323045678) {
		t.Errorf("Each: got %d rows, last %v; want 5 rows ending with the time in ms", len(got), got)
	}
	// Nullable and LowCardinality wrappers, however they nest, read as Query reads them.
	q = `SELECT CAST(if(number % 2 = 0, NULL, number) AS LowCardinality(Nullable(Int64))) AS lni,
	            CAST(if(number = 1, NULL, toString(number)) AS LowCardinality(Nullable(String))) AS lns,
	            CAST(if(number = 2, NULL, number) AS Nullable(UInt64)) AS nu, CAST(number AS LowCardinality(UInt16)) AS lu,
	            CAST([number, NULL] AS Array(Nullable(Int32))) AS ani
	     FROM numbers(3) ORDER BY number SETTINGS allow_suspicious_low_cardinality_types = 1`
	got = nil
	if err := st.Each(ctx, q, func(row []any) error {
		got = append(got, slices.Clone(row))
		return nil
	}); err != nil {
		t.Fatalf("Each of wrapped types: %v", err)
	}
	wrapped := [][]any{
		{nil, "0", int64(0), int64(0), []any{int64(0), nil}},
		{int64(1), nil, int64(1), int64(1), []any{int64(1), nil}},
		{nil, "2", nil, int64(2), []any{int64(2), nil}},
	}
	if !reflect.DeepEqual(got, wrapped) {
		t.Errorf("Each of wrapped types:\n got %#v\nwant %#v", got, wrapped)
	}
	checkRows(t, query(t, st, q), wrapped)
	stop := errors.New("stop")
	n := 0
	err := st.Each(ctx, "SELECT number FROM numbers(10)", func([]any) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Errorf("Each with fn failing: got %v after %d rows, want fn's error after 1", err, n)
	}
	if err := st.Each(ctx, "SELECT nonsense FROM nowhere", func([]any) error { return nil }); err == nil {
		t.Error("Each of a bad query: got nil error")
	}
}

func testReadOnly(t *testing.T, st schema.Store, ro ReadOnlyQuerier, db string) {
	ctx := context.Background()
	res, err := ro.QueryReadOnly(ctx, db, "SELECT count() FROM "+db+".current_state FINAL WHERE topic_id = 'upd-r'")
	if err != nil {
		t.Fatalf("read-only SELECT: %v", err)
	}
	checkRows(t, res, [][]any{{int64(1)}})
	// Values are normalised as Query's.
	q := "SELECT toUInt64(18446744073709551615) AS u, toInt8(-5) AS i, ['a'] AS arr, toDateTime64('2026-11-25 21:00:00.123', 3, 'UTC') AS t"
	res, err = ro.QueryReadOnly(ctx, db, q)
	if err != nil {
		t.Fatalf("read-only values: %v", err)
	}
	checkRows(t, res, query(t, st, q).Rows)
	// An answer of many blocks (the embedded engine streams it block by block) is whole and
	// in order.
	const n = 99_000 // blocks of 65,409 rows
	res, err = ro.QueryReadOnly(ctx, db, fmt.Sprintf("SELECT number, toString(number) AS s FROM numbers(%d)", n))
	if err != nil {
		t.Fatalf("read-only answer of many blocks: %v", err)
	}
	if len(res.Rows) != n {
		t.Fatalf("answer of many blocks: %d rows, want %d", len(res.Rows), n)
	}
	for i, r := range res.Rows {
		if r[0] != int64(i) || r[1] != strconv.Itoa(i) {
			t.Fatalf("answer of many blocks: row %d is %v", i, r)
		}
	}
}

func insert(t *testing.T, st schema.Store, rows schema.Rows) {
	t.Helper()
	if err := st.Insert(context.Background(), rows); err != nil {
		t.Fatalf("insert into %s: %v", rows.Table(), err)
	}
}

func query(t *testing.T, st schema.Store, q string) *schema.Result {
	t.Helper()
	res, err := st.Query(context.Background(), q)
	if err != nil {
		t.Fatalf("query %q: %v", q, err)
	}
	return res
}

// checkRows compares values and their Go types exactly.
func checkRows(t *testing.T, res *schema.Result, want [][]any) {
	t.Helper()
	if reflect.DeepEqual(res.Rows, want) {
		return
	}
	if len(res.Rows) != len(want) {
		t.Errorf("got %d rows, want %d\n got %#v\nwant %#v", len(res.Rows), len(want), res.Rows, want)
		return
	}
	for i := range want {
		for j := range want[i] {
			var got any
			if j < len(res.Rows[i]) {
				got = res.Rows[i][j]
			}
			if !reflect.DeepEqual(got, want[i][j]) {
				name := ""
				if j < len(res.Columns) {
					name = res.Columns[j].Name + " " + res.Columns[j].Type
				}
				t.Errorf("row %d column %d (%s): got %T %#v, want %T %#v", i, j, name, got, got, want[i][j], want[i][j])
			}
		}
		if len(res.Rows[i]) != len(want[i]) {
			t.Errorf("row %d: got %d values, want %d", i, len(res.Rows[i]), len(want[i]))
		}
	}
}
