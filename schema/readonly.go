package schema

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Analyst SQL (POST /v1/sql, `statepipe sql`) runs statements a person typed against the
// store that folds the site — a store that other sites may share (one process hosting a
// hierarchy, one ClickHouse server). Three things keep one such statement from freezing,
// filling or fooling the site, or reading another, and both adapters share them from here:
//
//   - SQLLimits: a budget of its own — connections apart from folding and reports, a cap on
//     queries at once, and the engine's per-query limits (time, memory, rows read, threads)
//     with the answer's size counted as it arrives (SQLResultError), so no more than about
//     MaxResultBytes of it is ever held;
//   - the classifier (VetSQL): ClickHouse's own parser decides what the text is, and only a
//     single SELECT without output options, SETTINGS, outside-reaching table functions or
//     file-reading functions runs, on a readonly = 1 connection;
//   - the scope (VetSQL, EngineSettings): every table the statement names is the site's
//     (its database is the query's current one, so unqualified names resolve there) or one of
//     a few system tables, and system.tables and system.columns show the site's database
//     only.

// SQLLimits bound analyst SQL. The zero value means DefaultSQLLimits; in a non-zero value a
// zero limit is no limit (MaxConcurrent excepted: it must be at least 1).
type SQLLimits struct {
	// MaxConcurrent analyst queries run at once per store; one more is answered 503 with
	// Retry-After at once, never queued behind a slow one.
	MaxConcurrent int
	// Timeout stops a query after this long (max_execution_time).
	Timeout time.Duration
	// MaxMemoryBytes is the memory one query may take in the engine (max_memory_usage).
	MaxMemoryBytes int64
	// MaxRowsRead is the rows one query may read from tables and table functions
	// (max_rows_to_read).
	MaxRowsRead int64
	// MaxResultRows and MaxResultBytes bound the answer (SQLResultError, RowBytes): the
	// adapters count it as it arrives and stop the query at the first row past a limit, so no
	// more than about MaxResultBytes of it is held (plus the engine's block being read). The
	// engine stops producing rows after MaxResultRows+1 (its `limit` setting, which only the
	// outermost SELECT obeys): max_result_rows and max_result_bytes are not used because the
	// engine applies them to every subquery too, so an IN (SELECT …) over 100,000 clients
	// failed.
	MaxResultRows  int64
	MaxResultBytes int64
	// MaxThreads is the threads one query may use (max_threads); 0 is the engine's default
	// (one per core).
	MaxThreads int
}

// DefaultSQLLimits are the limits of a store configured with none.
func DefaultSQLLimits() SQLLimits {
	return SQLLimits{
		MaxConcurrent:  2,
		Timeout:        30 * time.Second,
		MaxMemoryBytes: 2 << 30,
		MaxRowsRead:    2_000_000_000,
		MaxResultRows:  100_000,
		MaxResultBytes: 64 << 20,
		MaxThreads:     1,
	}
}

// OrDefault returns l, or DefaultSQLLimits for the zero value.
func (l SQLLimits) OrDefault() SQLLimits {
	if l == (SQLLimits{}) {
		return DefaultSQLLimits()
	}
	return l
}

