package schema

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// Analyst SQL in an output format of the engine's (ClickHouse's HTTP interface on an embedded
// site): the statement may end with a FORMAT clause, and the answer is the engine's own bytes
// in that format. The guard is VetSQL's, unchanged: VetSQLFormat takes the FORMAT clause off
// the canonical text and vets the rest as any analyst statement; the format must be one of
// sqlFormats, which only write an answer (none reads or writes a file).

// SQLFormat is an output format analyst SQL may answer in.
type SQLFormat struct {
	// Name is the engine's name of the format.
	Name string
	// ContentType is what ClickHouse's HTTP interface sends with it.
	ContentType string
	// Concatenable: the engine's blocks, each written in the format on its own, make one
	// answer when concatenated (no header, footer or per-document framing). The answer of
	// any other format is taken whole from the engine.
	Concatenable bool
}

const (
	ctTSV    = "text/tab-separated-values; charset=UTF-8"
	ctCSV    = "text/csv; charset=UTF-8; header=absent"
	ctCSVH   = "text/csv; charset=UTF-8; header=present"
	ctJSON   = "application/json; charset=UTF-8"
	ctNDJSON = "application/x-ndjson; charset=UTF-8"
	ctBinary = "application/octet-stream"
	ctText   = "text/plain; charset=UTF-8"
	ctXML    = "application/xml; charset=UTF-8"
)

// sqlFormats are the output formats allowed, by lower-case name (aliases included).
var sqlFormats = func() map[string]SQLFormat {
	m := map[string]SQLFormat{}
	add := func(ct string, concat bool, names ...string) {
		for _, n := range names {
			m[strings.ToLower(n)] = SQLFormat{Name: n, ContentType: ct, Concatenable: concat}
		}
	}
	add(ctTSV, true, "TabSeparated", "TSV", "TabSeparatedRaw", "TSVRaw", "Raw")
	add(ctTSV, false, "TabSeparatedWithNames", "TSVWithNames", "TabSeparatedWithNamesAndTypes", "TSVWithNamesAndTypes",
		"TabSeparatedRawWithNames", "TSVRawWithNames", "TabSeparatedRawWithNamesAndTypes", "TSVRawWithNamesAndTypes")
	add(ctCSV, true, "CSV")
	add(ctCSVH, false, "CSVWithNames", "CSVWithNamesAndTypes")
	add(ctJSON, false, "JSON", "JSONStrings", "JSONCompact", "JSONCompactStrings", "JSONColumns", "JSONCompactColumns",
		"JSONColumnsWithMetadata", "JSONObjectEachRow", "JSONCompactEachRowWithNames", "JSONCompactEachRowWithNamesAndTypes",
		"JSONCompactStringsEachRowWithNames", "JSONCompactStringsEachRowWithNamesAndTypes")
	add(ctNDJSON, true, "JSONEachRow", "JSONLines", "NDJSON", "JSONStringsEachRow", "JSONCompactEachRow", "JSONCompactStringsEachRow")
	add(ctBinary, true, "Native", "RowBinary")
	add(ctBinary, false, "RowBinaryWithNames", "RowBinaryWithNamesAndTypes", "Parquet", "Arrow", "ArrowStream", "ORC", "Avro")
	add(ctText, true, "TSKV")
	add(ctText, false, "Values", "Pretty", "PrettyCompact", "PrettyCompactMonoBlock", "PrettySpace", "PrettyNoEscapes",
		"PrettyCompactNoEscapes", "PrettySpaceNoEscapes", "Vertical", "Markdown", "Null")
	add(ctXML, false, "XML")
	return m
}()

