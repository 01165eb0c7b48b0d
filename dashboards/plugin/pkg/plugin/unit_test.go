package plugin

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/data"
)

func TestExpandMacros(t *testing.T) {
	from := time.Date(2026, 11, 30, 10, 0, 0, 900_000_000, time.FixedZone("CET", 3600))
	to := time.Date(2026, 11, 30, 12, 30, 15, 0, time.UTC)
	q := backend.DataQuery{RefID: "A", Interval: 30 * time.Second, TimeRange: backend.TimeRange{From: from, To: to}}
	cases := map[string]string{
		"SELECT 1 WHERE $__timeFilter(accepted_at)":          "SELECT 1 WHERE accepted_at >= toDateTime('2026-11-30 09:00:00', 'UTC') AND accepted_at <= toDateTime('2026-11-30 12:30:15', 'UTC')",
		"SELECT $__timeFrom(), $__timeTo()":                  "SELECT toDateTime('2026-11-30 09:00:00', 'UTC'), toDateTime('2026-11-30 12:30:15', 'UTC')",
		"SELECT $__timeGroup(time, 5m) AS t":                 "SELECT toStartOfInterval(time, INTERVAL 300 second, 'UTC') AS t",
		"SELECT $__timeGroup(time, '1h') AS t":               "SELECT toStartOfInterval(time, INTERVAL 3600 second, 'UTC') AS t",
		"SELECT $__timeGroup(time, $__interval) AS t":        "SELECT toStartOfInterval(time, INTERVAL 30 second, 'UTC') AS t",
		"SELECT $__timeGroup(time, 1d) AS t":                 "SELECT toStartOfInterval(time, INTERVAL 86400 second, 'UTC') AS t",
		"SELECT 1 WHERE $__timeFrom(time) AND $__timeTo(t2)": "SELECT 1 WHERE time >= toDateTime('2026-11-30 09:00:00', 'UTC') AND t2 <= toDateTime('2026-11-30 12:30:15', 'UTC')",
	}
	for in, want := range cases {
		got, err := ExpandMacros(q, in)
		if err != nil || got != want {
			t.Errorf("%s:\n got %q (%v)\nwant %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"SELECT $__timeFilter()", "SELECT $__timeGroup(time)", "SELECT $__timeGroup(time, soon)"} {
		if got, err := ExpandMacros(q, bad); err == nil {
			t.Errorf("%s: no error (%q)", bad, got)
		}
	}
}

func TestParseQuery(t *testing.T) {
	ok := []string{
		`{"queryType": "compliance", "params": {"list": "L", "collection": "", "days": 7, "wait": true}}`,
		`{"queryType": "sql", "rawSql": "SELECT 1", "params": {"site": "P01"}}`,
	}
	for _, js := range ok {
		if _, _, err := parseQuery(backend.DataQuery{JSON: json.RawMessage(js)}); err != nil {
			t.Errorf("%s: %v", js, err)
		}
	}
	m, vals, _ := parseQuery(backend.DataQuery{JSON: json.RawMessage(ok[0])})
	if m.QueryType != "compliance" || vals.Encode() != "days=7&list=L&wait=true" {
		t.Errorf("params %q: empty values are dropped, numbers and booleans taken as text", vals.Encode())
	}
	// Grafana's own queryType, when the JSON has none
	if m, _, err := parseQuery(backend.DataQuery{QueryType: "errors", JSON: json.RawMessage(`{}`)}); err != nil || m.QueryType != "errors" {
		t.Errorf("queryType from the DataQuery: %v %v", m, err)
	}
	bad := map[string]string{
		`{}`:                          "queryType: missing",
		`{"queryType": "Compliance"}`: `queryType: "Compliance" is not a query type`,
		`{"queryType": "scan", "params": {"days": [7]}}`:                      "params.days: must be a string",
		`{"queryType": "sql"}`:                                                "rawSql: empty",
		`{"queryType": "sql", "rawSql": "SELECT 1", "params": {"list": "L"}}`: "params.list: sql takes no parameter but site",
		`{"queryType": 7}`:                                                    "query: cannot read the query's JSON",
	}
	for js, want := range bad {
		_, _, err := parseQuery(backend.DataQuery{JSON: json.RawMessage(js)})
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%s: got %v, want %q…", js, err, want)
		}
	}
}

func TestSQLFrameTypes(t *testing.T) {
	ans := &sqlAnswer{}
	if err := json.Unmarshal([]byte(`{"columns": [{"name":"t","type":"DateTime"},{"name":"t3","type":"DateTime64(3, 'Europe/Paris')"},{"name":"d","type":"Date"},
		{"name":"f","type":"Float64"},{"name":"dec","type":"Decimal(18, 2)"},{"name":"a","type":"Array(UInt8)"},{"name":"n","type":"Nullable(Int32)"},
		{"name":"u","type":"UInt64"},{"name":"b","type":"Bool"},{"name":"s","type":"LowCardinality(String)"},{"name":"i","type":"Int64"}],
		"rows": [["2026-11-30 16:16:50", "2026-11-30 17:16:50.250", "2026-11-30", 1.5, 2.5, [1, 2], null, 18446744073709551615, true, "x", -9223372036854775808],
		         ["2026-11-30 16:16:51", "2026-11-30 17:16:51.000", "2026-12-01", 2, 3, [], 4, 0, false, "", 1]]}`), ans); err != nil {
		t.Fatal(err)
	}
	f, err := sqlFrame(ans)
	if err != nil {
		t.Fatal(err)
	}
	wantTypes := []data.FieldType{data.FieldTypeTime, data.FieldTypeTime, data.FieldTypeTime, data.FieldTypeFloat64, data.FieldTypeFloat64,
		data.FieldTypeString, data.FieldTypeNullableInt64, data.FieldTypeUint64, data.FieldTypeBool, data.FieldTypeString, data.FieldTypeInt64}
	for i, ft := range wantTypes {
		if got := f.Fields[i].Type(); got != ft {
			t.Errorf("field %s: %s, want %s", f.Fields[i].Name, got, ft)
		}
	}
	if got := f.Fields[1].At(0).(time.Time); !got.Equal(time.Date(2026, 11, 30, 16, 16, 50, 250_000_000, time.UTC)) {
		t.Errorf("DateTime64 in Europe/Paris: %v", got)
	}
	if got := f.Fields[7].At(0).(uint64); got != 18446744073709551615 {
		t.Errorf("UInt64 kept exact: %d", got)
	}
	if got := f.Fields[10].At(0).(int64); got != -9223372036854775808 {
		t.Errorf("Int64 kept exact: %d", got)
	}
	if f.Fields[6].At(0) != (*int64)(nil) || *(f.Fields[6].At(1).(*int64)) != 4 {
		t.Errorf("Nullable(Int32): %v %v", f.Fields[6].At(0), f.Fields[6].At(1))
	}
	if got := f.Fields[5].At(0).(string); got != "[1, 2]" {
		t.Errorf("array as JSON: %q", got)
	}
	// a null in a column that is not Nullable is an error, not a zero
	bad := &sqlAnswer{}
	_ = json.Unmarshal([]byte(`{"columns": [{"name":"x","type":"Int64"}], "rows": [[null]]}`), bad)
	if _, err := sqlFrame(bad); err == nil {
		t.Error("null in Int64: no error")
	}
}

// TestHierarchyFrames: the frames only a site hierarchy answers (links, by_site), from a
// recorded central site's answers (schema/README.md's examples).
func TestHierarchyFrames(t *testing.T) {
	answers := map[string]string{
		"/v1/reports/backlog": `{"as_of": "2026-11-30T11:03:35Z", "site": "CEN",
 "sites": [{"site": "CEN", "lag_records": 0, "lag_seconds": 0, "links": [],
            "pacing": {"mode": "auto", "decision": "hold", "reason": "within the dead band", "enroll_rate": 310.5, "report_interval_seconds": 900,
                       "pressure": 0.41, "limiting": "wait", "lag_seconds": 11.2, "target_seconds": 30, "at": "2026-11-30T11:03:35Z"}},
           {"site": "P01", "parent": "CEN", "lag_records": 12, "lag_seconds": 0.8,
            "links": [{"link": "P01->CEN", "freshness_seconds": 0.9, "backlog_records": 40, "state": "active"}], "pacing": null},
           {"site": "P02", "parent": "CEN", "lag_records": 0, "lag_seconds": 0,
            "links": [{"link": "P02->CEN", "freshness_seconds": null, "backlog_records": 0, "state": "failed"}], "pacing": null}]}`,
		"/v1/reports/deployment": `{"site": "CEN", "as_of": "2026-11-30T11:03:35Z", "deployment_id": "D-2026-11", "name": "November", "collection": "all-pcs", "total": 5,
 "states": [{"state": 0, "name": "Enforcement state unknown", "clients": 1}, {"state": 4, "name": "Successfully installed", "clients": 4}],
 "by_site": [{"site": "CEN", "total": 0, "states": [{"state": 0, "name": "Enforcement state unknown", "clients": 0}, {"state": 4, "name": "Successfully installed", "clients": 0}]},
             {"site": "P01", "total": 3, "states": [{"state": 0, "name": "Enforcement state unknown", "clients": 1}, {"state": 4, "name": "Successfully installed", "clients": 2}]},
             {"site": "S01", "total": 2, "states": [{"state": 4, "name": "Successfully installed", "clients": 2}]}],
 "sites": [{"site": "CEN", "watermark": "2026-11-25T20:59:58Z", "link_state": "local", "freshness_seconds": 0.1, "lag_records": 0, "backlog_records": 0},
           {"site": "P01", "parent": "CEN", "watermark": "2026-11-25T20:59:55Z", "link_state": "active", "freshness_seconds": 3.1, "lag_records": 0, "backlog_records": 0}]}`,
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" || r.URL.Query().Get("site") != "CEN" {
			http.Error(w, `{"error": {"code": "unauthenticated", "message": "token or site missing", "field": "Authorization"}}`, http.StatusUnauthorized)
			return
		}
		_, _ = w.Write([]byte(answers[r.URL.Path]))
	}))
	defer srv.Close()
	ds := New(Settings{URL: srv.URL, Site: "CEN", Token: "tok"})
	run := func(js string) data.Frames {
		t.Helper()
		resp, err := ds.QueryData(context.Background(), &backend.QueryDataRequest{Queries: []backend.DataQuery{{RefID: "A", JSON: json.RawMessage(js)}}})
		if err != nil || resp.Responses["A"].Error != nil {
			t.Fatalf("%s: %v %v", js, err, resp.Responses["A"].Error)
		}
		return resp.Responses["A"].Frames
	}
	fr := run(`{"queryType": "backlog"}`)
	sites, links := fr[0], fr[1]
	if sites.Rows() != 3 || links.Rows() != 2 {
		t.Fatalf("backlog: %d sites, %d links", sites.Rows(), links.Rows())
	}
	if v, _ := sites.FieldByName("pacing_enroll_rate"); v.At(0).(float64) != 310.5 {
		t.Errorf("pacing_enroll_rate %v", v.At(0))
	}
	if v, _ := sites.FieldByName("pacing_at"); v.At(1) != (*time.Time)(nil) || !v.At(0).(*time.Time).Equal(time.Date(2026, 11, 30, 11, 3, 35, 0, time.UTC)) {
		t.Errorf("pacing_at %v %v", v.At(0), v.At(1))
	}
	if v, _ := links.FieldByName("freshness_seconds"); *v.At(0).(*float64) != 0.9 || v.At(1) != (*float64)(nil) || v.Config.Unit != "s" {
		t.Errorf("freshness_seconds %v %v", v.At(0), v.At(1))
	}
	if v, _ := links.FieldByName("link_site"); v.At(1).(string) != "P02" {
		t.Errorf("link_site %v", v.At(1))
	}
	fr = run(`{"queryType": "deployment", "params": {"deployment": "D-2026-11"}}`)
	if len(fr) != 3 || fr[2].Name != "deployment_by_site" {
		t.Fatalf("deployment: frames %v", fr)
	}
	by := fr[2]
	if f, _ := by.FieldByName("Successfully installed"); f == nil || f.At(2).(int64) != 2 {
		t.Errorf("by_site S01 installed: %v", f)
	}
	if f, _ := by.FieldByName("Enforcement state unknown"); f.At(2).(int64) != 0 || f.At(1).(int64) != 1 {
		t.Errorf("by_site unknown: %v %v", f.At(1), f.At(2))
	}
	if c, ok := fr[0].Meta.Custom.(custom); !ok || len(c.Sites) != 2 || c.Sites[1].LinkState != "active" {
		t.Errorf("meta.custom sites: %#v", fr[0].Meta.Custom)
	}
	if pf, _ := fr[0].FieldByName("pct"); pf.At(1).(float64) != 80 || pf.Config.Unit != "percent" {
		t.Errorf("pct %v", pf.At(1))
	}
}