// RegisterFlags registers the limits' flags with the given prefix (e.g. "sql."), defaulting
// to DefaultSQLLimits.
func (l *SQLLimits) RegisterFlags(prefix string, fs *flag.FlagSet) {
	d := DefaultSQLLimits()
	fs.IntVar(&l.MaxConcurrent, prefix+"max-concurrent", d.MaxConcurrent,
		"analyst SQL queries (/v1/sql) running at once per store, each on a connection of its own apart from folding and reports; one more is answered 503 with Retry-After at once. 2 lets a second analyst in while one query runs, and leaves the cores of a small site to folding")
	fs.DurationVar(&l.Timeout, prefix+"timeout", d.Timeout,
		"an analyst SQL query is stopped after this long and answered 400 naming the limit (max_execution_time); 30s answers any query the views are meant for and bounds what one request can hold; 0 = no limit")
	fs.Int64Var(&l.MaxMemoryBytes, prefix+"max-memory-bytes", d.MaxMemoryBytes,
		"memory one analyst SQL query may take in the engine (max_memory_usage); 2 GiB holds a GROUP BY over millions of keys and leaves the rest of a small machine to folding; 0 = the engine's default")
	fs.Int64Var(&l.MaxRowsRead, prefix+"max-rows-read", d.MaxRowsRead,
		"rows one analyst SQL query may read from tables and table functions (max_rows_to_read); 2e9 is a full read of a 30 M-state site's history many times over and stops numbers(3e10) at once; 0 = no limit")
	fs.Int64Var(&l.MaxResultRows, prefix+"max-result-rows", d.MaxResultRows,
		"rows an analyst SQL answer may hold; more is answered 400 naming the limit (the engine stops after one more; rows of subqueries are not counted); 100,000 rows is more than any screen shows, and the answer is held in memory before it is sent: export bigger sets with ClickHouse's own client; 0 = no limit")
	fs.Int64Var(&l.MaxResultBytes, prefix+"max-result-bytes", d.MaxResultBytes,
		"bytes an analyst SQL answer may hold (each value 8 bytes, and a string its length besides), counted as the engine hands the answer over: the query is stopped at the first row past it and answered 400 naming the limit, so no more than about this much of an answer is ever held (plus the engine's block being read); 64 MiB keeps an answer and its JSON within a few hundred MB of the process; 0 = no limit")
	fs.IntVar(&l.MaxThreads, prefix+"max-threads", d.MaxThreads,
		"threads one analyst SQL query may use (max_threads); 1 keeps the other cores of a small machine for folding and reports, the embedded engine sharing the process; 0 = the engine's default (one per core); raise it on a ClickHouse server with cores to spare")
}

// Validate checks the limits, naming the flag (with prefix sql.) in errors.
func (l SQLLimits) Validate() error {
	switch {
	case l == SQLLimits{}:
		return nil
	case l.MaxConcurrent < 1:
		return fmt.Errorf("cannot use --sql.max-concurrent %d: at least 1", l.MaxConcurrent)
	case l.Timeout < 0 || (l.Timeout > 0 && l.Timeout < time.Millisecond):
		return fmt.Errorf("cannot use --sql.timeout %s: 0 (no limit) or at least 1ms", l.Timeout)
	case l.MaxMemoryBytes < 0:
		return fmt.Errorf("cannot use --sql.max-memory-bytes %d: 0 or more", l.MaxMemoryBytes)
	case l.MaxRowsRead < 0:
		return fmt.Errorf("cannot use --sql.max-rows-read %d: 0 or more", l.MaxRowsRead)
	case l.MaxResultRows < 0:
		return fmt.Errorf("cannot use --sql.max-result-rows %d: 0 or more", l.MaxResultRows)
	case l.MaxResultBytes < 0:
		return fmt.Errorf("cannot use --sql.max-result-bytes %d: 0 or more", l.MaxResultBytes)
	case l.MaxThreads < 0:
		return fmt.Errorf("cannot use --sql.max-threads %d: 0 or more", l.MaxThreads)
	}
	return nil
}

// SQLSetting is one ClickHouse setting and its value.
type SQLSetting struct {
	Name  string
	Value any // int64, float64, string or SQLRaw
}

// SQLRaw is a setting value written as it is, not quoted: a Map literal.
type SQLRaw string

// EngineSettings returns the settings an analyst query of the site whose database is database
// runs with: the limits, the scope of system.tables and system.columns (additional_table_filters:
// the site's database only), and readonly = 1 last: once it is set, no setting can change
// (a SET after it, and a SETTINGS clause, are refused).
func (l SQLLimits) EngineSettings(database string) []SQLSetting {
	l = l.OrDefault()
	var s []SQLSetting
	if l.Timeout > 0 {
		s = append(s, SQLSetting{"max_execution_time", l.Timeout.Seconds()})
	}
	if l.MaxMemoryBytes > 0 {
		s = append(s, SQLSetting{"max_memory_usage", l.MaxMemoryBytes})
	}
	if l.MaxRowsRead > 0 {
		s = append(s, SQLSetting{"max_rows_to_read", l.MaxRowsRead})
	}
	if l.MaxResultRows > 0 {
		s = append(s, SQLSetting{"limit", l.MaxResultRows + 1}) // one more: CheckSQLResult tells "too many" from "exactly"
	}
	if l.MaxThreads > 0 {
		s = append(s, SQLSetting{"max_threads", int64(l.MaxThreads)})
	}
	filter := QuoteSQL("database = " + QuoteSQL(database))
	s = append(s, SQLSetting{"additional_table_filters", SQLRaw("{'system.tables': " + filter + ", 'system.columns': " + filter + "}")})
	return append(s, SQLSetting{"readonly", int64(1)})
}

