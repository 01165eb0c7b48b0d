package report

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/statepipe/statepipe/schema"
)

// Store is what the API needs of a site's store.
type Store interface {
	Querier
	ReadOnlyQuerier
}

// API serves one site's reports and SQL.
type API struct {
	Site     string
	Database string
	Store    Store
	// ExpiredCleanup is how long an expired update stays in reports (default 7 days).
	ExpiredCleanup time.Duration
	// Guard wraps POST /v1/sql (administrator authentication); nil leaves it open.
	Guard func(http.Handler) http.Handler
}

// Register adds the API's routes to mux.
func (a *API) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/reports/{name}", a.report)
	var sql http.Handler = http.HandlerFunc(a.sql)
	if a.Guard != nil {
		sql = a.Guard(sql)
	}
	mux.Handle("POST /v1/sql", sql)
}

func (a *API) report(w http.ResponseWriter, r *http.Request) {
	qs := r.URL.Query()
	pr := &params{qs: qs}
	if s := pr.id("site"); pr.err == nil && s != "" && s != a.Site {
		fail(w, http.StatusNotFound, schema.CodeNotFound, fmt.Sprintf("site %s is not served here (this is %s)", s, a.Site), "site")
		return
	}
	if pr.err != nil {
		reportError(w, pr.err)
		return
	}
	name := r.PathValue("name")
	if !slices.Contains(ReportNames, name) {
		if len(name) > 64 {
			name = name[:64] + "…"
		}
		fail(w, http.StatusNotFound, schema.CodeNotFound, fmt.Sprintf("no report named %q (available: %s)", name, strings.Join(ReportNames, ", ")), "name")
		return
	}
	rep, err := a.namedReport(r.Context(), name, pr)
	if err != nil {
		reportError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

// ReportNames lists the reports GET /v1/reports/NAME serves.
var ReportNames = []string{"compliance", "deployment", "errors", "scan", "computer", "update", "trend"}

// Bounds of report parameters. Every parameter is judged before any query runs, and a bad
// one is answered 400 naming it.
const (
	// MaxParamBytes bounds an id (a list, collection, deployment, client or update id, and
	// each id of updates=): what ingest and the reference imports accept
	// (schema.DefaultLimits.MaxIDBytes).
	MaxParamBytes = 128
	// MaxReportIDs bounds the ids of updates=. Larger sets are update lists: import one
	// (statepipe lists apply) and pass list=. 20,000 ids once made a query the engine refused
	// ("Max query size exceeded", answered 503).
	MaxReportIDs = 1000
)

// Bounds of trend's from and to: the times its queries can express.
var (
	minReportTime = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)
	maxReportTime = time.Date(2261, 12, 31, 23, 59, 59, 0, time.UTC)
)

// namedReport computes a report from its query parameters (schema/README.md lists them); a
// malformed parameter is a ParamError naming it.
func (a *API) namedReport(ctx context.Context, name string, pr *params) (any, error) {
	scope := Scope{Collection: pr.id("collection")}
	switch name {
	case "compliance":
		p := ComplianceParams{List: pr.id("list"), Updates: pr.ids("updates"), Scope: scope, ExpiredCleanup: a.ExpiredCleanup}
		switch src := pr.word("source"); src {
		case "", "aggregates":
		case "scan":
			p.Scan = true
		default:
			pr.bad("source", fmt.Sprintf("source %q: want aggregates (default) or scan", src))
		}
		if pr.err == nil && p.List != "" && len(p.Updates) > 0 {
			pr.bad("updates", "give list or updates, not both")
		}
		if pr.err != nil {
			return nil, pr.err
		}
		return ComplianceReport(ctx, a.Store, a.Database, a.Site, p)
	case "deployment":
		p := DeploymentParams{Deployment: pr.id("deployment")}
		if pr.has("state") {
			n := pr.int("state", 0, 1<<20)
			p.State = &n
		}
		if pr.err != nil {
			return nil, pr.err
		}
		return DeploymentReport(ctx, a.Store, a.Database, a.Site, p)
	case "errors":
		p := ErrorsParams{Deployment: pr.id("deployment")}
		if pr.err != nil {
			return nil, pr.err
		}
		return ErrorsReport(ctx, a.Store, a.Database, a.Site, p)
	case "scan":
		p := ScanParams{Scope: scope}
		if pr.has("days") {
			p.Days = pr.int("days", 1, 36500)
		}
		if pr.err != nil {
			return nil, pr.err
		}
		return ScanReport(ctx, a.Store, a.Database, a.Site, p)
	case "computer":
		p := ComputerParams{Client: pr.id("client"), List: pr.id("list"), Updates: pr.ids("updates"), ExpiredCleanup: a.ExpiredCleanup}
		if pr.err != nil {
			return nil, pr.err
		}
		return ComputerReport(ctx, a.Store, a.Database, a.Site, p)
	case "update":
		p := UpdateParams{Update: pr.id("update"), Scope: scope}
		if pr.err != nil {
			return nil, pr.err
		}
		return UpdateReport(ctx, a.Store, a.Database, a.Site, p)
	case "trend":
		p := TrendParams{List: pr.id("list"), Updates: pr.ids("updates"), Scope: scope, ExpiredCleanup: a.ExpiredCleanup,
			From: pr.time("from"), To: pr.time("to")}
		if s := pr.word("step"); s != "" && pr.err == nil {
			var err error
			if p.Step, err = time.ParseDuration(s); err != nil || p.Step < time.Millisecond {
				pr.bad("step", fmt.Sprintf("step %q is not a duration of at least 1ms (e.g. 15m, 1h, 24h)", s))
			}
		}
		if pr.err != nil {
			return nil, pr.err
		}
		return TrendReport(ctx, a.Store, a.Database, a.Site, p)
	}
	panic("BUG: no report " + name)
}

// params reads a report's query parameters, keeping the first problem as a ParamError naming
// the parameter; reads after it return zero values.
type params struct {
	qs  url.Values
	err error
}

func (p *params) bad(name, msg string) {
	if p.err == nil {
		p.err = &ParamError{Field: name, Message: msg}
	}
}

func (p *params) has(name string) bool { return p.qs.Has(name) }

// raw returns the parameter's value, refusing more than one value (which one counts would be
// a guess), invalid UTF-8 and control characters.
func (p *params) raw(name string, maxBytes int) string {
	vs := p.qs[name]
	switch {
	case p.err != nil || len(vs) == 0:
		return ""
	case len(vs) > 1:
		p.bad(name, fmt.Sprintf("%s is given %d times; give it once", name, len(vs)))
		return ""
	}
	v := vs[0]
	if len(v) > maxBytes {
		p.bad(name, fmt.Sprintf("%s is %d bytes long; at most %d", name, len(v), maxBytes))
		return ""
	}
	if !utf8.ValidString(v) {
		p.bad(name, name+" is not valid UTF-8")
		return ""
	}
	for i, c := range v {
		if c < 0x20 || (c >= 0x7f && c < 0xa0) {
			p.bad(name, fmt.Sprintf("%s holds the control character U+%04X at byte %d", name, c, i))
			return ""
		}
	}
	return v
}

// id reads one id (at most MaxParamBytes).
func (p *params) id(name string) string { return p.raw(name, MaxParamBytes) }

// word reads a short non-id value (a duration, a source).
func (p *params) word(name string) string { return p.raw(name, 64) }

// ids reads comma-separated ids, dropping empty items: at most MaxReportIDs, each at most
// MaxParamBytes.
func (p *params) ids(name string) []string {
	if v := p.qs.Get(name); len(v) > MaxReportIDs*(MaxParamBytes+1) {
		p.bad(name, fmt.Sprintf("%s is %d bytes long: more than %d ids of at most %d bytes; import an update list (statepipe lists apply) and pass list= instead", name, len(v), MaxReportIDs, MaxParamBytes))
		return nil
	}
	s := p.raw(name, MaxReportIDs*(MaxParamBytes+1))
	if s == "" {
		return nil
	}
	var ids []string
	for i, id := range strings.Split(s, ",") {
		id = strings.TrimSpace(id)
		switch {
		case id == "":
			continue
		case len(id) > MaxParamBytes:
			p.bad(name, fmt.Sprintf("id %d of %s is %d bytes long; at most %d", i+1, name, len(id), MaxParamBytes))
			return nil
		case len(ids) == MaxReportIDs:
			p.bad(name, fmt.Sprintf("%s holds more than %d ids; import an update list (statepipe lists apply) and pass list= instead", name, MaxReportIDs))
			return nil
		}
		ids = append(ids, id)
	}
	return ids
}

// int reads an integer in [lo, hi].
func (p *params) int(name string, lo, hi int) int {
	s := p.word(name)
	if p.err != nil {
		return 0
	}
	n, err := strconv.Atoi(s)
	switch {
	case err != nil:
		p.bad(name, fmt.Sprintf("%s %q is not an integer", name, s))
	case n < lo || n > hi:
		p.bad(name, fmt.Sprintf("%s must be from %d to %d (got %d)", name, lo, hi, n))
	}
	return n
}

// time reads an RFC 3339 time between 1970 and 2261; absent gives the zero time (the
// report's default).
func (p *params) time(name string) time.Time {
	s := p.word(name)
	if s == "" || p.err != nil {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339, s)
	switch {
	case err != nil:
		p.bad(name, fmt.Sprintf("%s %q is not an RFC 3339 time (e.g. 2026-11-25T21:00:00Z)", name, s))
	case t.Before(minReportTime) || t.After(maxReportTime):
		p.bad(name, fmt.Sprintf("%s %q is outside 1970 to 2261", name, s))
	}
	return t
}

// reportError answers a report's failure: 400 naming a malformed or missing parameter, 404
// naming the parameter for something the site does not have, 503 for a store that did not
// answer.
func reportError(w http.ResponseWriter, err error) {
	var pe *ParamError
	if errors.As(err, &pe) {
		fail(w, http.StatusBadRequest, schema.CodeMalformed, pe.Message, pe.Field)
		return
	}
	var nf *NotFoundError
	if errors.As(err, &nf) {
		fail(w, http.StatusNotFound, schema.CodeNotFound, nf.Message, nf.Field)
		return
	}
	fail(w, http.StatusServiceUnavailable, schema.CodeUnavailable, clip(err.Error()), "")
}

// clip bounds an error message passed on to a client: an engine's message may quote a whole
// query.
func clip(msg string) string {
	const max = 2000
	if len(msg) <= max {
		return msg
	}
	return strings.ToValidUTF8(msg[:max], "") + " …"
}

// SQLRequest is the body of POST /v1/sql.
type SQLRequest struct {
	Query string `json:"query"`
}

// MaxSQLBytes bounds the body of POST /v1/sql.
const MaxSQLBytes = 1 << 20

func (a *API) sql(w http.ResponseWriter, r *http.Request) {
	var req SQLRequest
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxSQLBytes))
	if err == nil && !utf8.Valid(body) {
		// encoding/json would replace the bytes with U+FFFD: the query run would not be the one sent.
		fail(w, http.StatusBadRequest, schema.CodeMalformed, "the body is not valid UTF-8", "query")
		return
	}
	if err == nil {
		err = json.Unmarshal(body, &req)
	}
	if err != nil || strings.TrimSpace(req.Query) == "" {
		fail(w, http.StatusBadRequest, schema.CodeMalformed, `body must be {"query": "SELECT …"} (at most 1 MiB)`, "query")
		return
	}
	res, err := a.Store.QueryReadOnly(r.Context(), a.Database, req.Query)
	if err != nil {
		sqlError(w, err)
		return
	}
	writeSQLResult(w, res)
}

