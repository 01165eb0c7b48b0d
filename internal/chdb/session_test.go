package chdb

import (
	"context"
	"slices"
	"testing"
)

func TestSessionSmoke(t *testing.T) {
	requireLibrary(t)
	s, err := Open("", testDataDir) // the process's one session (see TestMain)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out, err := s.Query([]byte("SELECT 1+1 AS x"), "CSV")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%q", out)
	if _, err := s.Query([]byte("CREATE DATABASE IF NOT EXISTS d1"), ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Query([]byte("CREATE TABLE IF NOT EXISTS d1.t (a UInt32, s String) ENGINE=MergeTree ORDER BY a"), ""); err != nil {
		t.Fatal(err)
	}
	q := []byte("INSERT INTO d1.t (a, s) FORMAT RowBinary\n")
	q = append(q, 7, 0, 0, 0, 3, 'a', 0, 'c')
	q = append(q, 8, 0, 0, 0, 1, '\n')
	if _, err := s.Query(q, ""); err != nil {
		t.Fatal(err)
	}
	out, err = s.Query([]byte("SELECT a, hex(s) FROM d1.t ORDER BY a"), "JSONCompact")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s", out)
	_, err = s.Query([]byte("SELEC bad"), "CSV")
	t.Logf("err: %v", err)
	_, err = s.Query([]byte("INSERT INTO d1.t SELECT 1, 'x' SETTINGS readonly=1"), "CSV")
	t.Logf("readonly insert err: %v", err)
	_, err = s.Query([]byte("SELECT 1; DROP TABLE d1.t"), "CSV")
	t.Logf("multi err: %v", err)
}

// A statement that fails part-way leaves nothing for the next one on its connection. chDB
// 26.5 handed a failed statement's output out in front of the next statement's: a JSON
// document before the next one (a decoding error in the next report), RowBinary rows in
// front of the next Each's (196,241 rows never asked for before the one asked for), and the
// failed query stayed in system.processes until then.
func TestFailedStatementLeavesNothingBehind(t *testing.T) {
	requireLibrary(t)
	st, err := New(Config{Path: testDataDir})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	const failing = "SELECT toUInt8(throwIf(number = 300000)) AS x FROM numbers(1000000)"
	if err := st.Each(ctx, failing, func([]any) error { return nil }); err == nil {
		t.Fatal("failing Each: no error")
	}
	var rows [][]any
	if err := st.Each(ctx, "SELECT toUInt8(7) AS seven", func(r []any) error { rows = append(rows, slices.Clone(r)); return nil }); err != nil {
		t.Fatalf("Each after a failed one: %v", err)
	}
	if len(rows) != 1 || rows[0][0] != int64(7) {
		t.Errorf("Each after a failed one: %d rows (first %v), want [[7]]", len(rows), rows[:min(len(rows), 3)])
	}
	if _, err := st.Query(ctx, failing); err == nil {
		t.Fatal("failing query: no error")
	}
	res, err := st.Query(ctx, "SELECT 1 AS one")
	if err != nil {
		t.Fatalf("query after a failed one: %v", err)
	}
	if len(res.Rows) != 1 || res.Rows[0][0] != int64(1) {
		t.Errorf("query after a failed one: %v", res.Rows)
	}
	if _, err := st.QueryReadOnly(ctx, testDB, "SELECT throwIf(number = 300000) AS x FROM numbers(1000000)"); err == nil {
		t.Fatal("failing analyst query: no error")
	}
	if res, err := st.QueryReadOnly(ctx, testDB, "SELECT 2 AS two"); err != nil || len(res.Rows) != 1 || res.Rows[0][0] != int64(2) {
		t.Errorf("analyst query after a failed one: %v, %v", res, err)
	}
}
