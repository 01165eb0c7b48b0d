package chdb

import (
	"context"
	"strings"

	"github.com/statepipe/statepipe/schema"
)

// readOnlyFirstWords are the statements `statepipe sql` may run.
var readOnlyFirstWords = map[string]bool{"SELECT": true, "WITH": true, "SHOW": true, "DESCRIBE": true, "DESC": true, "EXPLAIN": true, "EXISTS": true}

// QueryReadOnly runs one user-supplied read statement. chDB has one session per process, so
// the readonly setting cannot be fixed for a connection as it is on a server; instead the
// statement must be a single read (no ';' before its end, first word a read verb) and is sent
// with readonly=1 for the engine to enforce when it ends in a plain SELECT.
func (st *Store) QueryReadOnly(ctx context.Context, query string) (*schema.Result, error) {
	q := strings.TrimSpace(query)
	q = strings.TrimSpace(strings.TrimSuffix(q, ";"))
	if strings.Contains(q, ";") {
		return nil, &schema.FieldError{Field: "query", Reason: "one statement only (found ';')"}
	}
	first := strings.ToUpper(strings.SplitN(strings.Fields(q + " x")[0], "(", 2)[0])
	if !readOnlyFirstWords[first] {
		return nil, &schema.FieldError{Field: "query", Reason: first + " is not allowed: read-only SQL (SELECT, WITH, SHOW, DESCRIBE, EXPLAIN, EXISTS)"}
	}
	upper := strings.ToUpper(q)
	for _, bad := range []string{"INTO OUTFILE", "SETTINGS READONLY"} {
		if strings.Contains(upper, bad) {
			return nil, &schema.FieldError{Field: "query", Reason: bad + " is not allowed in read-only SQL"}
		}
	}
	if (first == "SELECT" || first == "WITH") && !strings.Contains(upper, " FORMAT ") && !strings.Contains(upper, "SETTINGS") {
		q += "\nSETTINGS readonly = 1"
	}
	return st.Query(ctx, q)
}