// SetStatement renders settings as one SET statement.
func SetStatement(settings []SQLSetting) string {
	parts := make([]string, len(settings))
	for i, s := range settings {
		var v string
		switch x := s.Value.(type) {
		case float64:
			v = strconv.FormatFloat(x, 'f', -1, 64)
		case string:
			v = QuoteSQL(x)
		case SQLRaw:
			v = string(x)
		default:
			v = fmt.Sprint(x)
		}
		parts[i] = s.Name + " = " + v
	}
	return "SET " + strings.Join(parts, ", ")
}

// SQLBusyError is the answer when MaxConcurrent analyst queries already run: the API answers
// 503 with Retry-After.
type SQLBusyError struct {
	Running int
}

func (e *SQLBusyError) Error() string {
	return fmt.Sprintf("cannot run sql: %d analyst queries are running (--sql.max-concurrent %d); try again when one has finished", e.Running, e.Running)
}

// ErrSQLUnavailable wraps an analyst query's failure that is the store's, not the query's:
// the store closed under it. The API answers 503.
var ErrSQLUnavailable = errors.New("sql is unavailable")

// SQLRetryAfter is the Retry-After of a SQLBusyError.
const SQLRetryAfter = 2 * time.Second

// QuoteSQL returns s as a ClickHouse string literal.
func QuoteSQL(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// SQLTag is the comment an adapter puts before an analyst query so that KILL QUERY can find
// it (id: letters, digits and '-' only) — `WHERE query LIKE SQLTag(id)+'%'`.
func SQLTag(id string) string { return "/* statepipe-sql " + id + " */ " }

// Allowed table functions: they make rows from their arguments alone, never from a file, a
// URL, another server or a database of their choosing. merge() is not among them: it reads
// every table whose name matches a pattern, which in the embedded engine includes the default
// database's view of the file system (readonly refuses those today; the allowlist does not
// lean on it) — UNION ALL says the same explicitly. zeros() would be harmless, but the
// embedded engine refuses it under readonly = 1 (26.5); numbers() does the same work.
var allowedTableFunctions = map[string]bool{
	"numbers": true, "numbers_mt": true, "primes": true, "generateseries": true, "generate_series": true,
	"values": true, "view": true, "null": true, "generaterandom": true,
}

// AllowedTableFunctions lists the table functions analyst SQL may use, for documentation.
const AllowedTableFunctions = "numbers, numbers_mt, primes, generateSeries (generate_series), values, view, null, generateRandom"

// Refused functions: they read files, load models or dictionaries from files, URLs or other
// servers, or connect to another server, whatever readonly says (file() read any file on a
// readonly = 1 connection). Matched without case; names starting with "dict" are refused too.
var refusedFunctions = map[string]string{
	"file":                     "reads a file",
	"catboostevaluate":         "loads a model from a file",
	"modelevaluate":            "loads a model from a file",
	"naivebayesclassifier":     "loads a model from a file",
	"hascolumnintable":         "may connect to another server",
	"addresstoline":            "reads the engine's debug information (introspection)",
	"addresstolinewithinlines": "reads the engine's debug information (introspection)",
	"addresstosymbol":          "reads the engine's debug information (introspection)",
	"demangle":                 "introspection",
	"filesystemavailable":      "reports on the data disk",
	"filesystemcapacity":       "reports on the data disk",
	"filesystemunreserved":     "reports on the data disk",
	"lemmatize":                "loads dictionaries from files",
	"stem":                     "loads dictionaries from files",
	"synonyms":                 "loads dictionaries from files",
	"joinget":                  "reads a table named by its argument, in any database",
	"joingetornull":            "reads a table named by its argument, in any database",
	"getserversetting":         "reads the server's configuration, its data paths among it",
}

// Allowed system tables: what an analyst needs to explore, and nothing about the engine, the
// disks, other queries or other databases. tables and columns are filtered to the site's
// database (EngineSettings' additional_table_filters), the others hold no data.
var allowedSystemTables = map[string]bool{"one": true, "numbers": true, "numbers_mt": true, "tables": true, "columns": true}

// AllowedSystemTables lists them, for documentation.
const AllowedSystemTables = "system.one, system.numbers, system.numbers_mt, and system.tables and system.columns (the site's database only)"

// inFunctions take a table name as their right-hand side (x IN db.table): it is checked as a
// table.
var inFunctions = map[string]bool{
	"in": true, "notin": true, "globalin": true, "globalnotin": true,
	"nullin": true, "notnullin": true, "globalnullin": true, "globalnotnullin": true,
	"inignoreset": true, "notinignoreset": true, "globalinignoreset": true, "globalnotinignoreset": true,
	"nullinignoreset": true, "notnullinignoreset": true, "globalnullinignoreset": true, "globalnotnullinignoreset": true,
}

var sqlDatabaseName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)