// writeSQLResult writes an analyst answer row by row: its JSON is never held whole (the
// answer itself is bounded by --sql.max-result-bytes; its JSON, indented, was several times
// that). Floats that JSON cannot hold (NaN, ±Inf) are written as null.
func writeSQLResult(w http.ResponseWriter, res *schema.Result) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	cols, err := json.Marshal(res.Columns)
	if err != nil {
		panic(http.ErrAbortHandler) // cannot happen: names and types are strings
	}
	buf := make([]byte, 0, 4096)
	buf = append(append(append(buf, `{"columns": `...), cols...), ",\n \"rows\": ["...)
	for i, row := range res.Rows {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = appendSQLRow(append(buf, "\n  "...), row)
		if len(buf) >= 32<<10 {
			if _, err := w.Write(buf); err != nil {
				return // the client went away or was too slow: the connection is cut
			}
			buf = buf[:0]
		}
	}
	if len(res.Rows) > 0 {
		buf = append(buf, "\n "...)
	}
	_, _ = w.Write(append(buf, "]}\n"...))
}

// appendSQLRow appends row as a JSON array. Its values are schema.Result's: nil, string,
// int64, uint64, float64, bool, []any.
func appendSQLRow(b []byte, row []any) []byte {
	b = append(b, '[')
	for i, v := range row {
		if i > 0 {
			b = append(b, ", "...)
		}
		switch x := v.(type) {
		case nil:
			b = append(b, "null"...)
		case string:
			b = appendJSONString(b, x)
		case int64:
			b = strconv.AppendInt(b, x, 10)
		case uint64:
			b = strconv.AppendUint(b, x, 10)
		case float64:
			if math.IsNaN(x) || math.IsInf(x, 0) {
				b = append(b, "null"...)
			} else {
				j, _ := json.Marshal(x) // as encoding/json writes it
				b = append(b, j...)
			}
		case bool:
			b = strconv.AppendBool(b, x)
		case []any:
			b = appendSQLRow(b, x)
		default:
			j, err := json.Marshal(x)
			if err != nil {
				j = []byte("null")
			}
			b = append(b, j...)
		}
	}
	return append(b, ']')
}

