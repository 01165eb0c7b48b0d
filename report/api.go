package report

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

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
	// Registerer takes the API's metrics (statepipe_report_*, statepipe_sql_*); nil: none.
	Registerer prometheus.Registerer
	// Hierarchy, for a site of a site hierarchy, makes its reports cover the sites below it
	// (tree.go); nil for a standalone site.
	Hierarchy *Hierarchy
	// Watermark returns the site's own watermark (every report accepted before it is folded)
	// and its records not folded yet; nil: unknown.
	Watermark func() (time.Time, int64)
	// Uplink returns the site's link to its parent as its replicator sees it; nil: no parent
	// (or the replicator runs in another process).
	Uplink func() Uplink
	// Pacing returns the site's pacing controller; nil: none in this process.
	Pacing func() *Pacing

	reports map[string]Definition
	metrics apiMetrics
}

// apiMetrics count report and SQL answers by outcome: "ok" or the error code of the answer
// (schema.CodeMalformed, CodeNotFound, CodeUnavailable).
type apiMetrics struct {
	reports       *prometheus.CounterVec   // report, code
	reportSeconds *prometheus.HistogramVec // report
	sql           *prometheus.CounterVec   // code
	sqlSeconds    prometheus.Histogram
}

// answerCodes are the outcomes the metrics are initialised with, so that alert rules can
// refer to them before the first such answer.
var answerCodes = []string{"ok", schema.CodeMalformed, schema.CodeNotFound, schema.CodeUnavailable}

// queryBuckets span a report answered from the aggregates (milliseconds) to an analyst query
// at its time limit (30 s).
var queryBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// Register adds the API's routes to mux, and (the first time) its metrics to Registerer.
func (a *API) Register(mux *http.ServeMux) {
	if a.reports == nil {
		a.init()
	}
	mux.HandleFunc("GET /v1/reports/{name}", a.report)
	var sql http.Handler = http.HandlerFunc(a.sql)
	if a.Guard != nil {
		sql = a.Guard(sql)
	}
	mux.Handle("POST /v1/sql", sql)
}

// init derives the routes' table from Reports and creates the metrics, every series at 0.
func (a *API) init() {
	a.reports = map[string]Definition{}
	for _, d := range Reports() {
		a.reports[d.Name] = d
	}
	a.metrics = apiMetrics{
		reports: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "statepipe_report_queries_total",
			Help: "Report requests (GET /v1/reports/NAME) by report and outcome (ok or the error code); report is \"\" for an unknown name."}, []string{"report", "code"}),
		reportSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "statepipe_report_query_seconds",
			Help: "Time to compute a report, by report (every outcome).", Buckets: queryBuckets}, []string{"report"}),
		sql: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "statepipe_sql_queries_total",
			Help: "Analyst SQL requests (POST /v1/sql) past authentication, by outcome (ok or the error code)."}, []string{"code"}),
		sqlSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "statepipe_sql_query_seconds",
			Help: "Time to answer an analyst SQL request (every outcome; the answer streams after it).", Buckets: queryBuckets}),
	}
	for _, code := range answerCodes {
		for name := range a.reports {
			a.metrics.reports.WithLabelValues(name, code)
		}
		a.metrics.reports.WithLabelValues("", code)
		a.metrics.sql.WithLabelValues(code)
	}
	for name := range a.reports {
		a.metrics.reportSeconds.WithLabelValues(name)
	}
	if a.Registerer != nil {
		a.Registerer.MustRegister(a.metrics.reports, a.metrics.reportSeconds, a.metrics.sql, a.metrics.sqlSeconds)
	}
}

// ParseQueryString reads a request's query string as url.ParseQuery does, but refuses what
// that would drop — a parameter after a ";", or with a malformed %-escape — with a
// *ParamError naming it: dropped silently, a filter would widen the answer unseen.
func ParseQueryString(raw string) (url.Values, error) {
	qs, err := url.ParseQuery(raw)
	if err == nil {
		return qs, nil
	}
	for _, part := range strings.Split(raw, "&") {
		key, value, _ := strings.Cut(part, "=")
		shown := key
		if k, kerr := url.QueryUnescape(key); kerr == nil {
			shown = k
		}
		shown = CellText(strings.ToValidUTF8(shown[:min(len(shown), 64)], ""))
		switch _, verr := url.QueryUnescape(value); {
		case strings.Contains(part, ";"):
			return nil, &ParamError{Field: shown, Message: fmt.Sprintf("parameter %s: a ';' in a query string is not a separator: use '&' between parameters, and write a ';' in a value as %%3B", shown)}
		case shown == key && strings.Contains(key, "%"):
			if _, kerr := url.QueryUnescape(key); kerr != nil {
				return nil, &ParamError{Field: shown, Message: fmt.Sprintf("parameter name %q: %v", shown, kerr)}
			}
		case verr != nil:
			return nil, &ParamError{Field: shown, Message: fmt.Sprintf("parameter %s: %v (write a '%%' in a value as %%25)", shown, verr)}
		}
	}
	return nil, &ParamError{Field: "query", Message: "the query string cannot be read: " + err.Error()}
}

