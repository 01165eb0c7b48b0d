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
// in its body, everything else — reference-data imports, ConfigMgr documents (which name no
// site), report queries, SQL, revocations — by the site= query parameter; the root when none
// is named. Each site answers as it would on a listener of its own: the router only picks
// the site.
type siteRouter struct {
	root  string
	codes []string // in topology order
	sites map[string]http.Handler
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
	mux.HandleFunc("POST /v1/reports", rt.byPrefix)
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
	for _, pattern := range []string{"POST /v1/ref/{kind}", "POST /v1/configmgr/reports", "POST /v1/revoke", "GET /v1/reports/{name}", "POST /v1/sql", "GET /v1/pacing", "POST /v1/pacing/{op}", "GET /v1/deployments/{id}/phases"} {
		mux.HandleFunc(pattern, rt.byParam)
	}
}

// byParam routes by the site= query parameter (the root without one).
func (rt *siteRouter) byParam(w http.ResponseWriter, r *http.Request) {
	code, ok := rt.siteParam(w, r)
	if !ok {
		return
	}
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

// reportPeek is how much of a report's body the router reads to find its site: clients write
// "site" before "messages", so it is near the start; a report that names it later goes to
// the root, which refuses it naming the field. The rest of the body is not read here: it
// streams to the site's ingest, within that ingest's limits.
const reportPeek = 8 << 10

// byPrefix routes a report by the site named in the first reportPeek bytes of its body.
func (rt *siteRouter) byPrefix(w http.ResponseWriter, r *http.Request) {
	prefix := make([]byte, reportPeek)
	n, _ := io.ReadFull(r.Body, prefix)
	prefix = prefix[:n]
	r.Body = readCloser{io.MultiReader(bytes.NewReader(prefix), r.Body), r.Body}
	code, ok := schema.PeekSite(prefix, isJSON(r.Header.Get("Content-Type")))
	h := rt.sites[code]
	if !ok || h == nil {
		h = rt.sites[rt.root] // refuses it, naming what is wrong
	}
	h.ServeHTTP(w, r)
}

// smallBody bounds the bodies byBody reads whole: enrolments and resync requests are a few
// hundred bytes; a larger one goes to the root, which refuses it.
const smallBody = 64 << 10

// byBody reads the body (at most smallBody bytes) and routes by the site siteOf finds in it,
// or by site= when the body names none.
func (rt *siteRouter) byBody(siteOf func(contentType string, body []byte) string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		const limit = smallBody
		body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
		r.Body = readCloser{io.MultiReader(bytes.NewReader(body), r.Body), r.Body}
		code := ""
		if err == nil && int64(len(body)) <= limit {
			code = siteOf(r.Header.Get("Content-Type"), body)
		}
		if code == "" {
			var ok bool
			if code, ok = rt.siteParam(w, r); !ok {
				return
			}
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

// siteParam returns the site= parameter ("" when absent); given more than once it answers 400
// naming site and reports false.
func (rt *siteRouter) siteParam(w http.ResponseWriter, r *http.Request) (string, bool) {
	sites, ok := querySites(w, r) // not URL.Query: it drops what it cannot read, site= among it
	if !ok {
		return "", false
	}
	if len(sites) > 1 {
		writeRouteError(w, http.StatusBadRequest, schema.CodeMalformed, fmt.Sprintf("site is given %d times: give it once", len(sites)))
		return "", false
	}
	if len(sites) == 0 {
		return "", true
	}
	return sites[0], true
}

// unknown answers 404 naming the sites this process serves.
func (rt *siteRouter) unknown(w http.ResponseWriter, code string) {
	writeRouteError(w, http.StatusNotFound, schema.CodeNotFound,
		fmt.Sprintf("site %q is not served here (sites: %s)", code, strings.Join(slices.Sorted(slices.Values(rt.codes)), ", ")))
}

// writeRouteError answers an error about the site parameter.
func writeRouteError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(schema.ErrorBody{Error: schema.ErrorDetail{Code: code, Field: "site", Message: msg}})
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
