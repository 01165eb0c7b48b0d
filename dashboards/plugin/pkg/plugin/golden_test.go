package plugin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/data"
	"github.com/grafana/grafana-plugin-sdk-go/experimental"

	"github.com/statepipe/statepipe/dashboards/plugin/pkg/plugin"
)

// goldenCase is one query of the golden frames: every query type, a few errors.
type goldenCase struct {
	name  string
	query string // the query's JSON, as the frontend sends it (refId and datasource aside)
	from  string // time range (RFC 3339); empty: the last 7 days, which no golden depends on
	to    string
}

var goldenCases = []goldenCase{
	{name: "compliance", query: `{"queryType": "compliance", "params": {"list": "L-2026-11", "collection": "C-ALL", "updates": ""}}`},
	{name: "compliance_catalog", query: `{"queryType": "compliance"}`},
	{name: "machines", query: `{"queryType": "machines", "params": {"update": "KB5046617", "state": "required"}}`},
	{name: "deployment", query: `{"queryType": "deployment", "params": {"deployment": "D-2026-11"}}`},
	{name: "deployment_drilldown", query: `{"queryType": "deployment", "params": {"deployment": "D-2026-11", "state": 4}}`},
	{name: "deployments", query: `{"queryType": "deployments", "params": {"client": "pc-03"}}`},
	{name: "machines_deployment_update", query: `{"queryType": "machines", "params": {"deployment": "D-2026-11", "update": "KB5046617", "state": "0"}}`},
	{name: "errors", query: `{"queryType": "errors"}`},
	{name: "scan_errors", query: `{"queryType": "errors", "params": {"topic": "scan", "collection": "C-ALL"}}`},
	{name: "machines_scan_state", query: `{"queryType": "machines", "params": {"topic": "scan", "state": "3"}}`},
	{name: "compliance_by_month", query: `{"queryType": "compliance", "params": {"vendor": "Microsoft", "by": "month"}}`},
	{name: "computer_deployment", query: `{"queryType": "computer", "params": {"client": "pc-03", "deployment": "D-2026-11"}}`},
	{name: "scan", query: `{"queryType": "scan", "params": {"collection": "C-ALL", "days": "36500"}}`},
	{name: "computer", query: `{"queryType": "computer", "params": {"client": "pc-03", "list": "L-2026-11"}}`},
	{name: "update", query: `{"queryType": "update", "params": {"update": "KB5046617", "collection": "C-ALL"}}`},
	// Trend from the time range: points far in the future count every message accepted, so
	// the golden does not depend on when the fixture was loaded.
	{name: "trend", query: `{"queryType": "trend", "params": {"list": "L-2026-11", "collection": "C-ALL", "step": "24h"}}`,
		from: "2200-01-01T00:00:00Z", to: "2200-01-03T00:00:00Z"},
	{name: "backlog", query: `{"queryType": "backlog"}`},
	{name: "sql", query: `{"queryType": "sql", "rawSql": "SELECT update_id, state, count() AS clients, min(time) AS first_time, toUInt64(max(serial)) AS max_serial, avg(state) AS mean_state, toNullable(if(state = 2, NULL, state)) AS n FROM v_update_compliance WHERE $__timeFilter(time) AND time >= $__timeFrom() AND time <= $__timeTo() GROUP BY update_id, state ORDER BY update_id, state"}`,
		from: "2026-11-01T00:00:00Z", to: "2026-12-01T00:00:00Z"},
	{name: "sql_timegroup", query: `{"queryType": "sql", "rawSql": "SELECT $__timeGroup(time, 1h) AS t, count() AS messages FROM v_live_state WHERE $__timeFilter(time) GROUP BY t ORDER BY t"}`,
		from: "2026-11-20T00:00:00Z", to: "2026-11-21T00:00:00Z"},
	// the central site: P01's counts, per site (wait: every site's part counted)
	{name: "central_compliance", query: `{"queryType": "compliance", "params": {"site": "CEN", "wait": "true", "list": "L-2026-11", "collection": "C-ALL"}}`},
	{name: "central_deployment", query: `{"queryType": "deployment", "params": {"site": "CEN", "wait": "true", "deployment": "D-2026-11"}}`},
	{name: "central_errors", query: `{"queryType": "errors", "params": {"site": "CEN", "wait": "true"}}`},
	{name: "central_scan", query: `{"queryType": "scan", "params": {"site": "CEN", "wait": "true", "days": "36500"}}`},
	{name: "central_backlog", query: `{"queryType": "backlog", "params": {"site": "CEN"}}`},
	// errors: statepipe's refusals keep its message, field and status; the plugin's own name the field
	{name: "error_unknown_list", query: `{"queryType": "compliance", "params": {"list": "L-NOPE"}}`},
	{name: "error_sql_refused", query: `{"queryType": "sql", "rawSql": "SELECT * FROM system.disks"}`},
	{name: "error_query_type", query: `{"queryType": "compliancy"}`},
	{name: "error_param_name", query: `{"queryType": "scan", "params": {"deployment": "D-2026-11"}}`},
	{name: "error_param_missing", query: `{"queryType": "deployment", "params": {}}`},
	{name: "error_param_value", query: `{"queryType": "scan", "params": {"days": "0"}}`},
	{name: "error_sql_empty", query: `{"queryType": "sql", "rawSql": "  "}`},
}

// settings of the datasource the tests ask through: site P01 (site "" would be the root, CEN).
func instanceSettings(url string) *backend.DataSourceInstanceSettings {
	js, _ := json.Marshal(map[string]string{"url": url, "site": fixtureSiteCode})
	return &backend.DataSourceInstanceSettings{
		ID: 1, UID: "statepipe", Name: "statepipe", Type: plugin.ID, JSONData: js,
		DecryptedSecureJSONData: map[string]string{"token": readerToken},
		Updated:                 time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC),
	}
}

