package main

// The reports' wiring through a real site: routes, the CLI's tables and flags derived from the
// report registry, analyst SQL as text, and the report and SQL metrics under the site's label.
// What each report computes is tested on the store, without Kafka (report/oracle_test.go,
// report/testdata).

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/statepipe/statepipe/report"
	"github.com/statepipe/statepipe/schema"
)

// rpGet fetches a report; v is filled on 200, the error detail is returned otherwise.
func (s *testSite) rpGet(path string, v any) (int, schema.ErrorDetail) {
	s.t.Helper()
	resp, err := http.Get(s.url + path)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		var eb schema.ErrorBody
		_ = json.NewDecoder(resp.Body).Decode(&eb)
		return resp.StatusCode, eb.Error
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		s.t.Fatal(err)
	}
	return 200, schema.ErrorDetail{}
}

// rpStatus asserts that path answers status naming field.
func (s *testSite) rpStatus(path string, status int, field string) {
	s.t.Helper()
	var v json.RawMessage
	code, e := s.rpGet(path, &v)
	if code != status || e.Field != field || e.Message == "" {
		s.t.Errorf("GET %s: %d %+v, want %d naming %q", path, code, e, status, field)
	}
}

// cli runs `statepipe report ARGS…` against the site and returns what it printed.
func (s *testSite) cli(args ...string) (string, error) {
	d, ok := report.Lookup(args[0])
	if !ok {
		s.t.Fatalf("no report %s", args[0])
	}
	var out bytes.Buffer
	err := runReport(context.Background(), d, append(args[1:], "--url", s.url), &out)
	return out.String(), err
}