// CheckSQLDatabase refuses a database name analyst SQL cannot be scoped to: it is written into
// the connection's USE and its filters (letters, digits and _ only), and unqualified names
// resolve in it, so it must not be the engine's own (system, information_schema).
func CheckSQLDatabase(database string) error {
	switch {
	case !sqlDatabaseName.MatchString(database):
		return fmt.Errorf("cannot run sql in database %q: want a name of letters, digits and _", database)
	case strings.EqualFold(database, "system") || strings.EqualFold(database, "information_schema"):
		return fmt.Errorf("cannot run sql in database %s: it is the engine's own, not a site's", database)
	}
	return nil
}

// sqlOnlySelect is the reason given for any statement that is not a SELECT.
const sqlOnlySelect = "analyst SQL runs one SELECT (WITH, UNION, INTERSECT and EXCEPT included); for SHOW TABLES and DESCRIBE read system.tables and system.columns (they show this site's database)"

// SQLFormatProbe is the first probe of VetSQL: ClickHouse's parser reads query as one
// statement (refusing several, unbalanced parentheses, an unclosed comment or nothing) and
// answers it in canonical form, one line, without comments.
func SQLFormatProbe(query string) string {
	return "SELECT formatQuerySingleLine(" + QuoteSQL(query) + ")"
}

// SQLASTProbe is the second probe: the syntax tree of the canonical statement, one node a
// line, indented one space a level. EXPLAIN inside a subquery takes a SELECT only, without
// output options (FORMAT, INTO OUTFILE), which is the engine deciding the statement's kind.
func SQLASTProbe(canonical string) string {
	return "SELECT explain FROM (EXPLAIN AST\n" + canonical + "\n)"
}