func pluginContext(url string) backend.PluginContext {
	return backend.PluginContext{OrgID: 1, PluginID: plugin.ID, DataSourceInstanceSettings: instanceSettings(url)}
}

// request is the QueryDataRequest of one golden case.
func (c goldenCase) request(url string) *backend.QueryDataRequest {
	from, to := time.Now().Add(-7*24*time.Hour), time.Now()
	if c.from != "" {
		from, _ = time.Parse(time.RFC3339, c.from)
		to, _ = time.Parse(time.RFC3339, c.to)
	}
	var m struct {
		QueryType string `json:"queryType"`
	}
	_ = json.Unmarshal([]byte(c.query), &m)
	return &backend.QueryDataRequest{
		PluginContext: pluginContext(url),
		Queries: []backend.DataQuery{{RefID: "A", QueryType: m.QueryType, JSON: json.RawMessage(c.query),
			Interval: time.Minute, MaxDataPoints: 1000, TimeRange: backend.TimeRange{From: from, To: to}}},
	}
}

// volatile are fields whose values move with the clock or the site's load; normalise zeroes them.
var volatile = map[string]bool{"lag_records": true, "lag_seconds": true, "freshness_seconds": true, "backlog_records": true, "link_state": true}

// normalise makes a response comparable with its golden: the answer's time (meta.custom.as_of)
// and the backlog's clock-driven fields are fixed.
func normalise(t *testing.T, dr *backend.DataResponse) {
	t.Helper()
	if len(dr.Frames) == 0 {
		dr.Frames = nil // over gRPC no frames arrive as an empty list
	}
	for _, f := range dr.Frames {
		if f.Meta != nil && f.Meta.Custom != nil {
			b, err := json.Marshal(f.Meta.Custom)
			if err != nil {
				t.Fatal(err)
			}
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			if _, ok := m["as_of"]; ok {
				m["as_of"] = "2026-01-01T00:00:00Z"
			}
			if sites, ok := m["sites"].([]any); ok {
				for _, s := range sites {
					site := s.(map[string]any)
					for _, k := range []string{"watermark", "freshness_seconds", "last_heard_seconds"} {
						if _, ok := site[k]; ok {
							site[k] = nil
						}
					}
					site["lag_records"], site["backlog_records"] = 0, 0
					if site["link_state"] != "local" {
						site["link_state"] = "(a link state)"
					}
				}
			}
			f.Meta.Custom = m
		}
		if !strings.HasPrefix(f.Name, "backlog_") {
			continue
		}
		for _, fld := range f.Fields {
			if !volatile[fld.Name] && !strings.HasPrefix(fld.Name, "pacing_") {
				continue
			}
			for i := 0; i < fld.Len(); i++ {
				switch fld.Type() {
				case data.FieldTypeFloat64:
					fld.Set(i, 0.0)
				case data.FieldTypeInt64:
					fld.Set(i, int64(0))
				case data.FieldTypeString:
					fld.Set(i, "")
				case data.FieldTypeNullableTime:
					fld.Set(i, (*time.Time)(nil))
				case data.FieldTypeNullableFloat64:
					fld.Set(i, (*float64)(nil))
				default:
					t.Fatalf("normalise: field %s of type %s", fld.Name, fld.Type())
				}
			}
		}
	}
}

// checkGolden compares one answer with testdata/NAME.jsonc (rewritten with -update, only by
// the in-process run).
func checkGolden(t *testing.T, name string, resp *backend.QueryDataResponse, mayUpdate bool) {
	t.Helper()
	dr, ok := resp.Responses["A"]
	if !ok {
		t.Fatalf("no response for refId A: %v", resp.Responses)
	}
	normalise(t, &dr)
	if dr.Error != nil {
		checkErrorGolden(t, name, &dr, mayUpdate && *update)
		return
	}
	experimental.CheckGoldenJSONResponse(t, filepath.Join(pluginDir, "testdata"), name, &dr, mayUpdate && *update)
}

// checkErrorGolden compares an error answer with testdata/NAME.json: CheckGoldenJSONResponse
// of SDK v0.299.0 writes a file it cannot read back when the response has no frames (its
// header then lacks the newline before the marker it splits on).
func checkErrorGolden(t *testing.T, name string, dr *backend.DataResponse, updateFile bool) {
	t.Helper()
	got, err := json.MarshalIndent(dr, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	path := filepath.Join(pluginDir, "testdata", name+".json")
	if updateFile {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("no golden error answer (go test -update writes it): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("error answer of %s differs from %s:\n got: %s\nwant: %s", name, path, got, want)
	}
}

// TestGoldenFrames runs every golden case in process against the fixture site.
func TestGoldenFrames(t *testing.T) {
	f := fixtureSite(t)
	ds := plugin.New(plugin.Settings{URL: f.URL, Site: fixtureSiteCode, Token: readerToken})
	defer ds.Dispose()
	for _, c := range goldenCases {
		t.Run(c.name, func(t *testing.T) {
			resp, err := ds.QueryData(context.Background(), c.request(f.URL))
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, c.name, resp, true)
			// FRAMES.md's first convention: a field name is unique across the frames of one
			// answer, so a panel can pick a field (or a table its frame) by name.
			for _, r := range resp.Responses {
				seen := map[string]string{}
				for _, fr := range r.Frames {
					for _, fd := range fr.Fields {
						if other, ok := seen[fd.Name]; ok {
							t.Errorf("field %q is in frames %s and %s", fd.Name, other, fr.Name)
						}
						seen[fd.Name] = fr.Name
					}
				}
			}
		})
	}
}
