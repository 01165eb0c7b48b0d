package schema

import (
	"context"
	"errors"
	"flag"
	"strings"
	"testing"
	"time"
)

// The classifier and limits as pure functions; internal/storetest runs them against both
// engines with every statement kind.

func TestSQLLimitsEngineSettings(t *testing.T) {
	const scope = `additional_table_filters = {'system.tables': 'database = \'statepipe_p01\'', 'system.columns': 'database = \'statepipe_p01\''}`
	got := SetStatement(SQLLimits{MaxConcurrent: 1, Timeout: 1500 * time.Millisecond, MaxMemoryBytes: 1 << 30,
		MaxRowsRead: 5, MaxResultRows: 10, MaxThreads: 2}.EngineSettings("statepipe_p01"))
	want := "SET max_execution_time = 1.5, max_memory_usage = 1073741824, max_rows_to_read = 5, limit = 11, max_threads = 2, " + scope + ", readonly = 1"
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	// Zero limits are not sent (the engine's default); the scope and readonly always are, readonly last.
	got = SetStatement(SQLLimits{MaxConcurrent: 1}.EngineSettings("statepipe_p01"))
	if got != "SET "+scope+", readonly = 1" {
		t.Errorf("no limits: %s", got)
	}
	// The zero value is the defaults.
	if s := (SQLLimits{}).EngineSettings("d"); len(s) != 7 || s[len(s)-1].Name != "readonly" {
		t.Errorf("defaults: %v", s)
	}
	if got := SetStatement([]SQLSetting{{"x", "it's"}}); got != `SET x = 'it\'s'` {
		t.Errorf("string setting: %s", got)
	}
}

func TestSQLLimitsFlags(t *testing.T) {
	var l SQLLimits
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	l.RegisterFlags("sql.", fs)
	if l != DefaultSQLLimits() {
		t.Errorf("registered defaults %+v, want %+v", l, DefaultSQLLimits())
	}
	if err := fs.Parse([]string{"--sql.max-concurrent=3", "--sql.timeout=5s", "--sql.max-memory-bytes=1000", "--sql.max-rows-read=7",
		"--sql.max-result-rows=8", "--sql.max-result-bytes=9", "--sql.max-threads=0"}); err != nil {
		t.Fatal(err)
	}
	want := SQLLimits{MaxConcurrent: 3, Timeout: 5 * time.Second, MaxMemoryBytes: 1000, MaxRowsRead: 7, MaxResultRows: 8, MaxResultBytes: 9}
	if l != want {
		t.Errorf("parsed %+v, want %+v", l, want)
	}
	fs.VisitAll(func(f *flag.Flag) {
		if len(f.Usage) < 60 {
			t.Errorf("--%s: help %q does not say its reason", f.Name, f.Usage)
		}
	})
	if err := l.Validate(); err != nil {
		t.Error(err)
	}
	for flag, bad := range map[string]SQLLimits{
		"--sql.max-concurrent":   {MaxConcurrent: 0, Timeout: time.Second},
		"--sql.timeout":          {MaxConcurrent: 1, Timeout: -time.Second},
		"--sql.max-memory-bytes": {MaxConcurrent: 1, MaxMemoryBytes: -1},
		"--sql.max-rows-read":    {MaxConcurrent: 1, MaxRowsRead: -1},
		"--sql.max-result-rows":  {MaxConcurrent: 1, MaxResultRows: -1},
		"--sql.max-result-bytes": {MaxConcurrent: 1, MaxResultBytes: -1},
		"--sql.max-threads":      {MaxConcurrent: 1, MaxThreads: -1},
	} {
		if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), flag) {
			t.Errorf("%+v: %v, want an error naming %s", bad, err, flag)
		}
	}
}

