package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
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
}

// Register adds the API's routes to mux.
func (a *API) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/reports/{name}", a.report)
	mux.HandleFunc("POST /v1/sql", a.sql)
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
	default:
		fail(w, http.StatusNotFound, schema.CodeNotFound, fmt.Sprintf("no report named %q (available: compliance)", name), "name")
	}
}

// reportError answers a report's failure: 404 naming the parameter for something the site
// does not have, 503 for a store that did not answer.
func reportError(w http.ResponseWriter, err error) {
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
