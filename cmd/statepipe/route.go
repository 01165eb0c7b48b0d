package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"

	"github.com/statepipe/statepipe/schema"
)

// siteRouter serves every site of an embedded topology on one listener. A request goes to
// the site it names: a report by its own site field, an enrolment (and a resync) by the site
// in its body, everything else — reference-data imports, report queries, SQL, revocations —
// by the site= query parameter; the root when none is named. Each site answers as it would on
// a listener of its own: the router only picks the site.
type siteRouter struct {
	root    string
	codes   []string // in topology order
	sites   map[string]http.Handler
	maxBody int64 // the largest report body read to find its site
}

func newSiteRouter(root string) *siteRouter {
	return &siteRouter{root: root, sites: map[string]http.Handler{}}
}

// add routes requests for site code to h.
func (rt *siteRouter) add(code string, h http.Handler) {
	rt.codes = append(rt.codes, code)
	rt.sites[code] = h
}

// register installs the router's routes on mux.
func (rt *siteRouter) register(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/reports", rt.byBody(func(ct string, body []byte) string {
		var rep schema.Report
		var err error
		if isJSON(ct) {
			err = schema.DecodeReportJSON(body, &rep, schema.DefaultLimits)
		} else {
			err = schema.DecodeReport(body, &rep)
		}
		if err != nil {
			return "" // the root site answers why it is malformed
		}
		return rep.Site
	}))
	jsonSite := func(_ string, body []byte) string {
		var req struct {
			Site string `json:"site"`
		}
		if json.Unmarshal(body, &req) != nil {
			return ""
		}
		return req.Site
	}
	mux.HandleFunc("POST /v1/enroll", rt.byBody(jsonSite))
	mux.HandleFunc("POST /v1/resync", rt.byBody(jsonSite))
	for _, pattern := range []string{"POST /v1/ref/{kind}", "POST /v1/revoke", "GET /v1/reports/{name}", "POST /v1/sql"} {
		mux.HandleFunc(pattern, rt.byParam)
	}
}

// byParam routes by the site= query parameter (the root without one).
func (rt *siteRouter) byParam(w http.ResponseWriter, r *http.Request) {
	code := r.URL.Query().Get("site")
	if code == "" {
		code = rt.root
	}
	h, ok := rt.sites[code]
	if !ok {
		rt.unknown(w, code)
		return
	}
	h.ServeHTTP(w, r)
}

// byBody reads the body (at most maxBody bytes: a larger one goes to the root, which refuses
// it for its size) and routes by the site siteOf finds in it, or by site= when the body names
// none.
func (rt *siteRouter) byBody(siteOf func(contentType string, body []byte) string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		limit := rt.maxBody
		if limit <= 0 {
			limit = 8 << 20
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
		r.Body = readCloser{io.MultiReader(bytes.NewReader(body), r.Body), r.Body}
		code := ""
		if err == nil && int64(len(body)) <= limit {
			code = siteOf(r.Header.Get("Content-Type"), body)
		}
		if code == "" {
			code = r.URL.Query().Get("site")
		}
		if code == "" {
			code = rt.root
		}
		h, ok := rt.sites[code]
		if !ok {
			// Not a site of this process: the root refuses it naming the site it serves.
			h = rt.sites[rt.root]
		}
		h.ServeHTTP(w, r)
	}
}

// unknown answers 404 naming the sites this process serves.
func (rt *siteRouter) unknown(w http.ResponseWriter, code string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusNotFound)
	_ = json.NewEncoder(w).Encode(schema.ErrorBody{Error: schema.ErrorDetail{Code: schema.CodeNotFound, Field: "site",
		Message: fmt.Sprintf("site %q is not served here (sites: %s)", code, strings.Join(slices.Sorted(slices.Values(rt.codes)), ", "))}})
}

// readCloser reads from r and closes c.
type readCloser struct {
	io.Reader
	c io.Closer
}

func (rc readCloser) Close() error { return rc.c.Close() }

// isJSON reports whether a content type is JSON.
func isJSON(ct string) bool {
	mt, _, _ := mime.ParseMediaType(ct)
	return mt == schema.MediaJSON
}