// CheckSQLAST walks the lines of SQLASTProbe's answer and refuses, as a *FieldError naming
// query: a SETTINGS clause anywhere (node Set); a table function not in the allowlist; a
// function that reaches files or other servers; a table outside database, the site's — named
// in FROM or JOIN (TableIdentifier) or on the right of IN (an Identifier) — other than the
// allowed system tables. An unqualified table name resolves in the query's current database,
// the site's (or to a WITH name), and is allowed.
//
// The tree prints names unquoted: a qualified name is the text before its first dot and the
// rest. VetSQL refuses quoted names holding a dot first (CheckSQLNames), so that no name can
// pass for another.
func CheckSQLAST(lines []string, database string) error {
	if len(lines) == 0 || !strings.HasPrefix(strings.TrimLeft(lines[0], " "), "SelectWithUnionQuery") {
		return &FieldError{Field: "query", Reason: sqlOnlySelect}
	}
	type node struct {
		depth int
		kind  string
		name  string // a function's name, lower case
		kids  int    // children seen so far
	}
	var stack []node
	for _, line := range lines {
		depth := len(line) - len(strings.TrimLeft(line, " "))
		text := strings.TrimSpace(line)
		kind, rest, _ := strings.Cut(text, " ")
		for len(stack) > 0 && stack[len(stack)-1].depth >= depth {
			stack = stack[:len(stack)-1]
		}
		parent, grand, index := "", "", 0
		if n := len(stack); n > 0 {
			parent, index = stack[n-1].kind, stack[n-1].kids
			stack[n-1].kids++
			if n > 1 {
				grand = stack[n-2].name
				if stack[n-2].kind != "Function" {
					grand = ""
				}
			}
		}
		name, _, _ := strings.Cut(rest, " ")
		lower := strings.ToLower(name)
		stack = append(stack, node{depth: depth, kind: kind, name: lower})
		switch kind {
		case "Set":
			return &FieldError{Field: "query", Reason: "SETTINGS are not allowed in analyst SQL: its limits are the site's (--sql.*)"}
		case "TableIdentifier":
			if err := checkSQLTable(rest, database); err != nil {
				return err
			}
		case "Identifier":
			// x IN db.table: the right-hand side of IN names a table.
			if parent == "ExpressionList" && index == 1 && inFunctions[grand] {
				if err := checkSQLTable(rest, database); err != nil {
					return err
				}
			}
		case "Function":
			if parent == "TableExpression" {
				if !allowedTableFunctions[lower] {
					return &FieldError{Field: "query", Reason: fmt.Sprintf("table function %s is not allowed in analyst SQL (allowed: %s); read the site's tables and views", name, AllowedTableFunctions)}
				}
				continue
			}
			if why, ok := refusedFunctions[lower]; ok {
				return &FieldError{Field: "query", Reason: fmt.Sprintf("function %s is not allowed in analyst SQL: it %s", name, why)}
			}
			if strings.HasPrefix(lower, "dict") {
				return &FieldError{Field: "query", Reason: fmt.Sprintf("function %s is not allowed in analyst SQL: dictionaries load from files, URLs or other servers", name)}
			}
		}
	}
	return nil
}

// checkSQLTable allows a table the tree names as text ("db.table (alias a)", "table"): in
// database, unqualified (resolved in database), or an allowed system table.
func checkSQLTable(text, database string) error {
	db, table, qualified := strings.Cut(text, ".")
	if !qualified || db == database {
		return nil
	}
	table, _, _ = strings.Cut(table, " ")
	if db == "system" && allowedSystemTables[table] {
		return nil
	}
	shown := db + "." + table
	if len(shown) > 200 {
		shown = strings.ToValidUTF8(shown[:200], "") + "…"
	}
	return &FieldError{Field: "query", Reason: fmt.Sprintf("%s is outside this site's database: analyst SQL reads the tables and views of %s (unqualified names resolve there), and %s", shown, database, AllowedSystemTables)}
}

// CheckSQLNames refuses a canonical statement (formatQuerySingleLine's: names that are not
// plain words are backquoted, no comments) that quotes a name holding a dot or a control
// character: the syntax tree prints names unquoted, and `a.b`.c would read as a.b.c, the
// table b.c of database a. String literals are skipped.
func CheckSQLNames(canonical string) error {
	s := canonical
	for i := 0; i < len(s); i++ {
		q := s[i]
		if q != '\'' && q != '`' && q != '"' {
			continue
		}
		j := i + 1
		for ; j < len(s); j++ {
			if s[j] == '\\' {
				j++
				continue
			}
			if s[j] == q {
				if j+1 < len(s) && s[j+1] == q { // doubled: the quote itself
					j++
					continue
				}
				break
			}
		}
		if j >= len(s) {
			return &FieldError{Field: "query", Reason: "cannot read the statement's names: a quote is not closed"}
		}
		if q != '\'' {
			name := s[i+1 : j]
			if strings.ContainsFunc(name, func(r rune) bool { return r == '.' || r < 0x20 || r == 0x7f }) {
				return &FieldError{Field: "query", Reason: fmt.Sprintf("the quoted name %s holds a dot or a control character, which analyst SQL does not allow: a name with a dot could pass for a table of another database", s[i:min(j+1, i+130)])}
			}
		}
		i = j
	}
	return nil
}

