package ingest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/statepipe/statepipe/schema"
)

func refRec(key, value, origin string) Record {
	r := Record{Key: []byte(key)}
	if value != "" {
		r.Value = []byte(value)
	}
	if origin != "" {
		r.Headers = []Header{{Key: schema.HeaderOrigin, Value: []byte(origin)}}
	}
	return r
}

// A record with an origin names the key's owner; the latest record of a key decides: one
// without an origin (imported at the site) or a tombstone gives the key back to the site.
func TestRefOwners(t *testing.T) {
	var o RefOwners
	if _, ok := o.Owner("collections/all-pcs"); ok {
		t.Fatal("the zero value knows an owner")
	}
	o.Apply(refRec("collections/all-pcs", `{"id":"all-pcs"}`, "CEN"))
	o.Apply(refRec("catalog/U1", `{"id":"U1"}`, "P01"))
	o.Apply(refRec("lists/local", `{"id":"local"}`, ""))
	for key, want := range map[string]string{"collections/all-pcs": "CEN", "catalog/U1": "P01", "lists/local": ""} {
		if got, ok := o.Owner(key); got != want || ok != (want != "") {
			t.Errorf("Owner(%s) = %q %v, want %q %v", key, got, ok, want, want != "")
		}
	}
	o.Apply(refRec("collections/all-pcs", `{"id":"all-pcs"}`, "P01")) // re-imported higher up
	if got, _ := o.Owner("collections/all-pcs"); got != "P01" {
		t.Errorf("after a newer record from P01: owner %q, want P01", got)
	}
	o.Apply(refRec("collections/all-pcs", `{"id":"all-pcs"}`, "")) // imported at the site
	if got, ok := o.Owner("collections/all-pcs"); ok {
		t.Errorf("after a local record: owner %q, want none", got)
	}
	o.Apply(refRec("catalog/U1", "", "P01")) // a tombstone
	if got, ok := o.Owner("catalog/U1"); ok {
		t.Errorf("after a tombstone: owner %q, want none", got)
	}

	var wg sync.WaitGroup // run with -race
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				if i%2 == 0 {
					o.Apply(refRec("catalog/U2", `{"id":"U2"}`, "CEN"))
				} else {
					o.Owner("catalog/U2")
				}
			}
		}()
	}
	wg.Wait()
}

// An import holding a key another site owns is refused whole before anything is produced:
// 409 conflict naming the owner, the id and the line, every such line listed; keys the site
// owns, or nobody above, import.
func TestRefImportOfAnotherSitesDataConflicts(t *testing.T) {
	var owners RefOwners
	owners.Apply(refRec("collections/all-pcs", `{"id":"all-pcs"}`, "CEN"))
	owners.Apply(refRec("collections/servers", `{"id":"servers"}`, "CEN"))
	owners.Apply(refRec("collections/mine", `{"id":"mine"}`, "P01")) // the site's own, named
	var produced int
	h := &RefHandler{Site: "P01", Producer: okProducer{&produced}, Owners: owners.Owner}
	mux := http.NewServeMux()
	mux.Handle("POST /v1/ref/{kind}", h)
	post := func(body string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest("POST", "/v1/ref/collections?wait=false", strings.NewReader(body)))
		return rec
	}

	rec := post(`{"id":"local","name":"l","members":["a"]}` + "\n\n" +
		`{"id":"all-pcs","name":"all","members":["a"]}` + "\n" +
		`{"id":"servers","name":"s","members":["b"]}` + "\n")
	if rec.Code != http.StatusConflict {
		t.Fatalf("status %d, want 409: %s", rec.Code, rec.Body)
	}
	var body RefErrorBody
	if err := json.NewDecoder(rec.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	e := body.Error
	if e.Code != schema.CodeConflict || e.Field != "line 3" ||
		!strings.HasPrefix(e.Message, "collections/all-pcs is owned by site CEN: edit it there (it is read-only at P01)") {
		t.Errorf("error %+v, want conflict on line 3 naming CEN and collections/all-pcs", e)
	}
	if len(body.Lines) != 2 || body.Lines[0].Line != 3 || body.Lines[1].Line != 4 ||
		!strings.Contains(body.Lines[1].Reason, "collections/servers is owned by site CEN") {
		t.Errorf("lines %+v, want lines 3 and 4", body.Lines)
	}
	if produced != 0 {
		t.Errorf("produced %d records of a refused import", produced)
	}

	if rec := post(`{"id":"local","name":"l","members":["a"]}` + "\n" + `{"id":"mine","name":"m","members":["a"]}`); rec.Code != http.StatusOK {
		t.Errorf("the site's own keys: status %d, want 200: %s", rec.Code, rec.Body)
	}
	if produced != 2 {
		t.Errorf("produced %d records, want 2", produced)
	}
	owners.Apply(refRec("collections/all-pcs", `{"id":"all-pcs"}`, "")) // now the site's own
	if rec := post(`{"id":"all-pcs","name":"all","members":["a"]}`); rec.Code != http.StatusOK {
		t.Errorf("a key given back to the site: status %d, want 200: %s", rec.Code, rec.Body)
	}
}

// Until the site has read its reference topic up to date it cannot tell what a site above
// owns: an import is answered 503 with Retry-After, and nothing is produced.
func TestRefImportWaitsForTheOwnersToBeRead(t *testing.T) {
	var produced int
	var read bool
	h := &RefHandler{Site: "P01", Producer: okProducer{&produced}, Owners: (&RefOwners{}).Owner, OwnersRead: func() bool { return read }}
	mux := http.NewServeMux()
	mux.Handle("POST /v1/ref/{kind}", h)
	post := func() *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest("POST", "/v1/ref/collections?wait=false", strings.NewReader(`{"id":"c","name":"c","members":["a"]}`)))
		return rec
	}
	if rec := post(); rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" || produced != 0 {
		t.Errorf("before the owners are read: %d (Retry-After %q), %d produced; want 503 with Retry-After and nothing produced", rec.Code, rec.Header().Get("Retry-After"), produced)
	}
	read = true
	if rec := post(); rec.Code != http.StatusOK || produced != 1 {
		t.Errorf("once read: %d, %d produced; want 200 and 1", rec.Code, produced)
	}
}

// A deployment names the site it is created at, or none (the site fills it): another site's
// name is refused naming the line, and nothing is produced.
func TestRefDeploymentOfAnotherSiteIsRefused(t *testing.T) {
	var produced int
	h := &RefHandler{Site: "P01", Producer: okProducer{&produced}}
	mux := http.NewServeMux()
	mux.Handle("POST /v1/ref/{kind}", h)
	post := func(body string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest("POST", "/v1/ref/deployments?wait=false", strings.NewReader(body)))
		return rec
	}
	d := func(id, site string) string {
		return `{"id":"` + id + `","name":"n","updates":["KB1"],"collection":"c","start":"2026-01-01T00:00:00Z","deadline":"2026-02-01T00:00:00Z","site":"` + site + `"}`
	}
	rec := post(d("mine", "P01") + "\n" + d("theirs", "CEN"))
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), `"field":"line 2"`) || !strings.Contains(rec.Body.String(), "names site CEN") || produced != 0 {
		t.Errorf("a deployment naming another site: %d %s, %d produced; want 400 naming line 2 and CEN, nothing produced", rec.Code, rec.Body, produced)
	}
	if rec := post(d("mine", "P01") + "\n" + d("unnamed", "")); rec.Code != http.StatusOK || produced != 2 {
		t.Errorf("this site's and an unnamed one: %d %s, %d produced; want 200 and 2", rec.Code, rec.Body, produced)
	}
}
