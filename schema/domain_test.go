package schema

import (
	"go/scanner"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestDomainPredicates(t *testing.T) {
	var errs []TopicType
	for tt := range TopicType(1000) {
		if tt.CarriesErrors() {
			errs = append(errs, tt)
		}
	}
	if !slices.Equal(errs, []TopicType{301, 402}) || !slices.Equal(ErrorTopics(), errs) {
		t.Errorf("error topic types %v (ErrorTopics %v), want [301 402]", errs, ErrorTopics())
	}
	var ok []int32
	for s := range int32(TopicScan.StateCount()) {
		if SuccessfulScan(s) {
			ok = append(ok, s)
		}
	}
	if !slices.Equal(ok, []int32{3, 6}) || !slices.Equal(SuccessfulScanStates(), ok) {
		t.Errorf("successful scan states %v (SuccessfulScanStates %v), want [3 6]", ok, SuccessfulScanStates())
	}
	for _, c := range []struct {
		m    StateMessage
		want bool
	}{
		{StateMessage{TopicType: TopicScan, State: 3}, true},
		{StateMessage{TopicType: TopicScan, State: 6}, true},
		{StateMessage{TopicType: TopicScan, State: 5}, false},
		{StateMessage{TopicType: TopicUpdateCompliance, State: 3}, false},
	} {
		if got := c.m.IsSuccessfulScan(); got != c.want {
			t.Errorf("IsSuccessfulScan(%d, state %d) = %v", c.m.TopicType, c.m.State, got)
		}
	}
	r := &Report{Messages: []StateMessage{{Serial: 9}, {Serial: 4}, {Serial: 7}}}
	if got := r.LowestSerial(); got != 4 {
		t.Errorf("LowestSerial = %d, want 4", got)
	}
	if got := (&Report{}).LowestSerial(); got != 0 {
		t.Errorf("LowestSerial of no messages = %d, want 0", got)
	}
}

// TestSQLAgreesWithDomain: the SQL that filters on the error topic types or on successful
// scans says what the Go predicates say. Go code renders that SQL (ErrorTopicsSQL,
// SuccessfulScanSQL); the DDL cannot, and an applied migration's text must not change, so its
// literals are checked here, along with every SQL literal in the module's Go files.
func TestSQLAgreesWithDomain(t *testing.T) {
	// The renderings follow from the predicates (TestDomainPredicates pins those).
	if got, want := ErrorTopicsSQL(), "topic_type IN "+sqlList(ErrorTopics()); got != want {
		t.Fatalf("ErrorTopicsSQL() = %q, want %q", got, want)
	}
	if got, want := SuccessfulScanSQL(), "topic_type = 501 AND state IN "+sqlList(SuccessfulScanStates()); got != want {
		t.Fatalf("SuccessfulScanSQL() = %q, want %q", got, want)
	}

	// The checker finds disagreement.
	for _, bad := range []string{
		"SELECT 1 FROM t WHERE topic_type IN (301, 402, 302) AND error != 0",
		"SELECT 1 FROM t WHERE topic_type IN (402, 301) AND error != 0",
		"SELECT 1 FROM t WHERE topic_type = 501 AND state IN (3)",
		"SELECT 1 FROM t WHERE topic_type=501 AND state IN (3, 5, 6)",
	} {
		if problems := checkDomainSQL(bad); len(problems) == 0 {
			t.Errorf("checkDomainSQL accepts %q", bad)
		}
	}

	// The DDL: one text per statement.
	ms, err := Migrations()
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, m := range ms {
		for _, st := range m.Statements {
			for _, p := range checkDomainSQL(st) {
				t.Errorf("migration %04d_%s: %s", m.Version, m.Name, p)
			}
			if strings.Contains(st, ErrorTopicsSQL()) {
				found++
			}
		}
	}
	if found == 0 {
		t.Errorf("no migration filters on %q: the v_errors view is not where this test looks for it", ErrorTopicsSQL())
	}

	// Every string literal of the module's Go files (tests and this file aside).
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	files := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || name == "vendor" || name == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		rel, _ := filepath.Rel(root, path)
		for _, lit := range stringLiterals(src) {
			for _, p := range checkDomainSQL(lit.text) {
				t.Errorf("%s:%d: %s", rel, lit.line, p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 50 {
		t.Fatalf("read %d Go files under %s: not the module", files, root)
	}
}

var (
	// An integer list after IN: "IN (301, 402)".
	sqlIntList = regexp.MustCompile(`(?i)\bIN\s*\(\s*(\d+(?:\s*,\s*\d+)*)\s*\)`)
	// A filter on the scan topic type, and a list of states.
	sqlScanTopic = regexp.MustCompile(`(?i)\btopic_type\s*=\s*501\b`)
	sqlStateList = regexp.MustCompile(`(?i)\bstate\s+IN\s*\(\s*(\d+(?:\s*,\s*\d+)*)\s*\)`)
)

// checkDomainSQL returns what in one SQL text disagrees with the domain predicates: an integer
// list naming both error topic types must name exactly those (spelled as ErrorTopicsSQL), and
// a list of states in a text that filters on the scan topic type must be the successful ones.
func checkDomainSQL(text string) []string {
	var problems []string
	wantErrs := sqlList(ErrorTopics())
	for _, m := range sqlIntList.FindAllStringSubmatch(text, -1) {
		list := "(" + m[1] + ")"
		if strings.Contains(list, "301") && strings.Contains(list, "402") && list != wantErrs {
			problems = append(problems, "error topic types "+m[0]+", want IN "+wantErrs+" (schema.ErrorTopics)")
		}
	}
	if sqlScanTopic.MatchString(text) {
		wantScan := sqlList(SuccessfulScanStates())
		for _, m := range sqlStateList.FindAllStringSubmatch(text, -1) {
			if list := "(" + m[1] + ")"; list != wantScan {
				problems = append(problems, "scan states "+m[0]+", want state IN "+wantScan+" (schema.SuccessfulScanStates)")
			}
		}
	}
	return problems
}

type literal struct {
	text string
	line int
}

// stringLiterals returns the string literals of a Go source file, unquoted.
func stringLiterals(src []byte) []literal {
	fset := token.NewFileSet()
	file := fset.AddFile("", fset.Base(), len(src))
	var s scanner.Scanner
	s.Init(file, src, nil, 0)
	var out []literal
	for {
		pos, tok, lit := s.Scan()
		if tok == token.EOF {
			return out
		}
		if tok != token.STRING {
			continue
		}
		if text, err := strconv.Unquote(lit); err == nil {
			out = append(out, literal{text, fset.Position(pos).Line})
		}
	}
}