func (a *API) report(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	name, code := a.serveReport(w, r)
	a.metrics.reports.WithLabelValues(name, code).Inc()
	if name != "" {
		a.metrics.reportSeconds.WithLabelValues(name).Observe(time.Since(start).Seconds())
	}
}

// serveReport answers GET /v1/reports/NAME, returning the report's name ("" for a name that
// is not a report's) and the outcome.
func (a *API) serveReport(w http.ResponseWriter, r *http.Request) (string, string) {
	name := r.PathValue("name")
	def, known := a.reports[name]
	if !known {
		name = ""
	}
	qs, err := ParseQueryString(r.URL.RawQuery)
	if err != nil {
		return name, reportError(w, err)
	}
	common, err := ParseArgs(commonParams, qs)
	if err != nil {
		return name, reportError(w, err)
	}
	start := time.Now()
	var tree *Tree
	if a.Hierarchy != nil {
		if tree, err = LoadTree(r.Context(), a.Store, a.Database, a.Site, common.ID("site"), a.Hierarchy, a.Watermark, time.Now()); err != nil {
			return name, reportError(w, err)
		}
	} else if s := common.ID("site"); s != "" && s != a.Site {
		return name, fail(w, http.StatusNotFound, schema.CodeNotFound, fmt.Sprintf("site %s is not served here (this is %s)", s, a.Site), "site")
	}
	switch wait := common.Word("wait"); wait {
	case "", "false":
	case "true":
		if tree, err = a.waitCounted(r.Context(), start, common.ID("site"), tree); err != nil {
			return name, reportError(w, err)
		}
	default:
		return name, fail(w, http.StatusBadRequest, schema.CodeMalformed, fmt.Sprintf("wait %q: want true or false", wait), "wait")
	}
	if !known {
		shown := r.PathValue("name")
		if len(shown) > 64 {
			shown = strings.ToValidUTF8(shown[:64], "") + "…"
		}
		return "", fail(w, http.StatusNotFound, schema.CodeNotFound, fmt.Sprintf("no report named %q (available: %s)", shown, strings.Join(ReportNames(), ", ")), "name")
	}
	args, err := def.ParseQuery(qs)
	if err != nil {
		return name, reportError(w, err)
	}
	rep, err := def.Run(r.Context(), Env{Store: a.Store, Database: a.Database, Site: a.Site, ExpiredCleanup: a.ExpiredCleanup, Tree: tree, Watermark: a.Watermark, Uplink: a.Uplink, Pacing: a.Pacing}, args)
	if err != nil {
		return name, reportError(w, err)
	}
	writeJSON(w, http.StatusOK, rep)
	return name, "ok"
}

// MaxReportWait bounds how long a report asked to wait (wait=true) waits.
const MaxReportWait = 30 * time.Second

// waitCounted waits until every site the answer counts — the site itself, and in a hierarchy
// the sites below whose link is not failed — has a watermark at or after since: everything
// accepted anywhere before the request is then in the answer. It returns the tree as it last
// read it (nil for a standalone site); past MaxReportWait or when the request ends it answers
// with what there is (the answer's sites show each watermark).
func (a *API) waitCounted(ctx context.Context, since time.Time, top string, tree *Tree) (*Tree, error) {
	ctx, cancel := context.WithTimeout(ctx, MaxReportWait)
	defer cancel()
	for {
		behind := false
		if tree != nil {
			for _, s := range tree.Sites {
				if s.LinkState != LinkFailed && (s.Watermark == nil || s.Watermark.Before(since)) {
					behind = true
				}
			}
		} else if a.Watermark != nil {
			wm, _ := a.Watermark()
			behind = wm.Before(since)
		}
		if !behind {
			return tree, nil
		}
		select {
		case <-ctx.Done():
			return tree, nil
		case <-time.After(100 * time.Millisecond):
		}
		if tree != nil {
			var err error
			if tree, err = LoadTree(ctx, a.Store, a.Database, a.Site, top, a.Hierarchy, a.Watermark, time.Now()); err != nil {
				if ctx.Err() != nil {
					return nil, fmt.Errorf("cannot read the sites below: %w", ctx.Err())
				}
				return nil, err
			}
		}
	}
}

