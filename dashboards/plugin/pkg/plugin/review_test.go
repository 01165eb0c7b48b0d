package plugin

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
)

// Regressions found by a hostile review of the plugin (the fixture-site half is in
// review_site_test.go).

// The URL must not carry credentials: jsonData is readable by the organisation's users and the
// URL is shown in Save & test's messages.
func TestURLWithUserInfoIsRefused(t *testing.T) {
	for _, raw := range []string{"http://admin:s3cret@statepipe:8081", "https://user@[::1]:8081/prefix"} {
		_, err := parseBaseURL(raw)
		if err == nil || strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "token") {
			t.Errorf("%s: %v; want a refusal naming the token, without the password", raw, err)
		}
	}
	d := New(Settings{URL: "http://admin:s3cret@127.0.0.1:1"})
	res, _ := d.CheckHealth(context.Background(), &backend.CheckHealthRequest{})
	if res.Status != backend.HealthStatusError || strings.Contains(res.Message, "s3cret") {
		t.Errorf("health: %s", res.Message)
	}
	for _, raw := range []string{"http://[::1]:8081", "https://statepipe.example/prefix/"} {
		if u, err := parseBaseURL(raw); err != nil || strings.HasSuffix(u.String(), "/") {
			t.Errorf("%s: %v %v", raw, u, err)
		}
	}
}

// An answer echoing the request (a proxy's error page) never carries the token into an error.
func TestTokenIsNeverEchoedIntoErrors(t *testing.T) {
	const token = "reader-token-0123456789"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/reports/backlog" {
			w.WriteHeader(http.StatusBadGateway)
		}
		// the token straddles the 200th character, where a message cuts an answer
		_, _ = w.Write([]byte(strings.Repeat("x", 180) + " Authorization: " + r.Header.Get("Authorization")))
	}))
	defer srv.Close()
	d := New(Settings{URL: srv.URL, Token: token})
	res, _ := d.CheckHealth(context.Background(), &backend.CheckHealthRequest{})
	if strings.Contains(res.Message, token[:10]) {
		t.Errorf("health message holds the token: %s", res.Message)
	}
	js, _ := json.Marshal(map[string]any{"queryType": "sql", "rawSql": "SELECT 1"})
	resp, _ := d.QueryData(context.Background(), &backend.QueryDataRequest{Queries: []backend.DataQuery{{RefID: "A", JSON: js}}})
	if e := resp.Responses["A"].Error; e == nil || strings.Contains(e.Error(), token[:10]) {
		t.Errorf("query error holds the token: %v", e)
	}
}

// A redirect (http → https) is not followed, and the message says where it leads.
func TestRedirectIsNamed(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "https://statepipe.example"+r.URL.Path, http.StatusMovedPermanently)
	}))
	defer srv.Close()
	res, _ := New(Settings{URL: srv.URL, Token: "t0k3n-xyz"}).CheckHealth(context.Background(), &backend.CheckHealthRequest{})
	if res.Status != backend.HealthStatusError || !strings.Contains(res.Message, "Wrong URL") || !strings.Contains(res.Message, "https://statepipe.example/v1/reports/backlog") {
		t.Errorf("health: %s", res.Message)
	}
}

