package chdb

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/statepipe/statepipe/schema"
)

// The statement kinds, limits, isolation and Close of analyst SQL are the contract suite's
// (internal/storetest, sql.go); these are the embedded adapter's own connections.

func extraConns(s *Session) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.extra
}

// Analyst connections are opened when needed and kept (chDB advises against churning
// connections): many queries one after another use one analyst connection, plus the vet and
// control connections, and Close gives every one back.
func TestAnalystConnectionsAreKeptAndReleased(t *testing.T) {
	requireLibrary(t)
	st, err := New(Config{Path: testDataDir, SQL: schema.SQLLimits{MaxConcurrent: 2, Timeout: time.Minute, MaxThreads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	before := extraConns(st.s)
	ctx := context.Background()
	for i := 0; i < 20; i++ {
		if _, err := st.QueryReadOnly(ctx, testDB, "SELECT 1"); err != nil {
			t.Fatal(err)
		}
		if _, err := st.QueryReadOnly(ctx, testDB, "SELEC 1"); err == nil { // refusals keep them too
			t.Fatal("SELEC 1 ran")
		}
	}
	if got := extraConns(st.s) - before; got != 3 {
		t.Errorf("after 40 analyst queries one at a time: %d connections, want 3 (analyst, vet, control)", got)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if got := extraConns(st.s); got != before {
		t.Errorf("after Close: %d further connections, want %d", got, before)
	}
}

// Analyst connections are scoped to one database each (their current database): queries of
// several databases through one store use connections of their own database, and never more
// than MaxConcurrent of them (an idle one of another database makes room).
func TestAnalystConnectionsPerDatabase(t *testing.T) {
	requireLibrary(t)
	st, err := New(Config{Path: testDataDir, SQL: schema.SQLLimits{MaxConcurrent: 2, Timeout: time.Minute, MaxThreads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // after the drops: cleanups run last first
		if err := st.Close(); err != nil {
			t.Error(err)
		}
	})
	ctx := context.Background()
	dbs := []string{"chdb_test_a", "chdb_test_b", "chdb_test_c"}
	for _, db := range dbs {
		if err := st.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+db); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := st.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db); err != nil {
				t.Errorf("cannot drop %s: %v", db, err)
			}
		})
	}
	before := extraConns(st.s)
	for i := 0; i < 12; i++ {
		db := dbs[i%len(dbs)]
		res, err := st.QueryReadOnly(ctx, db, "SELECT currentDatabase()")
		if err != nil {
			t.Fatal(err)
		}
		if res.Rows[0][0] != db {
			t.Fatalf("query %d in %s ran in %v", i, db, res.Rows[0][0])
		}
		if got := extraConns(st.s) - before; got > 2+2 {
			t.Fatalf("after query %d: %d connections, want at most 4 (2 analyst, vet, control)", i, got)
		}
	}
	if _, err := st.QueryReadOnly(ctx, "chdb_test_missing", "SELECT 1"); err == nil {
		t.Error("a query in a database that does not exist ran")
	}
	if got := extraConns(st.s) - before; got > 2+2 {
		t.Errorf("after a failed connection: %d connections, want at most 4", got)
	}
}

// Closing one store's analyst connections leaves the engine to the other stores of the
// process (sites hosted together share it).
func TestClosingAStoreLeavesTheEngineToOthers(t *testing.T) {
	requireLibrary(t)
	a, err := New(Config{Path: testDataDir})
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(Config{Path: testDataDir})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	for _, st := range []*Store{a, b} {
		if _, err := st.QueryReadOnly(ctx, testDB, "SELECT 1"); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.QueryReadOnly(ctx, testDB, "SELECT 1"); !errors.Is(err, schema.ErrSQLUnavailable) {
		t.Errorf("closed store's analyst query: %v, want schema.ErrSQLUnavailable", err)
	}
	if _, err := b.Query(ctx, "SELECT 1"); err != nil {
		t.Errorf("other store's query: %v", err)
	}
	if res, err := b.QueryReadOnly(ctx, testDB, "SELECT count() FROM numbers(10)"); err != nil || res.Rows[0][0] != int64(10) {
		t.Errorf("other store's analyst query: %v, %v", res, err)
	}
}

// A caller gone before its query started (cancelled while it was being vetted, or while its
// connection opened) does not leave it running: the kill is repeated until it returns.
func TestCancelledBeforeItStartsStops(t *testing.T) {
	requireLibrary(t)
	st, err := New(Config{Path: testDataDir, SQL: schema.SQLLimits{MaxConcurrent: 4, Timeout: 10 * time.Minute, MaxThreads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := st.QueryReadOnly(ctx, testDB, longSQL); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled caller: %v, want context.Canceled", err)
	}
	for _, d := range []time.Duration{0, time.Millisecond, 3 * time.Millisecond, 50 * time.Millisecond} {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		start := time.Now()
		_, err := st.QueryReadOnly(ctx, testDB, longSQL)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
			t.Errorf("deadline %v: %v after %v, want context.DeadlineExceeded at once", d, err, time.Since(start))
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		res, err := st.Query(context.Background(), "SELECT count() FROM system.processes WHERE query LIKE '/* statepipe-sql %'")
		if err != nil {
			t.Fatal(err)
		}
		if res.Rows[0][0] == int64(0) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v analyst queries still running 5s after their callers went away", res.Rows[0][0])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

const longSQL = "SELECT count() FROM numbers(30000000000) WHERE sipHash64(number) = 0"
