package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"strings"
	"testing"
)

// `statepipe report -h` lists every report (exit 0); a typo'd report gets a suggestion; a
// report's -h lists its own flags.
func TestReportCommandLine(t *testing.T) {
	ctx := context.Background()
	if err := cmdReport(ctx, []string{"-h"}); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("report -h: %v, want help", err)
	}
	var ue *usageError
	if err := cmdReport(ctx, []string{"complience"}); !errors.As(err, &ue) || !strings.Contains(err.Error(), `"compliance"`) {
		t.Errorf("report complience: %v, want a usage error suggesting compliance", err)
	}
	if err := cmdReport(ctx, nil); !errors.As(err, &ue) || !strings.Contains(ue.usage, "machines") {
		t.Errorf("report: %v, want a usage error listing the reports", err)
	}
	if err := cmdReport(ctx, []string{"machines", "--url", "http://127.0.0.1:1"}); !errors.As(err, &ue) || !strings.Contains(err.Error(), "--state is required") {
		t.Errorf("report machines without --state: %v", err)
	}
}

// The SQL table prints values exactly: integers beyond 2^53 and Int32 error codes as sent, not
// through a float; NULL as NULL; arrays as [a, b].
func TestSQLTable(t *testing.T) {
	raw := `{"columns": [{"name": "error", "type": "Int32"}, {"name": "big", "type": "Int64"}, {"name": "n", "type": "Nullable(String)"},
	  {"name": "arr", "type": "Array(String)"}, {"name": "f", "type": "Float64"}, {"name": "b", "type": "Bool"}],
	 "rows": [
	  [-2145124341, 9007199254740993, null, ["a", "b, c"], 0.1, true],
	  [0, 18446744073709551615, "x", [], 1e-7, false]]}`
	var out bytes.Buffer
	if err := printSQL(&out, []byte(raw)); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	want := []string{"error big n arr f b", "-2145124341 9007199254740993 NULL ['a', 'b, c'] 0.1 true", "0 18446744073709551615 x [] 1e-7 false", "(2 rows)"}
	if len(lines) != len(want) {
		t.Fatalf("table:\n%s", out.String())
	}
	for i := range want {
		if got := strings.Join(strings.Fields(lines[i]), " "); got != want[i] {
			t.Errorf("line %d: %q, want %q", i, got, want[i])
		}
	}
}
