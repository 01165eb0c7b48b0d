package main

import (
	"encoding/json"
	"net/http"

	"github.com/statepipe/statepipe/ingest"
	"github.com/statepipe/statepipe/report"
	"github.com/statepipe/statepipe/schema"
)

// roles are the kinds of callers a site's HTTP surface serves and the bearer token of each:
//
//	admin   reference data, resync, revoke — and everything else (its token is accepted everywhere)
//	reader  reports (/v1/reports/*), SQL (/v1/sql) and /metrics: managers, analysts, Grafana, Prometheus
//	enroll  POST /v1/enroll (--ingest.enroll-token, checked by ingest)
//	agents  POST /v1/reports, authenticated by their signatures, not by a token
//
// A role whose token is empty is open, except SQL, which falls back to the admin token when no
// reader token is set (analyst SQL was an administrator's tool before readers had a token).
type roles struct {
	admin, reader token
}

// token is one role's bearer token; empty: open.
type token string

// guard requires t on h; an empty t leaves h open.
func (t token) guard(h http.Handler) http.Handler { return requireAny(h, string(t)) }

// readers guards reports and metrics: the reader or the admin token when a reader token is
// set, open otherwise.
func (r roles) readers(h http.Handler) http.Handler {
	if r.reader == "" {
		return h
	}
	return requireAny(h, string(r.reader), string(r.admin))
}

// analysts guards SQL: the reader or the admin token; the admin token alone when no reader
// token is set.
func (r roles) analysts(h http.Handler) http.Handler {
	if r.reader == "" {
		return r.admin.guard(h)
	}
	return requireAny(h, string(r.reader), string(r.admin))
}

// requireAny answers 401 unless the request carries one of the non-empty tokens as
// Authorization: Bearer; with no non-empty token h is open.
func requireAny(h http.Handler, tokens ...string) http.Handler {
	var set []string
	for _, t := range tokens {
		if t != "" {
			set = append(set, t)
		}
	}
	if len(set) == 0 {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, t := range set {
			if ingest.BearerIs(r, t) {
				h.ServeHTTP(w, r)
				return
			}
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="statepipe"`)
		writeAPIError(w, http.StatusUnauthorized, schema.CodeUnauthenticated, "this endpoint needs a token (Authorization: Bearer): "+r.URL.Path, "Authorization")
	})
}

// querySites returns the request's site= values, read as the reports read their parameters
// (report.ParseQueryString): a query string net/url would cut short — a ';', a bad %-escape —
// answers 400 naming the parameter (and false), rather than be read as if site= were absent
// and so act for the site answering.
func querySites(w http.ResponseWriter, r *http.Request) ([]string, bool) {
	qs, err := report.ParseQueryString(r.URL.RawQuery)
	if err != nil {
		field := "query"
		if pe, ok := err.(*report.ParamError); ok {
			field = pe.Field
		}
		writeAPIError(w, http.StatusBadRequest, schema.CodeMalformed, err.Error(), field)
		return nil, false
	}
	return qs["site"], true
}

func writeAPIError(w http.ResponseWriter, status int, code, msg, field string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(schema.ErrorBody{Error: schema.ErrorDetail{Code: code, Message: msg, Field: field}})
}
