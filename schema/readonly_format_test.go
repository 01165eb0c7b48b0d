package schema

import (
	"context"
	"errors"
	"testing"
)

func TestTrailingFormat(t *testing.T) {
	for canonical, want := range map[string]string{
		"SELECT 1 FORMAT JSON":                       "JSON",
		"SELECT 1 AS FORMAT":                         "",
		"SELECT 'x FORMAT JSON'":                     "",
		"SELECT FORMAT AS JSON":                      "",
		"SELECT 1 FORMAT JSONEachRow":                "JSONEachRow",
		"SELECT 1 SETTINGS a = 1 FORMAT TSV":         "TSV",
		"SELECT 1 FORMAT JSON SETTINGS readonly = 0": "",
	} {
		got := ""
		if m := trailingFormat.FindStringSubmatch(canonical); m != nil {
			got = m[1]
		}
		if got != want {
			t.Errorf("%q: format %q, want %q", canonical, got, want)
		}
	}
}

func TestLookupSQLFormat(t *testing.T) {
	for name, want := range map[string]string{"json": "JSON", "TSV": "TSV", "jsoneachrow": "JSONEachRow", "Parquet": "Parquet"} {
		if f, err := LookupSQLFormat(name); err != nil || f.Name != want {
			t.Errorf("%s: %+v %v", name, f, err)
		}
	}
	for _, name := range []string{"Template", "CapnProto", "Protobuf", "LineAsString", ""} {
		var fe *FieldError
		if _, err := LookupSQLFormat(name); !errors.As(err, &fe) || fe.Field != "format" || ClassifySQLError(err) != RefusedFormat {
			t.Errorf("%s: %v, want a refusal naming format", name, err)
		}
	}
}

func TestLeadingInsertIsRefusedBeforeTheParser(t *testing.T) {
	probe := func(context.Context, string) (*Result, error) { t.Fatal("the parser was asked"); return nil, nil }
	for _, q := range []string{"INSERT INTO t VALUES (1)", " -- c\n/* d */ insert into t FORMAT TSV\n1", "# c\nInsert INTO t"} {
		if _, _, err := VetSQLFormat(context.Background(), probe, "statepipe_p01", q, "TSV"); ClassifySQLError(err) != RefusedReadOnly {
			t.Errorf("%q: %v, want a read-only refusal", q, err)
		}
	}
}

func TestClassifySQLError(t *testing.T) {
	for err, want := range map[error]SQLRefusal{
		&FieldError{Field: "query", Reason: "SET readonly is not allowed: " + sqlOnlySelect}:                      RefusedReadOnly,
		&FieldError{Field: "query", Reason: "SETTINGS are not allowed in analyst SQL: its limits are the site's"}: RefusedReadOnly,
		&FieldError{Field: "query", Reason: "table function file is not allowed in analyst SQL"}:                  RefusedAccess,
		SQLResultError(10, 0, SQLLimits{MaxConcurrent: 1, MaxResultRows: 5}):                                      RefusedResultSize,
		&FieldError{Field: "query", Reason: "Code: 62. DB::Exception: Syntax error"}:                              RefusedOther,
		&SQLBusyError{Running: 2}:                                  RefusedBusy,
		CheckSQLDatabase("system"):                                 RefusedDatabase,
		errors.New("cannot run sql: " + ErrSQLUnavailable.Error()): RefusedOther,
	} {
		if got := ClassifySQLError(err); got != want {
			t.Errorf("%v: %d, want %d", err, got, want)
		}
	}
}
