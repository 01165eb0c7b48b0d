package chdb

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/statepipe/statepipe/schema"
)

// An answer in an output format is the engine's bytes: blocks of a concatenable format are
// joined, any other format comes whole (one JSON document for many blocks), rows and bytes
// are counted against the limits, and the connections are the analyst ones.
func TestQueryReadOnlyFormat(t *testing.T) {
	requireLibrary(t)
	st, err := New(Config{Path: testDataDir, SQL: schema.SQLLimits{MaxConcurrent: 2, Timeout: time.Minute, MaxThreads: 1, MaxResultRows: 50000, MaxResultBytes: 1 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	ans, err := st.QueryReadOnlyFormat(ctx, testDB, "SELECT number FROM numbers(40000)", "TSV")
	if err != nil || ans.Rows != 40000 || strings.Count(string(ans.Body), "\n") != 40000 || ans.Format.Name != "TSV" {
		t.Fatalf("TSV: %v, %+v", err, ans.Format)
	}
	ans, err = st.QueryReadOnlyFormat(ctx, testDB, "SELECT number FROM numbers(40000) FORMAT JSONCompact", "TSV")
	var doc struct{ Rows int }
	if err != nil || json.Unmarshal(ans.Body, &doc) != nil || doc.Rows != 40000 {
		t.Fatalf("JSONCompact of many blocks: %v, %d rows", err, doc.Rows)
	}
	ans, err = st.QueryReadOnlyFormat(ctx, testDB, "SELECT 1 WHERE 0 FORMAT JSON", "TSV")
	if err != nil || !strings.Contains(string(ans.Body), `"rows": 0`) {
		t.Fatalf("an empty JSON answer: %v %q", err, ans.Body)
	}
	for q, limit := range map[string]string{
		"SELECT number FROM numbers(60000)":                       "--sql.max-result-rows",
		"SELECT repeat('x', 100) FROM numbers(20000)":             "--sql.max-result-bytes",
		"SELECT repeat('x', 100) FROM numbers(20000) FORMAT JSON": "--sql.max-result-bytes",
	} {
		if _, err := st.QueryReadOnlyFormat(ctx, testDB, q, "TSV"); schema.ClassifySQLError(err) != schema.RefusedResultSize || !strings.Contains(err.Error(), limit) {
			t.Errorf("%s: %v, want %s", q, err, limit)
		}
	}
	if _, err := st.QueryReadOnlyFormat(ctx, testDB, "SELECT * FROM file('/etc/passwd')", "TSV"); schema.ClassifySQLError(err) != schema.RefusedAccess {
		t.Errorf("file(): %v", err)
	}
}
