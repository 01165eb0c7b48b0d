package chdb

import (
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/statepipe/statepipe/internal/storetest"
	"github.com/statepipe/statepipe/schema"
)

// chDB allows one session per process and its data path cannot change, so TestMain opens the
// one session every test of the package shares (testDataDir) and holds a reference to it
// until the tests are done; tests open it again with the same path (Open and New hand out
// the same session, reference-counted).
var (
	testDataDir string
	skipReason  string // set when libchdb.so is not installed
)

// testDB is the database the package's analyst queries are scoped to (TestMain creates it).
const testDB = "chdb_test"

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "statepipe-chdb-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "cannot create chdb test directory:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	testDataDir = dir
	s, err := Open("", dir)
	switch {
	case errors.Is(err, ErrLibraryNotFound):
		skipReason = "chDB tests skipped: " + err.Error()
	case err != nil:
		fmt.Fprintln(os.Stderr, "cannot open chdb session for tests:", err)
		return 1
	default:
		defer func() {
			if err := s.Close(); err != nil {
				fmt.Fprintln(os.Stderr, "cannot close chdb session:", err)
			}
		}()
		if _, err := s.Query([]byte("CREATE DATABASE IF NOT EXISTS "+testDB), ""); err != nil {
			fmt.Fprintln(os.Stderr, "cannot create the test database:", err)
			return 1
		}
	}
	return m.Run()
}

// requireLibrary skips the test when libchdb.so is not installed, or fails it when
// STATEPIPE_REQUIRE_CHDB is set (as `make test` does), so a missing library cannot pass
// for a green run.
func requireLibrary(t *testing.T) {
	t.Helper()
	if skipReason == "" {
		return
	}
	if os.Getenv("STATEPIPE_REQUIRE_CHDB") != "" {
		t.Fatal("libchdb.so is required here: " + skipReason)
	}
	t.Skip(skipReason)
}

func TestStoreContract(t *testing.T) {
	requireLibrary(t)
	storetest.Run(t, func(t *testing.T, sql schema.SQLLimits) schema.Store {
		st, err := New(Config{Path: testDataDir, SQL: sql})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}, "storetest_chdb")
}
