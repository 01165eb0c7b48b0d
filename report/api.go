package report

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

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
	if s := qs.Get("site"); s != "" && s != a.Site {
		fail(w, http.StatusNotFound, schema.CodeNotFound, fmt.Sprintf("site %s is not served here (this is %s)", s, a.Site), "site")
		return
	}
	switch name := r.PathValue("name"); name {
	case "compliance":
		p := ComplianceParams{List: qs.Get("list"), Scope: Scope{Collection: qs.Get("collection")}, ExpiredCleanup: a.ExpiredCleanup}
		if u := qs.Get("updates"); u != "" {
			for _, id := range strings.Split(u, ",") {
				if id = strings.TrimSpace(id); id != "" {
					p.Updates = append(p.Updates, id)
				}
			}
		}
		switch qs.Get("source") {
		case "", "aggregates":
		case "scan":
			p.Scan = true
		default:
			fail(w, http.StatusBadRequest, schema.CodeMalformed, fmt.Sprintf("source %q: want aggregates (default) or scan", qs.Get("source")), "source")
			return
		}
		if p.List != "" && len(p.Updates) > 0 {
			fail(w, http.StatusBadRequest, schema.CodeMalformed, "give list or updates, not both", "updates")
			return
		}
		rep, err := ComplianceReport(r.Context(), a.Store, a.Database, a.Site, p)
		if err != nil {
			reportError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, rep)
	case "deployment", "errors", "scan", "computer", "update", "trend":
		rep, err := a.namedReport(r.Context(), name, qs)
		if err != nil {
			reportError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, rep)
	default:
		fail(w, http.StatusNotFound, schema.CodeNotFound, fmt.Sprintf("no report named %q (available: %s)", name, strings.Join(ReportNames, ", ")), "name")
	}
}

// ReportNames lists the reports GET /v1/reports/NAME serves.
var ReportNames = []string{"compliance", "deployment", "errors", "scan", "computer", "update", "trend"}

// namedReport computes one of the reports beside compliance from its query parameters
// (schema/README.md lists them); a malformed parameter is a ParamError naming it.
func (a *API) namedReport(ctx context.Context, name string, qs url.Values) (any, error) {
	scope := Scope{Collection: qs.Get("collection")}
	switch name {
	case "deployment":
		p := DeploymentParams{Deployment: qs.Get("deployment")}
		if qs.Has("state") {
			n, err := intParam(qs, "state")
			if err != nil {
				return nil, err
			}
			p.State = &n
		}
		return DeploymentReport(ctx, a.Store, a.Database, a.Site, p)
	case "errors":
		return ErrorsReport(ctx, a.Store, a.Database, a.Site, ErrorsParams{Deployment: qs.Get("deployment")})
	case "scan":
		p := ScanParams{Scope: scope}
		if qs.Has("days") {
			n, err := intParam(qs, "days")
			if err != nil {
				return nil, err
			}
			if n <= 0 {
				return nil, &ParamError{Field: "days", Message: "days must be a positive number of days"}
			}
			p.Days = n
		}
		return ScanReport(ctx, a.Store, a.Database, a.Site, p)
	case "computer":
		return ComputerReport(ctx, a.Store, a.Database, a.Site, ComputerParams{Client: qs.Get("client"),
			List: qs.Get("list"), Updates: idsParam(qs, "updates"), ExpiredCleanup: a.ExpiredCleanup})
	case "update":
		return UpdateReport(ctx, a.Store, a.Database, a.Site, UpdateParams{Update: qs.Get("update"), Scope: scope})
	case "trend":
		p := TrendParams{List: qs.Get("list"), Updates: idsParam(qs, "updates"), Scope: scope, ExpiredCleanup: a.ExpiredCleanup}
		var err error
		if p.From, err = timeParam(qs, "from"); err != nil {
			return nil, err
		}
		if p.To, err = timeParam(qs, "to"); err != nil {
			return nil, err
		}
		if s := qs.Get("step"); s != "" {
			if p.Step, err = time.ParseDuration(s); err != nil || p.Step < time.Millisecond {
				return nil, &ParamError{Field: "step", Message: fmt.Sprintf("step %q is not a duration of at least 1ms (e.g. 15m, 1h, 24h)", s)}
			}
		}
		return TrendReport(ctx, a.Store, a.Database, a.Site, p)
	}
	panic("BUG: no report " + name)
}

// idsParam splits a comma-separated parameter, dropping empty items.
func idsParam(qs url.Values, name string) []string {
	var ids []string
	for _, id := range strings.Split(qs.Get(name), ",") {
		if id = strings.TrimSpace(id); id != "" {
			ids = append(ids, id)
		}
	}
	return ids
}

func intParam(qs url.Values, name string) (int, error) {
	n, err := strconv.Atoi(qs.Get(name))
	if err != nil {
		return 0, &ParamError{Field: name, Message: fmt.Sprintf("%s %q is not an integer", name, qs.Get(name))}
	}
	return n, nil
}

// timeParam reads an RFC 3339 time; absent gives the zero time (the report's default).
func timeParam(qs url.Values, name string) (time.Time, error) {
	s := qs.Get(name)
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, &ParamError{Field: name, Message: fmt.Sprintf("%s %q is not an RFC 3339 time (e.g. 2026-11-25T21:00:00Z)", name, s)}
	}
	return t, nil
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
	fail(w, http.StatusServiceUnavailable, schema.CodeUnavailable, err.Error(), "")
}

// SQLRequest is the body of POST /v1/sql.
type SQLRequest struct {
	Query string `json:"query"`
}

func (a *API) sql(w http.ResponseWriter, r *http.Request) {
	var req SQLRequest
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err == nil {
		err = json.Unmarshal(body, &req)
	}
	if err != nil || strings.TrimSpace(req.Query) == "" {
		fail(w, http.StatusBadRequest, schema.CodeMalformed, `body must be {"query": "SELECT …"}`, "query")
		return
	}
	res, err := a.Store.QueryReadOnly(r.Context(), req.Query)
	if err != nil {
		var fe *schema.FieldError
		if errors.As(err, &fe) {
			fail(w, http.StatusBadRequest, schema.CodeMalformed, fe.Error(), "query")
			return
		}
		fail(w, http.StatusBadRequest, schema.CodeMalformed, err.Error(), "query")
		return
	}
	writeJSON(w, http.StatusOK, res)
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