// sqlQuerier runs one read statement: what VetSQL needs of a store.
type sqlQuerier = func(ctx context.Context, query string) (*Result, error)

// VetSQL decides whether query may run as analyst SQL of the site whose database is
// database, and returns the canonical text to run (the one its checks saw: no comment or
// parenthesis in the user's text can change what runs). The query must then run with
// database as its current database and EngineSettings(database): unqualified names resolve
// there, and system.tables and system.columns show it only.
//
// probe runs the classifier's probes: they parse, never read data, so they run on a
// connection without readonly (the embedded engine refuses EXPLAIN in a subquery under
// readonly = 1). A refusal is a *FieldError naming query, with the parser's message where it
// has one; probe's errors that are not the engine's (a cancelled context, a closed store) are
// returned as they are.
func VetSQL(ctx context.Context, probe sqlQuerier, database, query string) (string, error) {
	if err := CheckSQLDatabase(database); err != nil {
		return "", err
	}
	if strings.TrimSpace(query) == "" {
		return "", &FieldError{Field: "query", Reason: "empty: want one SELECT"}
	}
	res, err := probe(ctx, SQLFormatProbe(query))
	if err != nil {
		return "", probeError(err, "")
	}
	if len(res.Rows) != 1 || len(res.Rows[0]) != 1 {
		return "", fmt.Errorf("cannot parse sql: the engine answered %d rows to formatQuerySingleLine", len(res.Rows))
	}
	canonical, ok := res.Rows[0][0].(string)
	if !ok || strings.TrimSpace(canonical) == "" {
		return "", &FieldError{Field: "query", Reason: "empty: want one SELECT"}
	}
	res, err = probe(ctx, SQLASTProbe(canonical))
	if err != nil {
		return "", probeError(err, canonical)
	}
	lines := make([]string, 0, len(res.Rows))
	for _, r := range res.Rows {
		if len(r) == 1 {
			if s, ok := r[0].(string); ok {
				lines = append(lines, s)
			}
		}
	}
	if len(lines) > 0 && strings.HasPrefix(strings.TrimLeft(lines[0], " "), "SelectWithUnionQuery") {
		if err := CheckSQLNames(canonical); err != nil {
			return "", err
		}
	}
	if err := CheckSQLAST(lines, database); err != nil {
		return "", err
	}
	return canonical, nil
}

var engineCode = regexp.MustCompile(`(?i)\bcode: (\d+)`)

// EngineErrorCode returns the ClickHouse error code in err's text (both adapters print it:
// "Code: 62. DB::Exception: …", "code: 62, message: …"), or 0.
func EngineErrorCode(err error) int {
	if err == nil {
		return 0
	}
	m := engineCode.FindStringSubmatch(err.Error())
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// probeError turns an engine's refusal of a probe into a FieldError naming query.
func probeError(err error, canonical string) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || EngineErrorCode(err) == 0 {
		return err
	}
	msg := cleanEngineMessage(err.Error())
	switch {
	case strings.Contains(msg, "EXPLAIN inside subquery supports only SELECT"):
		kind := canonical
		if i := strings.IndexAny(kind, "('`\""); i > 0 {
			kind = kind[:i]
		}
		if f := strings.Fields(kind); len(f) > 2 {
			kind = strings.Join(f[:2], " ")
		}
		return &FieldError{Field: "query", Reason: strings.TrimSpace(kind) + " is not allowed: " + sqlOnlySelect}
	case strings.Contains(msg, "cannot have output options"):
		return &FieldError{Field: "query", Reason: "INTO OUTFILE and FORMAT are not allowed in analyst SQL: the answer is JSON, and nothing is written on the site"}
	}
	return &FieldError{Field: "query", Reason: msg}
}

// maxEngineMessage bounds an engine message passed on to the caller.
const maxEngineMessage = 2000

