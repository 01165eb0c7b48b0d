package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"net/url"
	"strings"
	"testing"

	"github.com/statepipe/statepipe/report"
)

// `statepipe report -h` lists every report (exit 0); a typo'd report gets a suggestion; a
// report's -h lists its own flags.
func TestReportCommandLine(t *testing.T) {
	t.Parallel()
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
	if err := cmdReport(ctx, []string{"deployment", "--url", "http://127.0.0.1:1"}); !errors.As(err, &ue) || !strings.Contains(err.Error(), "--deployment is required") {
		t.Errorf("report deployment without --deployment: %v", err)
	}
}

// The SQL table prints values exactly: integers beyond 2^53 and Int32 error codes as sent, not
// through a float; NULL as NULL; arrays as [a, b].
func TestSQLTable(t *testing.T) {
	t.Parallel()
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

// A report's integer parameters are int flags: help shows their type and default, a value
// that is not a number is a usage error, and a flag not given is not sent.
func TestReportIntegerFlags(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		report string
		has    []string
	}{
		{"machines", []string{"-limit int\n", "(default 100)", "-after string\n"}},
		{"scan", []string{"-days int\n", "(default 7)"}},
		{"deployment", []string{"-state int\n"}},
	} {
		d, _ := report.Lookup(c.report)
		fs := newFlags("report "+d.Name, "[flags]")
		reportParamFlags(fs, d)
		var help bytes.Buffer
		fs.help(&help)
		for _, s := range c.has {
			if !strings.Contains(help.String(), s) {
				t.Errorf("report %s -h lacks %q:\n%s", c.report, s, help.String())
			}
		}
	}
	d, _ := report.Lookup("machines")
	for _, c := range []struct {
		args []string
		want string // the query, or "error"
	}{
		{[]string{"--state", "required", "--update", "U1"}, "state=required&update=U1"},
		{[]string{"--state", "required", "--limit", "5"}, "limit=5&state=required"},
		{[]string{"--state", "required", "--limit", "five"}, "error"},
		{[]string{"--limit", "5"}, "limit=5"}, // the cell (and whether it needs a state) is the site's to judge
	} {
		fs := newFlags("report "+d.Name, "[flags]")
		query := reportParamFlags(fs, d)
		_, err := fs.parse(c.args)
		var q url.Values
		if err == nil {
			q, err = query()
		}
		if got := q.Encode(); (err != nil) != (c.want == "error") || (err == nil && got != c.want) {
			t.Errorf("report machines %q: %q %v, want %s", c.args, got, err, c.want)
		}
	}
}

// `statepipe sql` escapes control characters in every cell and column name: a value cannot
// forge a row, break the columns or send the terminal an escape sequence.
func TestSQLTableEscapesControlCharacters(t *testing.T) {
	t.Parallel()
	raw := `{"columns": [{"name": "client", "type": "String"}, {"name": "params\u001b[2J", "type": "Array(String)"}, {"name": "t", "type": "Tuple(String)"}],
	 "rows": [["pc\u0085", ["ok\nKB5044284  Installed  9999\u001b]0;pwned\u0007", "\t\u007f"], {"a": "x\u009by"}]]}`
	var out bytes.Buffer
	if err := printSQL(&out, []byte(raw)); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("table of %d lines:\n%s", len(lines), out.String())
	}
	for i, r := range out.String() {
		if r != '\n' && (r < 0x20 || (r >= 0x7f && r < 0xa0)) {
			t.Fatalf("control character U+%04X at byte %d:\n%q", r, i, out.String())
		}
	}
	for _, s := range []string{`params\x1b[2J`, `pc\u0085`, `['ok\nKB5044284  Installed  9999\x1b]0;pwned\a', '\t\x7f']`, `x\u009by`} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("table lacks %s:\n%s", s, out.String())
		}
	}
}
