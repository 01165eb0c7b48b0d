package chdb

import (
	"context"
	"strings"

	"github.com/statepipe/statepipe/schema"
)

// QueryReadOnly runs one user-supplied read statement. chDB has one session per process, so
// the readonly setting cannot be fixed for a connection as it is on a server. Instead a
// SELECT (or WITH … SELECT) is wrapped as a subquery of SELECT * … SETTINGS readonly = 1:
// the engine then refuses writes, INTO OUTFILE (not valid in a subquery), table functions
// that read files or URLs. A SETTINGS clause in the user's text is refused: inside the
// subquery it would override readonly. SHOW, DESCRIBE and EXISTS are
// allowed only without parentheses (no table functions). Anything else is refused.
func (st *Store) QueryReadOnly(ctx context.Context, query string) (*schema.Result, error) {
	q := strings.TrimSpace(query)
	q = strings.TrimSpace(strings.TrimSuffix(q, ";"))
	if strings.Contains(q, ";") {
		return nil, &schema.FieldError{Field: "query", Reason: "one statement only (found ';')"}
	}
	fields := strings.Fields(q)
	if len(fields) == 0 {
		return nil, &schema.FieldError{Field: "query", Reason: "empty"}
	}
	first := strings.ToUpper(strings.SplitN(fields[0], "(", 2)[0])
	// A SETTINGS clause inside the subquery overrides the outer readonly = 1 (chDB ran
	// "SELECT * FROM file(…) SETTINGS readonly = 0"), so user queries carry no settings.
	if upper := strings.ToUpper(q); strings.Contains(upper, "SETTINGS") || strings.Contains(upper, "READONLY") {
		return nil, &schema.FieldError{Field: "query", Reason: "SETTINGS are not allowed in read-only SQL"}
	}
	switch first {
	case "SELECT", "WITH":
		return st.Query(ctx, "SELECT * FROM (\n"+q+"\n) SETTINGS readonly = 1")
	case "SHOW", "DESCRIBE", "DESC", "EXISTS":
		if strings.ContainsAny(q, "()") {
			return nil, &schema.FieldError{Field: "query", Reason: first + " with parentheses is not allowed in read-only SQL"}
		}
		return st.Query(ctx, q)
	}
	return nil, &schema.FieldError{Field: "query", Reason: first + " is not allowed: read-only SQL (SELECT, WITH, SHOW, DESCRIBE, EXISTS)"}
}