func TestReportsThroughASite(t *testing.T) {
	t.Parallel()
	s := startSite(t, siteOpts{})
	ctx := context.Background()
	s.importRef("catalog", `{"id":"KB1","article":"KB5001","title":"Cumulative Update","first_synced":"2024-10-01T00:00:00Z","vendor":"Microsoft","released":"2024-10-08"}`,
		`{"id":"KB2","article":"KB5002","title":"Defender definitions","first_synced":"2030-01-01T00:00:00Z"}`)
	s.importRef("lists", `{"id":"L","name":"Patch Tuesday","updates":["KB1","KB2"]}`)
	s.importRef("collections", `{"id":"C","name":"Pilot ring","members":["pc1","pc2","pc3"]}`)
	s.importRef("deployments", `{"id":"D","name":"November","updates":["KB1"],"collection":"C","start":"2024-10-01T00:00:00Z","deadline":"2024-10-08T00:00:00Z"}`)
	for client, msgs := range map[string][]schema.StateMessage{
		"pc1": {{Serial: 1, Time: 1, TopicType: 500, TopicID: "KB1", State: 3}, {Serial: 2, Time: 1, TopicType: 500, TopicID: "KB2", State: 2}},
		"pc2": {{Serial: 1, Time: 1, TopicType: 500, TopicID: "KB1", State: 2},
			{Serial: 2, Time: 1, TopicType: 402, TopicID: "KB1", State: 11, Error: int32(-2147023293)}, // 0x80070643
			{Serial: 3, Time: 1, TopicType: 301, TopicID: "D", State: 6, Error: int32(-2147023293)}},
	} {
		if _, err := s.client(client).Send(ctx, &schema.Report{V: 1, Client: client, Site: s.code, Messages: msgs}); err != nil {
			t.Fatal(err)
		}
	}
	// The compliance table names the list, the collection and the updates' titles.
	eventually(t, func() string {
		out, err := s.cli("compliance", "--list", "L", "--collection", "C")
		if err != nil {
			return err.Error()
		}
		for _, want := range []string{"list L (Patch Tuesday)", "collection C (Pilot ring)", "Cumulative Update", "Defender definitions",
			"0 compliant (0.00 %), 2 non-compliant (66.67 %), 1 unknown (33.33 %), 3 total"} {
			if !strings.Contains(out, want) {
				return fmt.Sprintf("compliance table lacks %q:\n%s", want, out)
			}
		}
		return ""
	})
	// Of a vendor and a month of release (ConfigMgr's Compliance 4), from the imported catalog.
	if out, err := s.cli("compliance", "--vendor", "Microsoft", "--released", "2024-10", "--collection", "C"); err != nil ||
		!strings.Contains(out, "every catalog update, vendor Microsoft, released in 2024-10, collection C (Pilot ring)") ||
		!strings.Contains(out, "Microsoft  2024-10-08  Cumulative Update") || strings.Contains(out, "Defender") ||
		!strings.Contains(out, "1 compliant (33.33 %), 1 non-compliant (33.33 %), 1 unknown (33.33 %), 3 total") {
		t.Errorf("compliance --vendor Microsoft --released 2024-10: %v\n%s", err, out)
	}
	if _, err := s.cli("compliance", "--released", "2024-13"); err == nil || !strings.Contains(err.Error(), "400") || !strings.Contains(err.Error(), "released") {
		t.Errorf("compliance --released 2024-13: %v, want 400 naming released", err)
	}
	// The drill-down from a cell to its machines, and the errors with their update and deployment.
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"machines", "--update", "KB1", "--state", "required", "--collection", "C"}, []string{"update KB1 (Cumulative Update)", "1 machine,", "\npc2\n"}},
		{[]string{"machines", "--list", "L", "--state", "unknown", "--collection", "C"}, []string{"list L (Patch Tuesday)", "\npc3\n"}},
		{[]string{"errors"}, []string{"0x80070643", "ERROR_INSTALL_FAILURE", "KB1", "D"}},
		{[]string{"deployment", "--deployment", "D"}, []string{"deployment D (November)", "collection C (Pilot ring)", "3 targeted"}},
		{[]string{"computer", "--client", "pc2", "--deployment", "D"}, []string{"deployment D (November), 1 update",
			"deployment D (November): targeted (a member of collection C (Pilot ring))", "6 Failed to install update(s)", "0x80070643", "\nKB1 "}},
	} {
		eventually(t, func() string {
			out, err := s.cli(c.args...)
			if err != nil {
				return err.Error()
			}
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					return fmt.Sprintf("%v lacks %q:\n%s", c.args, w, out)
				}
			}
			return ""
		})
	}
	// The computer report for a deployment (States 3), as JSON: its 301 state with the error.
	var comp report.Computer
	if code, e := s.rpGet("/v1/reports/computer?client=pc2&deployment=D", &comp); code != 200 || comp.Deployment == nil || !comp.Deployment.Targeted ||
		comp.Deployment.Enforcement == nil || comp.Deployment.Enforcement.State != 6 || comp.Deployment.Enforcement.Hex != "0x80070643" || len(comp.Updates) != 1 {
		t.Errorf("computer pc2 deployment D: %d %+v %+v", code, e, comp.Deployment)
	}
	s.rpStatus("/v1/reports/computer?client=pc2&deployment=D&list=L", 400, "deployment")
	// Flags come from the registry: a report's own only, required ones checked before asking.
	if _, err := s.cli("deployment", "--collection", "C"); err == nil || !strings.Contains(err.Error(), "collection") {
		t.Errorf("deployment --collection: %v, want the flag refused", err)
	}
	if _, err := s.cli("update"); err == nil || !strings.Contains(err.Error(), "--update is required") {
		t.Errorf("update without --update: %v", err)
	}
	if _, err := s.cli("compliance", "--updates", "KB-TYPO"); err == nil || !strings.Contains(err.Error(), "404") || !strings.Contains(err.Error(), "updates") {
		t.Errorf("compliance --updates KB-TYPO: %v, want 404 naming updates", err)
	}

	// Analyst SQL as text: unqualified names resolve in the site's database; numbers exact,
	// NULL as NULL, arrays as [a, b].
	var out bytes.Buffer
	q := "SELECT error, toInt64(9007199254740993) AS big, NULL AS nothing, ['a', 'b'] AS arr FROM v_live_state WHERE client = 'pc2' AND topic_type = 402"
	if err := runSQL(ctx, []string{"--url", s.url, q}, &out); err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(out.String(), "\n"); len(lines) < 2 || strings.Join(strings.Fields(lines[1]), " ") != "-2147023293 9007199254740993 NULL ['a', 'b']" {
		t.Errorf("sql table:\n%s", out.String())
	}

	// The metrics, under the site's label, from the start for every report.
	m := s.metrics(t)
	for series, want := range map[string]string{
		`statepipe_report_queries_total{code="ok",report="compliance",site="` + s.code + `"}`:        "> 0",
		`statepipe_report_queries_total{code="not_found",report="compliance",site="` + s.code + `"}`: "> 0", // KB-TYPO
		`statepipe_report_queries_total{code="ok",report="scan",site="` + s.code + `"}`:              "0",
		`statepipe_report_query_seconds_count{report="machines",site="` + s.code + `"}`:              "> 0",
		`statepipe_sql_queries_total{code="ok",site="` + s.code + `"}`:                               "1",
	} {
		line := ""
		for _, l := range strings.Split(m, "\n") {
			if strings.HasPrefix(l, series+" ") {
				line = l
			}
		}
		v := strings.TrimPrefix(line, series+" ")
		if line == "" || (want == "> 0" && (v == "0" || v == "")) || (want != "> 0" && v != want) {
			t.Errorf("metric %s = %q, want %s", series, v, want)
		}
	}
}