// reportError answers a report's failure: 400 naming a malformed or missing parameter, 404
// naming the parameter for something the site does not have, 503 for a store that did not
// answer. It returns the answer's error code.
func reportError(w http.ResponseWriter, err error) string {
	var pe *ParamError
	if errors.As(err, &pe) {
		return fail(w, http.StatusBadRequest, schema.CodeMalformed, pe.Message, pe.Field)
	}
	var nf *NotFoundError
	if errors.As(err, &nf) {
		return fail(w, http.StatusNotFound, schema.CodeNotFound, nf.Message, nf.Field)
	}
	return fail(w, http.StatusServiceUnavailable, schema.CodeUnavailable, clip(err.Error()), "")
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

// SQLRequest is the JSON body of POST /v1/sql; a body that is not JSON is the query itself
// (SQLQuery).
type SQLRequest struct {
	Query string `json:"query"`
}

// MaxSQLBytes bounds the body of POST /v1/sql.
const MaxSQLBytes = 1 << 20

func (a *API) sql(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	code := a.serveSQL(w, r)
	a.metrics.sql.WithLabelValues(code).Inc()
	a.metrics.sqlSeconds.Observe(time.Since(start).Seconds())
}

// serveSQL answers POST /v1/sql, returning the outcome.
func (a *API) serveSQL(w http.ResponseWriter, r *http.Request) string {
	// SQL runs in this site's database: a site= naming another is refused, not ignored (a
	// listener serving several sites routes site= to that site's before this).
	switch sites := r.URL.Query()["site"]; {
	case len(sites) > 1:
		return fail(w, http.StatusBadRequest, schema.CodeMalformed, "site is given more than once", "site")
	case len(sites) == 1 && sites[0] != "" && sites[0] != a.Site:
		return fail(w, http.StatusNotFound, schema.CodeNotFound, fmt.Sprintf("site %s is not served here (this is %s): SQL runs in the database of the site that answers", clip(sites[0]), a.Site), "site")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxSQLBytes))
	if err != nil {
		return fail(w, http.StatusBadRequest, schema.CodeMalformed, "cannot read the body (at most 1 MiB): "+clip(err.Error()), "query")
	}
	query, err := SQLQuery(r.Header.Get("Content-Type"), body)
	if err != nil {
		return fail(w, http.StatusBadRequest, schema.CodeMalformed, err.Error(), "query")
	}
	res, err := a.Store.QueryReadOnly(r.Context(), a.Database, query)
	if err != nil {
		return sqlError(w, err)
	}
	writeSQLResult(w, res)
	return "ok"
}

// SQLQuery reads the statement of a POST /v1/sql body: {"query": "SELECT …"} when the body is
// JSON (Content-Type application/json, or none that says text and a body starting with {),
// otherwise the body itself (text/plain, or curl's default form type: curl -d 'SELECT 1').
func SQLQuery(contentType string, body []byte) (string, error) {
	if !utf8.Valid(body) {
		// encoding/json would replace the bytes with U+FFFD: the query run would not be the one sent.
		return "", errors.New("the body is not valid UTF-8")
	}
	media, _, _ := mime.ParseMediaType(contentType)
	isJSON := media == "application/json" ||
		(media != "text/plain" && bytes.HasPrefix(bytes.TrimLeft(body, " \t\r\n"), []byte("{")))
	query := string(body)
	if isJSON {
		var req SQLRequest
		if err := json.Unmarshal(body, &req); err != nil {
			return "", errors.New(`a JSON body must be {"query": "SELECT …"}; or send the statement as text (Content-Type: text/plain)`)
		}
		query = req.Query
	}
	if strings.TrimSpace(query) == "" {
		return "", errors.New(`empty: send one SELECT as text (Content-Type: text/plain) or as {"query": "SELECT …"} (at most 1 MiB)`)
	}
	return query, nil
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
func sqlError(w http.ResponseWriter, err error) string {
	var busy *schema.SQLBusyError
	var fe *schema.FieldError
	switch {
	case errors.As(err, &busy):
		w.Header().Set("Retry-After", strconv.Itoa(int(schema.SQLRetryAfter.Seconds())))
		return fail(w, http.StatusServiceUnavailable, schema.CodeUnavailable, busy.Error(), "")
	case errors.As(err, &fe):
		return fail(w, http.StatusBadRequest, schema.CodeMalformed, fe.Reason, "query")
	case errors.Is(err, schema.ErrSQLUnavailable), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		w.Header().Set("Retry-After", strconv.Itoa(int(schema.SQLRetryAfter.Seconds())))
		return fail(w, http.StatusServiceUnavailable, schema.CodeUnavailable, clip(err.Error()), "")
	default:
		return fail(w, http.StatusBadRequest, schema.CodeMalformed, clip(err.Error()), "query")
	}
}

// fail writes an error answer and returns its code.
func fail(w http.ResponseWriter, status int, code, msg, field string) string {
	writeJSON(w, status, schema.ErrorBody{Error: schema.ErrorDetail{Code: code, Message: msg, Field: field}})
	return code
}

// WriteJSON writes v as an indented JSON answer with status.
func WriteJSON(w http.ResponseWriter, status int, v any) { writeJSON(w, status, v) }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