// Lines as the engine's EXPLAIN AST prints them (26.5).
func TestCheckSQLAST(t *testing.T) {
	ast := func(s string) []string { return strings.Split(strings.Trim(s, "\n"), "\n") }
	ok := ast(`
SelectWithUnionQuery (children 1)
 ExpressionList (children 1)
  SelectQuery (children 2)
   ExpressionList (children 2)
    Literal 'Function file (children 1)' (alias Function file)
    Function arrayMap (alias m) (children 1)
     ExpressionList (children 2)
      Function lambda (children 1)
       ExpressionList (children 2)
        Function tuple (children 1)
         ExpressionList (children 1)
          Identifier x
        Function upper (children 1)
         ExpressionList (children 1)
          Identifier x
      Literal Array_['a']
   TablesInSelectQuery (children 2)
    TablesInSelectQueryElement (children 1)
     TableExpression (children 1)
      Function numbers (alias n) (children 1)
       ExpressionList (children 1)
        Literal UInt64_3
    TablesInSelectQueryElement (children 2)
     TableExpression (children 1)
      Function view (children 1)
       ExpressionList (children 1)
        SelectWithUnionQuery (children 1)
         ExpressionList (children 1)
          SelectQuery (children 2)
           ExpressionList (children 1)
            Function file (alias f) (children 1)
             ExpressionList (children 1)
              Literal 'x'
           TablesInSelectQuery (children 1)
            TablesInSelectQueryElement (children 1)
             TableExpression (children 1)
              TableIdentifier system.one
     TableJoin`)
	// As printed, with file() nested in view(): refused.
	if err := CheckSQLAST(ok, "statepipe_p01"); err == nil || !strings.Contains(err.Error(), "function file") {
		t.Errorf("file() inside view(): %v", err)
	}
	// Without it: allowed (an alias or a string that reads "Function file" is not a call).
	allowed := append([]string{}, ok[:29]...)
	allowed = append(allowed, ok[32:]...)
	allowed[29] = "            Literal UInt64_1"
	if err := CheckSQLAST(allowed, "statepipe_p01"); err != nil {
		t.Errorf("allowed tree refused: %v\n%s", err, strings.Join(allowed, "\n"))
	}
	for name, c := range map[string]struct {
		lines []string
		why   string
	}{
		"settings":            {ast("SelectWithUnionQuery (children 1)\n ExpressionList (children 1)\n  SelectQuery (children 3)\n   ExpressionList\n   Set"), "SETTINGS"},
		"table function":      {ast("SelectWithUnionQuery\n ExpressionList\n  SelectQuery\n   TablesInSelectQuery\n    TablesInSelectQueryElement\n     TableExpression (children 1)\n      Function url (children 1)"), "table function url"},
		"table function case": {ast("SelectWithUnionQuery\n ExpressionList\n  SelectQuery\n   TablesInSelectQuery\n    TablesInSelectQueryElement\n     TableExpression (children 1)\n      Function Remote (alias r) (children 1)"), "table function Remote"},
		"explain subquery":    {ast("SelectWithUnionQuery\n ExpressionList\n  SelectQuery\n   TablesInSelectQuery\n    TablesInSelectQueryElement\n     TableExpression\n      Function viewExplain (children 1)"), "table function viewExplain"},
		"file upper case":     {ast("SelectWithUnionQuery\n ExpressionList\n  SelectQuery\n   ExpressionList\n    Function FILE (children 1)"), "function FILE"},
		"dictionary":          {ast("SelectWithUnionQuery\n ExpressionList\n  SelectQuery\n   ExpressionList\n    Function dictGetString (children 1)"), "dictionaries"},
		"not a select":        {ast("ShowTablesQuery"), "one SELECT"},
		"nothing":             {nil, "one SELECT"},
	} {
		err := CheckSQLAST(c.lines, "statepipe_p01")
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != "query" || !strings.Contains(fe.Reason, c.why) {
			t.Errorf("%s: %v, want a FieldError naming query and saying %q", name, err, c.why)
		}
	}
}

// fakeEngine answers the probes as the engine would, from canned answers.
type fakeEngine struct {
	format, ast  *Result
	errF, errAST error
	seen         []string
}