// A site whose SQL is busy (503 with a Retry-After) is asked again, a few times at most;
// other refusals are not.
func TestBusySiteIsAskedAgain(t *testing.T) {
	var calls, busy int
	status := http.StatusServiceUnavailable
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		if calls <= busy {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(status)
			_, _ = w.Write([]byte(`{"error":{"code":"unavailable","message":"2 SQL statements run already"}}`))
			return
		}
		_, _ = w.Write([]byte(`{"ok":true}`))
	}))
	defer srv.Close()
	base, err := parseBaseURL(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	c := &client{base: base, http: newHTTPClient()}
	var out map[string]any
	for _, tc := range []struct {
		busy, status, calls int
		ok                  bool
	}{
		{2, http.StatusServiceUnavailable, 3, true},
		{busyRetries + 1, http.StatusServiceUnavailable, busyRetries + 1, false},
		{1, http.StatusBadRequest, 1, false},
	} {
		calls, busy, status = 0, tc.busy, tc.status
		_, err := c.do(context.Background(), http.MethodPost, "/v1/sql", nil, []byte("SELECT 1"), &out)
		if (err == nil) != tc.ok || calls != tc.calls {
			t.Errorf("busy %d times with %d: err %v after %d calls; want ok %v after %d", tc.busy, tc.status, err, calls, tc.ok, tc.calls)
		}
	}
	// A context that ends stops the waiting.
	calls, busy, status = 0, 100, http.StatusServiceUnavailable
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := c.do(ctx, http.MethodPost, "/v1/sql", nil, []byte("SELECT 1"), &out); err == nil || calls != 1 {
		t.Errorf("ended context: err %v after %d calls; want the 503 after 1", err, calls)
	}
}