// cleanEngineMessage drops what the engine adds around its message that would echo the probe
// (": In scope SELECT formatQuerySingleLine('…')") and the stack-trace tail.
func cleanEngineMessage(msg string) string {
	if i := strings.Index(msg, ": In scope SELECT formatQuerySingleLine("); i >= 0 {
		head, code := strings.TrimRight(msg[:i], " "), ""
		if j := strings.LastIndex(msg, ". ("); j > i {
			code = msg[j+1:] // " (SYNTAX_ERROR)"
		}
		if !strings.HasSuffix(head, ".") {
			head += "."
		}
		msg = head + code
	}
	if i := strings.Index(msg, "\nStack trace"); i >= 0 {
		msg = msg[:i]
	}
	msg = strings.TrimSpace(msg)
	if len(msg) > maxEngineMessage { // a syntax error quotes the text from where it failed
		msg = strings.ToValidUTF8(msg[:maxEngineMessage], "") + " …"
	}
	return msg
}

// SQLQueryError turns the engine's refusal of an analyst query into a *FieldError naming
// query (the API answers 400: the query has to change, a retry would fail the same way): a
// limit reached is named with its flag; any other refusal (an unknown table, a type error)
// keeps the engine's message. An error that is not the engine's is returned as it is.
func SQLQueryError(err error, l SQLLimits) error {
	l = l.OrDefault()
	var what string
	switch EngineErrorCode(err) {
	case 159: // TIMEOUT_EXCEEDED
		what = fmt.Sprintf("the time limit of %s (--sql.timeout)", l.Timeout)
	case 241: // MEMORY_LIMIT_EXCEEDED
		what = fmt.Sprintf("the memory limit of %d bytes (--sql.max-memory-bytes) or the engine's own", l.MaxMemoryBytes)
	case 158: // TOO_MANY_ROWS
		what = fmt.Sprintf("the limit of %d rows read (--sql.max-rows-read)", l.MaxRowsRead)
	case 396, 307: // TOO_MANY_ROWS_OR_BYTES, TOO_MANY_BYTES (a server profile's own limits)
		what = "a result size limit of the server's profile"
	case 0:
		return err
	default:
		return &FieldError{Field: "query", Reason: cleanEngineMessage(err.Error())}
	}
	return &FieldError{Field: "query", Reason: "stopped at " + what + "; narrow it (WHERE, LIMIT, fewer columns) or aggregate: " + cleanEngineMessage(err.Error())}
}

// CheckSQLResult refuses an answer beyond MaxResultRows or MaxResultBytes, naming the limit.
func CheckSQLResult(res *Result, l SQLLimits) error {
	var bytes int64
	for _, r := range res.Rows {
		bytes += RowBytes(r)
	}
	return SQLResultError(int64(len(res.Rows)), bytes, l)
}

// SQLResultError is the error for an answer of rows rows and bytes bytes (RowBytes) beyond
// the limits, or nil: an adapter that receives rows one by one stops at the first.
func SQLResultError(rows, bytes int64, l SQLLimits) error {
	l = l.OrDefault()
	if l.MaxResultRows > 0 && rows > l.MaxResultRows {
		return &FieldError{Field: "query", Reason: fmt.Sprintf("the answer has more than %d rows (--sql.max-result-rows); add LIMIT or aggregate", l.MaxResultRows)}
	}
	if l.MaxResultBytes > 0 && bytes > l.MaxResultBytes {
		return &FieldError{Field: "query", Reason: fmt.Sprintf("the answer holds more than %d bytes (--sql.max-result-bytes); select fewer columns or rows", l.MaxResultBytes)}
	}
	return nil
}

// RowBytes is the size CheckSQLResult counts for a row: each value 8 bytes, and a string its
// length besides, an array its elements besides. Every value counts: an answer of many empty
// strings costs memory too (each is held as a value of its own).
func RowBytes(row []any) int64 {
	var n int64
	for _, v := range row {
		n += 8
		switch x := v.(type) {
		case string:
			n += int64(len(x))
		case []any:
			n += RowBytes(x)
		}
	}
	return n
}