func (f *fakeEngine) query(_ context.Context, q string) (*Result, error) {
	f.seen = append(f.seen, q)
	if strings.HasPrefix(q, "SELECT formatQuerySingleLine(") {
		return f.format, f.errF
	}
	return f.ast, f.errAST
}

func TestVetSQL(t *testing.T) {
	ctx := context.Background()
	selectAST := &Result{Rows: [][]any{{"SelectWithUnionQuery (children 1)"}, {" ExpressionList (children 1)"}}}
	f := &fakeEngine{format: &Result{Rows: [][]any{{"SELECT 'it\\'s', '\\\\'"}}}, ast: selectAST}
	got, err := VetSQL(ctx, f.query, "statepipe_p01", `SELECT 'it''s', '\\' -- comment`)
	if err != nil || got != `SELECT 'it\'s', '\\'` {
		t.Fatalf("got %q, %v", got, err)
	}
	// The user's text reaches the parser as one string literal; the tree is of the canonical text.
	if f.seen[0] != `SELECT formatQuerySingleLine('SELECT \'it\'\'s\', \'\\\\\' -- comment')` {
		t.Errorf("format probe: %s", f.seen[0])
	}
	if f.seen[1] != "SELECT explain FROM (EXPLAIN AST\nSELECT 'it\\'s', '\\\\'\n)" {
		t.Errorf("AST probe: %q", f.seen[1])
	}

	for name, c := range map[string]struct {
		f       *fakeEngine
		query   string
		why     string
		isField bool
	}{
		"empty": {&fakeEngine{}, " \n ", "empty", true},
		"multi-statement": {&fakeEngine{errF: errors.New("Code: 62. DB::Exception: Syntax error (Multi-statements are not allowed): failed at position 9 (end of query): ; SELECT 2. : In scope SELECT formatQuerySingleLine('SELECT 1; SELECT 2'). (SYNTAX_ERROR)")},
			"SELECT 1; SELECT 2", "Multi-statements are not allowed): failed at position 9 (end of query): ; SELECT 2. (SYNTAX_ERROR)", true},
		"server error format": {&fakeEngine{errF: errors.New("code: 62, message: Syntax error: failed at position 1")}, "SELEC 1", "Syntax error", true},
		"not a select": {&fakeEngine{format: &Result{Rows: [][]any{{"SHOW TABLES FROM statepipe_p01"}}}, errAST: errors.New("Code: 36. DB::Exception: EXPLAIN inside subquery supports only SELECT queries. (BAD_ARGUMENTS)")},
			"show tables from statepipe_p01", "SHOW TABLES is not allowed", true},
		"outfile": {&fakeEngine{format: &Result{Rows: [][]any{{"SELECT 1 INTO OUTFILE 'x'"}}}, errAST: errors.New("Code: 36. DB::Exception: EXPLAIN in a subquery cannot have output options, such as FORMAT or INTO OUTFILE. (BAD_ARGUMENTS)")},
			"SELECT 1 INTO OUTFILE 'x'", "INTO OUTFILE and FORMAT are not allowed", true},
		"store closed": {&fakeEngine{errF: ErrSQLUnavailable}, "SELECT 1", "", false},
	} {
		_, err := VetSQL(ctx, c.f.query, "statepipe_p01", c.query)
		var fe *FieldError
		switch {
		case !c.isField:
			if err == nil || errors.As(err, &fe) {
				t.Errorf("%s: %v, want the store's error as it is", name, err)
			}
		case !errors.As(err, &fe) || fe.Field != "query" || !strings.Contains(fe.Reason, c.why):
			t.Errorf("%s: %v, want a FieldError naming query and saying %q", name, err, c.why)
		case strings.Contains(fe.Reason, "In scope"):
			t.Errorf("%s: reason %q echoes the probe", name, fe.Reason)
		}
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := VetSQL(cancelled, (&fakeEngine{errF: context.Canceled}).query, "statepipe_p01", "SELECT 1"); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

func TestSQLQueryErrorNamesTheLimit(t *testing.T) {
	l := SQLLimits{MaxConcurrent: 1, Timeout: 30 * time.Second, MaxMemoryBytes: 2 << 30, MaxRowsRead: 1000}
	for msg, flag := range map[string]string{
		"Code: 159. DB::Exception: Timeout exceeded: elapsed 30.0 seconds, maximum: 30. (TIMEOUT_EXCEEDED)": "time limit of 30s (--sql.timeout)",
		"code: 159, message: Timeout exceeded: elapsed 30.0 seconds, maximum: 30":                           "--sql.timeout",
		"Code: 241. DB::Exception: Query memory limit exceeded: would use 2.1 GiB. (MEMORY_LIMIT_EXCEEDED)": "--sql.max-memory-bytes",
		"Code: 158. DB::Exception: Limit for rows (controlled by 'max_rows_to_read' setting) exceeded":      "limit of 1000 rows read (--sql.max-rows-read)",
		"Code: 60. DB::Exception: Unknown table expression identifier 'nope'. (UNKNOWN_TABLE)":              "Unknown table expression identifier 'nope'",
	} {
		var fe *FieldError
		if err := SQLQueryError(errors.New(msg), l); !errors.As(err, &fe) || fe.Field != "query" || !strings.Contains(fe.Reason, flag) {
			t.Errorf("%s: %v, want a FieldError naming query and %s", msg, err, flag)
		}
	}
	other := errors.New("cannot decode chdb result")
	if err := SQLQueryError(other, l); err != other {
		t.Errorf("not the engine's: %v", err)
	}
	long := errors.New("Code: 62. DB::Exception: Syntax error: failed at position 1 (" + strings.Repeat("x", 100000) + ")")
	var fe *FieldError
	if err := SQLQueryError(long, l); !errors.As(err, &fe) || len(fe.Reason) > 2100 {
		t.Errorf("a long engine message is passed on whole (%d bytes)", len(fe.Reason))
	}
}

func TestCheckSQLResult(t *testing.T) {
	l := SQLLimits{MaxConcurrent: 1, MaxResultRows: 2, MaxResultBytes: 53}
	res := &Result{Rows: [][]any{{int64(1), "abc"}, {int64(2), []any{"de", int64(3)}}}}
	if err := CheckSQLResult(res, l); err != nil {
		t.Errorf("within: %v", err)
	}
	res.Rows = append(res.Rows, []any{nil})
	if err := CheckSQLResult(res, l); err == nil || !strings.Contains(err.Error(), "--sql.max-result-rows") {
		t.Errorf("3 rows of 2: %v", err)
	}
	if err := SQLResultError(1, 54, l); err == nil || !strings.Contains(err.Error(), "--sql.max-result-bytes") {
		t.Errorf("54 bytes of 53: %v", err)
	}
	// Every value counts 8, a string its length besides, an array its elements besides: an
	// answer of empty strings is not free.
	if n := RowBytes([]any{"abc", int64(1), []any{"de", 1.5}, nil, true, ""}); n != 8+3+8+8+8+2+8+8+8+8 {
		t.Errorf("RowBytes = %d", n)
	}
}

// The scope: tables of the site's database (qualified or not) and a few system tables; any
// other database, however the tree names it, is refused.
func TestCheckSQLASTScope(t *testing.T) {
	const db = "statepipe_p01"
	from := func(table string) []string {
		return []string{"SelectWithUnionQuery (children 1)", " ExpressionList (children 1)", "  SelectQuery (children 2)",
			"   ExpressionList (children 1)", "    Asterisk", "   TablesInSelectQuery (children 1)",
			"    TablesInSelectQueryElement (children 1)", "     TableExpression (children 1)", "      TableIdentifier " + table}
	}
	in := func(fn, rhs string) []string {
		return []string{"SelectWithUnionQuery (children 1)", " ExpressionList (children 1)", "  SelectQuery (children 1)",
			"   ExpressionList (children 1)", "    Function " + fn + " (children 1)", "     ExpressionList (children 2)",
			"      Literal UInt64_1", "      " + rhs}
	}
	for _, c := range []struct {
		lines []string
		ok    bool
	}{
		{from("current_state"), true},
		{from("current_state (alias c)"), true},
		{from(db + ".current_state"), true},
		{from(db + ".v_live_state (alias v)"), true},
		{from("system.one"), true},
		{from("system.numbers"), true},
		{from("system.numbers_mt"), true},
		{from("system.tables (alias t)"), true},
		{from("system.columns"), true},
		{from("statepipe_p02.current_state"), false},
		{from("statepipe_p011.current_state"), false},
		{from("statepipe_p01x.t (alias statepipe_p01)"), false},
		{from("system.databases"), false},
		{from("system.disks"), false},
		{from("system.settings"), false},
		{from("system.processes"), false},
		{from("system.tables_x"), false},
		{from("SYSTEM.one"), false},
		{from("information_schema.tables"), false},
		{from("default.t"), false},
		{in("in", "Identifier statepipe_p02.secret"), false},
		{in("notIn", "Identifier statepipe_p02.secret"), false},
		{in("globalNotIn", "Identifier statepipe_p02.secret"), false},
		{in("nullIn", "Identifier statepipe_p02.secret"), false},
		{in("in", "Identifier secret"), true},
		{in("in", "Identifier "+db+".secret"), true},
		{in("in", "Subquery (children 1)"), true},
		{in("equals", "Identifier statepipe_p02.secret"), true}, // a column of a table in FROM, read from there
	} {
		err := CheckSQLAST(c.lines, db)
		var fe *FieldError
		switch {
		case c.ok && err != nil:
			t.Errorf("%s: refused: %v", c.lines[len(c.lines)-1], err)
		case !c.ok && (!errors.As(err, &fe) || fe.Field != "query" || !strings.Contains(fe.Reason, "outside this site's database") || !strings.Contains(fe.Reason, db)):
			t.Errorf("%s: %v, want a FieldError naming query saying it is outside %s", c.lines[len(c.lines)-1], err, db)
		}
	}
}

// Quoted names may not hold a dot: the tree prints `a.b`.c and a.`b.c` alike.
func TestCheckSQLNames(t *testing.T) {
	for q, ok := range map[string]bool{
		"SELECT * FROM statepipe_p01.current_state":          true,
		"SELECT 'a.b', 'it\\'s.x', '`a.b`', 'x''y.z' FROM t": true,
		"SELECT 1 AS `a b`, `x``y` FROM t":                   true,
		"SELECT * FROM `a.b`.c":                              false,
		"SELECT * FROM a.`b.c`":                              false,
		"SELECT 1 AS `a.b`":                                  false,
		"SELECT 1 AS \"a.b\"":                                false,
		"SELECT 'x\\' FROM `a.b`":                            false,
		"SELECT `a\nb` FROM t":                               false,
		"SELECT 'unclosed":                                   false,
	} {
		err := CheckSQLNames(q)
		var fe *FieldError
		if ok != (err == nil) || (err != nil && (!errors.As(err, &fe) || fe.Field != "query")) {
			t.Errorf("%s: %v, want allowed %v", q, err, ok)
		}
	}
}

func TestCheckSQLDatabase(t *testing.T) {
	for db, ok := range map[string]bool{"statepipe_p01": true, "storetest_chdb": true, "system": false, "System": false,
		"information_schema": false, "INFORMATION_SCHEMA": false, "": false, "a.b": false, "a`b": false, "a b": false, "1a": false} {
		if err := CheckSQLDatabase(db); ok != (err == nil) {
			t.Errorf("%q: %v, want allowed %v", db, err, ok)
		}
	}
}