// A site answering 503 slowly, again and again, holds a request requestBudget at most, not
// busyRetries+1 times requestTimeout.
func TestBusyRetriesAreBounded(t *testing.T) {
	defer func(b time.Duration) { requestBudget = b }(requestBudget)
	requestBudget = 600 * time.Millisecond
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		time.Sleep(250 * time.Millisecond)
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"error":{"code":"unavailable","message":"busy"}}`))
	}))
	defer srv.Close()
	base, _ := parseBaseURL(srv.URL)
	c := &client{base: base, http: newHTTPClient()}
	start := time.Now()
	var out any
	_, err := c.do(context.Background(), http.MethodPost, "/v1/sql", nil, []byte("SELECT 1"), &out)
	if took := time.Since(start); err == nil || took > 2*time.Second {
		t.Errorf("err %v after %s and %d calls; want the 503 within the budget", err, took, calls)
	}
}

func TestMacrosHostile(t *testing.T) {
	q := backend.DataQuery{RefID: "A", Interval: 20 * time.Second, TimeRange: backend.TimeRange{
		From: time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC), To: time.Date(2026, 11, 30, 11, 0, 0, 0, time.UTC)}}
	const from, to = "toDateTime('2026-11-30 10:00:00', 'UTC')", "toDateTime('2026-11-30 11:00:00', 'UTC')"
	cases := map[string]string{
		// literals, quoted identifiers, heredocs and comments are kept as written
		`SELECT '$__timeFrom()' AS s, $__timeTo() AS t`:          `SELECT '$__timeFrom()' AS s, ` + to + ` AS t`,
		`SELECT 'it''s $__timeTo()', "$__timeFrom()"`:            `SELECT 'it''s $__timeTo()', "$__timeFrom()"`,
		`SELECT 'a\'$__timeTo()' -- $__timeGroup(broken`:         `SELECT 'a\'$__timeTo()' -- $__timeGroup(broken`,
		"SELECT /* $__timeFilter() */ $$ $__timeTo() $$, 1":      "SELECT /* $__timeFilter() */ $$ $__timeTo() $$, 1",
		"SELECT 1 # $__timeGroup(\nFROM t":                       "SELECT 1 # $__timeGroup(\nFROM t",
		`SELECT 1 WHERE $__timeFilter(parseDateTime(x, '%Y,)'))`: `SELECT 1 WHERE parseDateTime(x, '%Y,)') >= ` + from + ` AND parseDateTime(x, '%Y,)') <= ` + to,
		`SELECT $__timeGroup(t, '1h')`:                           `SELECT toStartOfInterval(t, INTERVAL 3600 second, 'UTC')`,
		`SELECT $__timeGroup(t, $__interval)`:                    `SELECT toStartOfInterval(t, INTERVAL 20 second, 'UTC')`,
	}
	for in, want := range cases {
		if got, err := ExpandMacros(q, in); err != nil || got != want {
			t.Errorf("%s:\n got %q (%v)\nwant %q", in, got, err, want)
		}
	}
	// intervals that are not positive, overflow, or extra/missing arguments are errors, not
	// a silent 1 s grouping
	for _, bad := range []string{"$__timeGroup(t, -1h)", "$__timeGroup(t, 0s)", "$__timeGroup(t, 1000y)", "$__timeGroup(t, 500ms)",
		"$__timeGroup(t, 1h, 0)", "$__timeGroup(, 1h)", "$__timeFilter(t"} {
		if got, err := ExpandMacros(q, "SELECT "+bad); err == nil {
			t.Errorf("%s: no error (%q)", bad, got)
		} else if strings.Contains(err.Error(), "\x00") || strings.Contains(err.Error(), `\x00`) {
			t.Errorf("%s: the error shows a placeholder: %v", bad, err)
		}
	}
}

func TestSQLFrameNaNAndWideIntegers(t *testing.T) {
	var ans sqlAnswer
	if err := json.Unmarshal([]byte(`{"columns": [{"name": "avg", "type": "Float64"}, {"name": "u128", "type": "UInt128"}, {"name": "i256", "type": "Nullable(Int256)"}, {"name": "t", "type": "DateTime64(3, 'Mars/Olympus')"}],
		"rows": [[null, "340282366920938463463374607431768211455", -1, "2026-01-01 00:00:00.000"]]}`), &ans); err != nil {
		t.Fatal(err)
	}
	if _, err := sqlFrame(&ans); err == nil || !strings.Contains(err.Error(), "Mars/Olympus") {
		t.Errorf("a time zone that cannot be loaded: %v; want an error naming it (not times read as UTC)", err)
	}
	ans.Columns[3].Type = "DateTime64(3, 'Asia/Tokyo')"
	f, err := sqlFrame(&ans)
	if err != nil {
		t.Fatal(err)
	}
	if v := f.Fields[0].At(0).(float64); !math.IsNaN(v) {
		t.Errorf("avg of no rows (NaN, written null): %v", v)
	}
	if v := f.Fields[1].At(0).(float64); v != math.Pow(2, 128) {
		t.Errorf("u128: %v", v)
	}
	if v := f.Fields[2].At(0).(*float64); v == nil || *v != -1 {
		t.Errorf("i256: %v", v)
	}
	if v := f.Fields[3].At(0).(time.Time); !v.Equal(time.Date(2025, 12, 31, 15, 0, 0, 0, time.UTC)) {
		t.Errorf("t: %v", v)
	}
}

// A huge site value is named before anything is sent (the site's HTTP server would refuse a
// megabyte of URL with 431 and no JSON, read as "not a statepipe site").
func TestHugeSiteIsNamed(t *testing.T) {
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { calls++ }))
	defer srv.Close()
	d := New(Settings{URL: srv.URL})
	for _, qt := range []string{"backlog", "sql"} {
		js, _ := json.Marshal(map[string]any{"queryType": qt, "rawSql": "SELECT 1", "params": map[string]any{"site": strings.Repeat("P", 2<<20)}})
		resp, _ := d.QueryData(context.Background(), &backend.QueryDataRequest{Queries: []backend.DataQuery{{RefID: "A", JSON: js}}})
		if e := resp.Responses["A"].Error; e == nil || !strings.HasPrefix(e.Error(), "params.site:") || len(e.Error()) > 200 {
			t.Errorf("%s: %.200v", qt, e)
		}
	}
	if calls != 0 {
		t.Errorf("%d requests sent", calls)
	}
}

// An https URL on a site answering plain HTTP is a wrong URL, not an unreachable site.
func TestHTTPSOnPlainHTTPIsAWrongURL(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	res, _ := New(Settings{URL: strings.Replace(srv.URL, "http://", "https://", 1)}).CheckHealth(context.Background(), &backend.CheckHealthRequest{})
	if !strings.HasPrefix(res.Message, "Wrong URL") || !strings.Contains(res.Message, "http://") {
		t.Errorf("health: %s", res.Message)
	}
}

// jsonData that cannot be read (provisioning YAML's `site: 100` is a number) is named by Save
// & test and by every query, instead of failing the instance with Grafana's generic message.
func TestUnreadableSettingsAreNamed(t *testing.T) {
	inst, err := NewDatasource(context.Background(), backend.DataSourceInstanceSettings{JSONData: []byte(`{"url": "http://statepipe:8081", "site": 100}`)})
	if err != nil {
		t.Fatalf("instance refused: %v", err)
	}
	d := inst.(*Datasource)
	res, _ := d.CheckHealth(context.Background(), &backend.CheckHealthRequest{})
	if !strings.HasPrefix(res.Message, "Wrong settings") || !strings.Contains(res.Message, "site") {
		t.Errorf("health: %s", res.Message)
	}
	resp, _ := d.QueryData(context.Background(), &backend.QueryDataRequest{Queries: []backend.DataQuery{{RefID: "A", JSON: []byte(`{"queryType": "backlog"}`)}}})
	if e := resp.Responses["A"].Error; e == nil || !strings.HasPrefix(e.Error(), "settings:") {
		t.Errorf("query: %v", e)
	}
}