// appendJSONString appends s as encoding/json writes it (HTML-safe, invalid UTF-8 replaced).
func appendJSONString(b []byte, s string) []byte {
	j, _ := json.Marshal(s) // a string always marshals
	return append(b, j...)
}

// sqlError answers a failed analyst query: 503 with Retry-After when every analyst slot is
// taken (--sql.max-concurrent) or the store is closing; otherwise 400 naming query — a
// statement refused, a limit reached (named, with its flag), or the engine's own refusal
// (unknown table, syntax): the request is what has to change, and retrying it as it is would
// only hit the same wall.
func sqlError(w http.ResponseWriter, err error) {
	var busy *schema.SQLBusyError
	var fe *schema.FieldError
	switch {
	case errors.As(err, &busy):
		w.Header().Set("Retry-After", strconv.Itoa(int(schema.SQLRetryAfter.Seconds())))
		fail(w, http.StatusServiceUnavailable, schema.CodeUnavailable, busy.Error(), "")
	case errors.As(err, &fe):
		fail(w, http.StatusBadRequest, schema.CodeMalformed, fe.Reason, "query")
	case errors.Is(err, schema.ErrSQLUnavailable), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		w.Header().Set("Retry-After", strconv.Itoa(int(schema.SQLRetryAfter.Seconds())))
		fail(w, http.StatusServiceUnavailable, schema.CodeUnavailable, clip(err.Error()), "")
	default:
		fail(w, http.StatusBadRequest, schema.CodeMalformed, clip(err.Error()), "query")
	}
}

func fail(w http.ResponseWriter, status int, code, msg, field string) {
	writeJSON(w, status, schema.ErrorBody{Error: schema.ErrorDetail{Code: code, Message: msg, Field: field}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