// AllowedSQLFormats lists the output formats analyst SQL may answer in, for documentation.
func AllowedSQLFormats() string {
	names := make([]string, 0, len(sqlFormats))
	for _, f := range sqlFormats {
		names = append(names, f.Name)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// LookupSQLFormat returns the allowed output format named name (any case), or a *FieldError
// naming format.
func LookupSQLFormat(name string) (SQLFormat, error) {
	f, ok := sqlFormats[strings.ToLower(name)]
	if !ok {
		shown := name
		if len(shown) > 100 {
			shown = strings.ToValidUTF8(shown[:100], "") + "…"
		}
		return SQLFormat{}, &FieldError{Field: "format", Reason: fmt.Sprintf("format %q is not an output format of analyst SQL (allowed: %s)", shown, AllowedSQLFormats())}
	}
	return f, nil
}

// trailingFormat is a FORMAT clause at the end of a canonical statement: formatQuerySingleLine
// writes it last, as FORMAT and the format's name. A string literal ends with its quote and a
// comment is gone, so neither can end so; an alias named FORMAT is written "AS FORMAT".
var trailingFormat = regexp.MustCompile(`(?i)\sFORMAT\s+([A-Za-z][A-Za-z0-9_]*)$`)

// leadingInsert is a statement that starts with INSERT, after blanks and comments.
var leadingInsert = regexp.MustCompile(`(?is)^(?:\s|--[^\n]*(?:\n|$)|#[^\n]*(?:\n|$)|/\*.*?\*/)*INSERT\b`)

// VetSQLFormat is VetSQL for a statement that may end with a FORMAT clause: it returns the
// canonical statement without the clause, vetted by VetSQL, and the output format — the
// clause's, or defaultFormat without one — which must be allowed (LookupSQLFormat). Several
// FORMAT clauses, one anywhere but at the end, INTO OUTFILE and SETTINGS are refused as
// VetSQL refuses them.
func VetSQLFormat(ctx context.Context, probe sqlQuerier, database, query, defaultFormat string) (string, SQLFormat, error) {
	if err := CheckSQLDatabase(database); err != nil {
		return "", SQLFormat{}, err
	}
	if strings.TrimSpace(query) == "" {
		return "", SQLFormat{}, &FieldError{Field: "query", Reason: "empty: want one SELECT"}
	}
	if leadingInsert.MatchString(query) {
		// Inline data (VALUES, FORMAT …) stops the parser before it says what the text is:
		// said here, so that clients show a write refused, not a syntax error.
		return "", SQLFormat{}, &FieldError{Field: "query", Reason: "INSERT is not allowed: " + sqlOnlySelect}
	}
	res, err := probe(ctx, SQLFormatProbe(query))
	if err != nil {
		return "", SQLFormat{}, probeError(err, "")
	}
	if len(res.Rows) != 1 || len(res.Rows[0]) != 1 {
		return "", SQLFormat{}, fmt.Errorf("cannot parse sql: the engine answered %d rows to formatQuerySingleLine", len(res.Rows))
	}
	canonical, _ := res.Rows[0][0].(string)
	name := defaultFormat
	if m := trailingFormat.FindStringSubmatchIndex(canonical); m != nil {
		name = canonical[m[2]:m[3]]
		canonical = strings.TrimRight(canonical[:m[0]], " ")
	}
	f, err := LookupSQLFormat(name)
	if err != nil {
		return "", SQLFormat{}, err
	}
	// VetSQL parses the text without the clause again: what runs is what it checked.
	stmt, err := VetSQL(ctx, probe, database, canonical)
	if err != nil {
		return "", SQLFormat{}, err
	}
	return stmt, f, nil
}

// SQLAnswer is an analyst answer in an output format: the engine's bytes, whole.
type SQLAnswer struct {
	Format SQLFormat
	Body   []byte
	Rows   int64 // rows of the answer
	// ReadRows and ReadBytes are what the statement read from tables (0 where the engine
	// does not say).
	ReadRows, ReadBytes int64
}

// SQLRefusal is what kind of refusal an analyst SQL error is, for an interface that speaks
// ClickHouse's error codes.
type SQLRefusal int

const (
	// RefusedOther is not a refusal of the statement: an engine error (its code is in the
	// text), a store failure, a cancellation.
	RefusedOther SQLRefusal = iota
	// RefusedReadOnly: the statement would write, change settings or is not a SELECT.
	RefusedReadOnly
	// RefusedAccess: it names a table, table function or function analyst SQL may not use.
	RefusedAccess
	// RefusedFormat: the output format is not allowed.
	RefusedFormat
	// RefusedResultSize: the answer is beyond --sql.max-result-rows or --sql.max-result-bytes.
	RefusedResultSize
	// RefusedBusy: --sql.max-concurrent queries already run.
	RefusedBusy
	// RefusedUnavailable: the store closed under it.
	RefusedUnavailable
	// RefusedDatabase: the database cannot be an analyst's.
	RefusedDatabase
)

// ClassifySQLError says what kind of refusal err, from VetSQLFormat, VetSQL or an adapter's
// analyst query, is. An error whose text holds the engine's code (a syntax error, a limit
// reached) is RefusedOther: its code says it.
func ClassifySQLError(err error) SQLRefusal {
	var fe *FieldError
	var busy *SQLBusyError
	switch {
	case errors.As(err, &busy):
		return RefusedBusy
	case errors.Is(err, ErrSQLUnavailable):
		return RefusedUnavailable
	case !errors.As(err, &fe):
		if strings.HasPrefix(err.Error(), "cannot run sql in database") {
			return RefusedDatabase
		}
		return RefusedOther
	case fe.Field == "format":
		return RefusedFormat
	case EngineErrorCode(err) != 0:
		return RefusedOther
	case strings.Contains(fe.Reason, sqlOnlySelect), strings.HasPrefix(fe.Reason, "SETTINGS are not allowed"),
		strings.HasPrefix(fe.Reason, "INTO OUTFILE and FORMAT"):
		return RefusedReadOnly
	case strings.Contains(fe.Reason, "(--sql.max-result-rows)"), strings.Contains(fe.Reason, "(--sql.max-result-bytes)"):
		return RefusedResultSize
	}
	return RefusedAccess
}
