package report

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/statepipe/statepipe/schema"
)

// Every report is in the registry with a summary, a run, a table and help for each parameter;
// names are unique and parameters of one report too.
func TestRegistryIsComplete(t *testing.T) {
	seen := map[string]bool{}
	for _, d := range Reports() {
		if d.Name == "" || d.Summary == "" || d.Run == nil || d.Table == nil || seen[d.Name] {
			t.Errorf("report %q: incomplete or repeated: %+v", d.Name, d)
		}
		seen[d.Name] = true
		params := map[string]bool{"site": true}
		for _, p := range d.Params {
			if p.Name == "" || p.Help == "" || params[p.Name] {
				t.Errorf("report %s: parameter %q without help or repeated", d.Name, p.Name)
			}
			params[p.Name] = true
		}
		if got, ok := Lookup(d.Name); !ok || got.Name != d.Name {
			t.Errorf("Lookup(%q) = %v", d.Name, ok)
		}
	}
	for _, want := range []string{"compliance", "machines", "deployment", "errors", "scan", "computer", "update", "trend"} {
		if !seen[want] {
			t.Errorf("no report %s", want)
		}
	}
}

// Parameters are judged from the registry: kinds, bounds, defaults and required ones, the
// first problem named; ParseArgs ignores parameters it is not given (Definition.ParseQuery
// refuses them).
func TestParseArgs(t *testing.T) {
	params := []Param{
		{Name: "id", Kind: KindID, Required: true, Help: "an id"},
		{Name: "n", Kind: KindInt, Min: 1, Max: 5, Help: "a number"},
		{Name: "at", Kind: KindTime, Help: "a time"},
		{Name: "every", Kind: KindDuration, Help: "a step"},
		{Name: "ids", Kind: KindIDs, Help: "ids"},
		{Name: "page", Kind: KindInt, Min: 1, Max: 9, Default: 4, Help: "a number with a default"},
	}
	a, err := ParseArgs(params, url.Values{"id": {"x"}, "n": {"3"}, "at": {"2026-01-02T03:04:05Z"}, "every": {"15m"}, "ids": {"a, ,b"}, "other": {"y"}})
	if err != nil {
		t.Fatal(err)
	}
	n, ok := a.Int("n")
	if a.ID("id") != "x" || n != 3 || !ok || a.Time("at").Hour() != 3 || a.Duration("every") != 15*time.Minute ||
		strings.Join(a.IDs("ids"), "|") != "a|b" || a.ID("other") != "" {
		t.Errorf("args %+v", a)
	}
	if _, ok := a.Int("missing"); ok {
		t.Error("an absent integer is given")
	}
	if page, ok := a.Int("page"); page != 4 || !ok {
		t.Errorf("an absent integer with a default: %d %v", page, ok)
	}
	for _, c := range []struct {
		qs    url.Values
		field string
	}{
		{url.Values{}, "id"},
		{url.Values{"id": {""}}, "id"},
		{url.Values{"id": {"x"}, "n": {"6"}}, "n"},
		{url.Values{"id": {"x"}, "n": {""}}, "n"},
		{url.Values{"n": {"9"}}, "id"}, // judged in the table's order: the missing id first
		{url.Values{"id": {"x"}, "every": {"0s"}}, "every"},
		{url.Values{"id": {"x"}, "at": {"noon"}}, "at"},
	} {
		_, err := ParseArgs(params, c.qs)
		if pe, ok := err.(*ParamError); !ok || pe.Field != c.field {
			t.Errorf("%v: %v, want a ParamError naming %s", c.qs, err, c.field)
		}
	}
}

// printTable runs a report's table on v, as the CLI does on the JSON answer.
func printTable(t *testing.T, name string, v any) string {
	t.Helper()
	d, ok := Lookup(name)
	if !ok {
		t.Fatalf("no report %s", name)
	}
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := d.Table(&b, raw); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// The tables name what they are about (list, collection, update titles), show computer
// percentages, and "—" for a share of nothing.
func TestTables(t *testing.T) {
	for _, c := range tableCases() {
		out := printTable(t, c.name, c.v)
		for _, s := range c.has {
			if !strings.Contains(out, s) {
				t.Errorf("%s table lacks %q:\n%s", c.name, s, out)
			}
		}
		for _, s := range c.hasNot {
			if strings.Contains(out, s) {
				t.Errorf("%s table has %q:\n%s", c.name, s, out)
			}
		}
	}
}

// tableCase is an answer of a report and what its table must and must not show.
type tableCase struct {
	name   string
	v      any
	has    []string
	hasNot []string
}

// tableCases holds an answer of every report.
func tableCases() []tableCase {
	at := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
	from := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	fresh := 7.5
	return []tableCase{
		{"compliance", Compliance{Site: "P01", AsOf: at, List: "pt-10", ListName: "Patch Tuesday", Scope: "pilot", CollectionName: "Pilot ring",
			Updates: []UpdateCompliance{
				{UpdateID: "KB1", Title: "Cumulative Update", Installed: 1, Required: 1, Total: 2, CompliantPct: 50},
				{UpdateID: "KB2", Title: "Nobody yet"},
			},
			Computers: ComputerCounts{Compliant: 1, NonCompliant: 2, Unknown: 1, Total: 4, CompliantPct: 25}},
			[]string{"list pt-10 (Patch Tuesday)", "collection pilot (Pilot ring)", "Cumulative Update", "50.00 %", "—",
				"1 compliant (25.00 %), 2 non-compliant (50.00 %), 1 unknown (25.00 %), 4 total", "statepipe report machines"},
			[]string{" 0.00 %"}},
		{"compliance", Compliance{Site: "P01", AsOf: at, Updates: []UpdateCompliance{}},
			[]string{"every catalog update", "every client", "0 compliant (—)"}, []string{" 0.00 %"}},
		{"compliance", Compliance{Site: "P01", AsOf: at, RequestedUpdates: []string{"KB1", "KB2"}, Updates: []UpdateCompliance{{UpdateID: "KB1"}}},
			[]string{"compliance — site P01, 2 updates, every client", "statepipe report machines --updates KB1,KB2 --state non_compliant"},
			[]string{"every catalog update", "IDS"}},
		{"compliance", Compliance{Site: "P01", AsOf: at, RequestedUpdates: []string{"KB1"}, Scope: "C", Updates: []UpdateCompliance{{UpdateID: "KB1"}}},
			[]string{"1 update, collection C", "machines --updates KB1 --state non_compliant --collection C"}, []string{"every catalog update"}},
		// Filtered by the catalog: the computers line is over the updates kept, and so is its drill-down.
		{"compliance", Compliance{Site: "P01", AsOf: at, List: "pt-10", Vendor: "Microsoft", Updates: []UpdateCompliance{{UpdateID: "KB1"}, {UpdateID: "KB3"}}},
			[]string{"vendor Microsoft", "machines --updates KB1,KB3 --state non_compliant"}, []string{"--list pt-10"}},
		{"errors", Errors{Site: "P01", AsOf: at, Errors: []ErrorCount{
			{Error: 5, Hex: "0x00000005", Machines: 10, Updates: []string{"U0", "U1", "U2", "U3", "U4", "U5", "U6", "U7", "U8", "U9"}, Deployments: []string{}},
			{Error: 6, Hex: "0x00000006", Machines: 9, Updates: []string{"V0", "V1", "V2", "V3", "V4", "V5", "V6", "V7", "V8", "V9"}, MoreUpdates: true,
				Deployments: []string{"D"}, MoreDeployments: true}}},
			[]string{"U8, U9  ", "V8, V9, …", "D, …"}, []string{"U9, …"}},
		{"errors", Errors{Site: "P01", AsOf: at, DeploymentID: "D", DeploymentName: "November", Errors: []ErrorCount{
			{Error: -2147024891, Hex: "0x80070005", Description: "E_ACCESSDENIED: access is denied", Machines: 3, Updates: []string{"KB1", "KB2"}, Deployments: []string{"D"}}}},
			[]string{"deployment D (November)", "0x80070005", "KB1, KB2", "updates", "deployments"}, nil},
		{"scan", Scan{Site: "P01", AsOf: at, Collection: "C", CollectionName: "servers", Total: 0, States: []StateCount{{State: 0, Name: "Unknown"}}, StaleDays: 7},
			[]string{"collection C (servers)", "0 clients (—)"}, []string{" 0.00 %"}},
		{"computer", Computer{Site: "P01", AsOf: at, Client: "pc1", List: "L", ListName: "November", Compliant: ComputerNonCompliant,
			Updates: []ComputerUpdate{{UpdateID: "KB1", Title: "One", StateName: "Not required", Inferred: true}}},
			[]string{"computer pc1", "list L (November)", "never scanned successfully", "non-compliant", "Not required (inferred from the scan)"}, nil},
		{"update", Update{Site: "P01", AsOf: at, UpdateID: "U1", Article: "KB5001", Title: "Update one", InCatalog: true, Total: 0,
			Enforcement: []StateCount{{State: 0, Name: "None"}}},
			[]string{"update U1 (KB5001 Update one)", "every client", "—", "enforcement: 0 clients"}, []string{" 0.00 %"}},
		{"deployment", Deployment{Site: "P01", AsOf: at, DeploymentID: "D", Name: "November", Collection: "C", CollectionName: "ring 1", Total: 2,
			States: []StateCount{{State: 4, Name: "Successfully installed", Clients: 1}}},
			[]string{"deployment D (November)", "collection C (ring 1)", "2 targeted", "50.00 %"}, nil},
		{"machines", Machines{Site: "P01", AsOf: at, Update: "U1", Title: "Update one", State: "required", StateName: "Required", Total: 3,
			Machines: []string{"a", "b"}, Next: "b"},
			[]string{"update U1 (Update one)", "state Required", "3 machines", "\na\nb\n", "--after b"}, nil},
		{"backlog", Backlog{Site: "CEN", AsOf: at, Sites: []BacklogSite{{Site: "CEN", Links: []BacklogLink{}},
			{Site: "P01", Parent: "CEN", LagRecords: 12, LagSeconds: 3.5, Links: []BacklogLink{{Link: "P01->CEN", FreshnessSeconds: &fresh, BacklogRecords: 40, State: "degraded"}}},
			{Site: "P02", Parent: "CEN", Links: []BacklogLink{{Link: "P02->CEN", State: "failed"}}}}},
			[]string{"backlog — site CEN", "P01->CEN  degraded  7.5 s", "3.5 s", "never heard"}, nil},
		{"compliance", Compliance{Site: "CEN", AsOf: at, Updates: []UpdateCompliance{}, Sites: []SiteStatus{{Site: "CEN", LinkState: "local", Watermark: &at, FreshnessSeconds: &fresh},
			{Site: "P01", Parent: "CEN", LinkState: "failed"}}},
			[]string{"sites counted:", "CEN   local   2026", "7.5 s", "P01   failed  none yet"}, nil},
		{"deployment", Deployment{Site: "CEN", AsOf: at, DeploymentID: "D", Name: "November", Collection: "C", Total: 3,
			States: []StateCount{{State: 0, Name: "Enforcement state unknown", Clients: 1}, {State: 4, Name: "Successfully installed", Clients: 2}},
			BySite: []SiteStates{{Site: "CEN", Total: 1, States: []StateCount{{State: 0, Name: "Enforcement state unknown", Clients: 1}, {State: 4, Name: "Successfully installed"}}},
				{Site: "P01", Total: 2, States: []StateCount{{State: 0, Name: "Enforcement state unknown"}, {State: 4, Name: "Successfully installed", Clients: 2}}}},
			Sites: []SiteStatus{{Site: "CEN", LinkState: "local"}, {Site: "P01", Parent: "CEN", LinkState: "active"}}},
			[]string{"3 targeted", "per site:", "site  total  0 Enforcement state unkno…  4 Successfully installed", "P01   2      0", "sites counted:"}, nil},
		{"machines", Machines{Site: "CEN", AsOf: at, Deployment: "D", State: "3", StateName: "Waiting", Total: 1, Machines: []string{"c2"},
			Elsewhere: []ElsewhereSite{{Site: "P01", Machines: new(int64), Ask: "/v1/reports/machines?deployment=D&site=P01&state=3"}, {Site: "S01", Ask: "/v1/reports/machines?site=S01"}},
			Sites:     []SiteStatus{{Site: "CEN", LinkState: "local"}}},
			[]string{"elsewhere (each site lists its own machines):", "P01   0         /v1/reports/machines?deployment=D&site=P01&state=3", "S01   ?", "sites counted:"}, nil},
		{"scan", Scan{Site: "CEN", AsOf: at, Total: 3, StaleDays: 7, StaleClients: 2, Stale: []string{"c9"}, StaleOf: "CEN",
			Sources: []ScanSource{{Source: "wsus", States: []StateCount{{State: 0, Name: "Unknown", Clients: 1}, {State: 3, Name: "Completed", Clients: 2}}}},
			Sites:   []SiteStatus{{Site: "CEN", LinkState: "local"}}},
			[]string{"by latest scan: not counted", "per update source:", "wsus", "2 clients (66.67 %)", "stale at CEN: c9\n", "sites counted:"}, []string{"more"}},
		{"deployments", Deployments{Site: "P01", AsOf: at, Deployment: "D", Deployments: []DeploymentDetail{{DeploymentID: "D", Name: "November",
			Collection: "C", Members: 3, Start: from, Deadline: from.Add(24 * time.Hour), Mandatory: true, OriginSite: "CEN",
			Updates: []string{"KB1", "KB2"}, Titles: []string{"Cumulative Update", ""}}}},
			[]string{"deployments — site P01, deployment D", "D           C           3        2        2026", "yes        CEN     November", "updates of D:", "KB1  Cumulative Update"}, nil},
		{"deployments", Deployments{Site: "P01", AsOf: at, List: "L", ListName: "Nov", Deployments: []DeploymentDetail{}},
			[]string{"list L (Nov)", "no deployment matches"}, nil},
		{"errors", Errors{Site: "CEN", AsOf: at, Errors: []ErrorCount{}, Sites: []SiteStatus{{Site: "CEN", LinkState: "local"}}},
			[]string{"no live enforcement state carries an error", "sites counted:"}, nil},
		{"update", Update{Site: "CEN", AsOf: at, UpdateID: "U1", Total: 0, Enforcement: []StateCount{{State: 0, Name: "None"}}, Sites: []SiteStatus{{Site: "P01", LinkState: "failed"}}},
			[]string{"enforcement: 0 clients", "sites counted:", "P01   failed"}, nil},
		{"computer", Computer{Site: "P01", AsOf: at, Client: "pc2", Compliant: ComputerNonCompliant,
			Deployment: &ComputerDeployment{DeploymentID: "D", Name: "November", Collection: "C", CollectionName: "Pilot ring", Targeted: true,
				Enforcement: &ComputerState{TopicType: 301, State: 6, StateName: "Failed to install update(s)", Serial: 3, Time: &from,
					Error: -2147023293, Hex: "0x80070643", Description: "ERROR_INSTALL_FAILURE"},
				Evaluation: &ComputerState{TopicType: 302, StateName: "Unknown", Hex: "0x00000000"}},
			Updates: []ComputerUpdate{{UpdateID: "KB1", Title: "One", State: 2, StateName: "Required"}}},
			[]string{"computer pc2 — site P01, deployment D (November), 1 update,", "deployment D (November): targeted (a member of collection C (Pilot ring))",
				"enforcement (301)  6 Failed to install update(s)", "0x80070643 ERROR_INSTALL_FAILURE", "evaluation (302)   0 Unknown (none reported)",
				"compliance (300)   —", "KB1     One"}, []string{"list"}},
		{"computer", Computer{Site: "CEN", AsOf: at, Client: "c1", Compliant: ComputerUnknown, Updates: []ComputerUpdate{}, OwnSiteOnly: true,
			Sites: []SiteStatus{{Site: "CEN", LinkState: "local"}}},
			[]string{"from site CEN's own rows", "sites counted:"}, nil},
		{"trend", Trend{Site: "CEN", AsOf: at, Updates: []string{"KB1"}, From: from, To: from, Step: "24h0m0s", OwnSiteOnly: true,
			Points: []TrendPoint{{Time: from}}, Sites: []SiteStatus{{Site: "CEN", LinkState: "local"}}},
			[]string{"site CEN's own clients only", "sites counted:"}, nil},
		{"trend", Trend{Site: "P01", AsOf: at, List: "L", ListName: "November", Updates: []string{"KB1", "KB2"},
			Titles: map[string]string{"KB1": "Cumulative Update", "KB2": "Defender"}, From: from, To: from.Add(24 * time.Hour), Step: "24h0m0s",
			Points: []TrendPoint{{Time: from, Clients: 2, Total: 4, Unknown: 4}, {Time: from.Add(24 * time.Hour), Clients: 2, Total: 4, Installed: 2, Unknown: 2, CompliantPct: 50}}},
			[]string{"list L (November)", "KB1 (Cumulative Update), KB2 (Defender)", "50.00 %"}, nil},
	}
}

// Every string of every report's table — header and cells — has its control characters
// escaped: text a client or an import put in a title, name or id cannot add a row, break the
// columns or send the terminal an escape sequence.
func TestTablesEscapeControlCharacters(t *testing.T) {
	const hostile = "\nKB5044284  Installed  9999\x1b]0;pwned\x07\tx\r\x7f\u0085\u009b"
	seen := map[string]bool{}
	for _, c := range tableCases() {
		seen[c.name] = true
		clean := printTable(t, c.name, c.v)
		raw, err := json.Marshal(c.v)
		if err != nil {
			t.Fatal(err)
		}
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			t.Fatal(err)
		}
		taint := func(s string) string {
			if _, err := time.Parse(time.RFC3339, s); err == nil {
				return s // a time: the answer would not decode
			}
			return s + hostile
		}
		taintID := func(k string) string { // the ids that key trend's titles, not the fields' names
			if k != strings.ToLower(k) {
				return taint(k)
			}
			return k
		}
		out := printTable(t, c.name, mapStrings(v, taint, taintID))
		for i, r := range out {
			if r != '\n' && isControl(r) {
				t.Errorf("%s table holds the control character U+%04X at byte %d:\n%s", c.name, r, i, out)
				break
			}
		}
		if got, want := strings.Count(out, "\n"), strings.Count(clean, "\n"); got != want {
			t.Errorf("%s table of %d lines with control characters, %d without:\n%s", c.name, got, want, out)
		}
		if !strings.Contains(out, `\nKB5044284  Installed  9999\x1b]0;pwned\a\tx\r\x7f\u0085\u009b`) {
			t.Errorf("%s table does not show the escaped text:\n%s", c.name, out)
		}
	}
	for _, d := range Reports() {
		if !seen[d.Name] {
			t.Errorf("no table case for report %s", d.Name)
		}
	}
}

// CellText escapes control characters (C0, DEL, C1) and bytes that are not UTF-8 as Go does,
// and nothing else.
func TestCellText(t *testing.T) {
	for in, want := range map[string]string{
		"":                        "",
		"KB5044284 Cumulative":    "KB5044284 Cumulative",
		`C:\Windows "quoted" é 漢`: `C:\Windows "quoted" é 漢`,
		"a\tb\nc\rd":              `a\tb\nc\rd`,
		"\x00\x1b]0;pwned\x07":    `\x00\x1b]0;pwned\a`,
		"del\x7f":                 `del\x7f`,
		"c1 \u0085 \u009b \u00a0": `c1 \u0085 \u009b ` + "\u00a0",
		"bad \xff\xc2":            `bad \xff\xc2`,
	} {
		got := CellText(in)
		if got != want {
			t.Errorf("CellText(%q) = %q, want %q", in, got, want)
		}
		if CellText(got) != got {
			t.Errorf("CellText(%q) changes its own result %q", in, got)
		}
	}
}

// The trend's table names the updates by title and shows a run of unchanged points once.
func TestTrendTableIsCompact(t *testing.T) {
	day := 24 * time.Hour
	from := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	tr := Trend{Site: "P01", AsOf: from.Add(7 * day), List: "L", ListName: "November", Updates: []string{"KB1", "KB2"},
		Titles: map[string]string{"KB1": "Cumulative Update", "KB2": "Defender"}, From: from, To: from.Add(7 * day), Step: day.String()}
	for i := range 8 {
		p := TrendPoint{Time: from.Add(time.Duration(i) * day), Clients: 2, Total: 4, Unknown: 4}
		if i >= 6 {
			p.Installed, p.Unknown, p.CompliantPct = 2, 2, 50
		}
		tr.Points = append(tr.Points, p)
	}
	out := printTable(t, "trend", tr)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for _, s := range []string{"list L (November)", "KB1 (Cumulative Update), KB2 (Defender)", "2026-11-23 ", "2026-11-29", "2026-11-30",
		"50.00 %", "(5 of 8 points repeat the one before and are not shown)"} {
		if !strings.Contains(out, s) {
			t.Errorf("trend table lacks %q:\n%s", s, out)
		}
	}
	// header, updates, column names, 3 points (the first, the change, the last), the note
	if len(lines) != 7 || strings.Contains(out, "2026-11-24") {
		t.Errorf("trend table of %d lines:\n%s", len(lines), out)
	}
}

// A trend without a step has few points: a day by the hour, a week or a month by the day, a
// quarter by the week, longer by whole weeks — never another step than the documented ones.
func TestDefaultTrendStep(t *testing.T) {
	day, week := 24*time.Hour, 7*24*time.Hour
	from2016 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC).Sub(time.Date(2016, 1, 1, 0, 0, 0, 0, time.UTC))
	for span, want := range map[time.Duration]time.Duration{
		time.Hour: 5 * time.Minute, day: time.Hour, 7 * day: day, 30 * day: day, 90 * day: week, 365 * day: 2 * week,
		from2016: 19 * week, // was 3096h: 129 days
	} {
		if got := DefaultTrendStep(span); got != want || span/got+1 > 32 {
			t.Errorf("DefaultTrendStep(%s) = %s, want %s", span, got, want)
		}
	}
	for span := time.Duration(0); span < 300*365*day; span = span*5/4 + time.Minute {
		got := DefaultTrendStep(span)
		if !slices.Contains(trendSteps, got) && got%week != 0 || span/got+1 > 32 {
			t.Errorf("DefaultTrendStep(%s) = %s: not a documented step, or more than 32 points", span, got)
		}
	}
}

// POST /v1/sql takes the statement as {"query": …} or as the body itself.
func TestSQLBodyForms(t *testing.T) {
	for _, c := range []struct {
		contentType, body, want, err string
	}{
		{"application/json", `{"query": "SELECT 1"}`, "SELECT 1", ""},
		{"application/json; charset=utf-8", ` {"query": "SELECT 2"}`, "SELECT 2", ""},
		{"", `{"query": "SELECT 3"}`, "SELECT 3", ""},
		{"text/plain", "SELECT 4\nFROM v_updates", "SELECT 4\nFROM v_updates", ""},
		{"text/plain; charset=utf-8", "SELECT '{'", "SELECT '{'", ""},
		{"application/x-www-form-urlencoded", "SELECT 5", "SELECT 5", ""}, // curl -d
		{"", "SELECT 6", "SELECT 6", ""},
		{"application/json", "SELECT 7", "", `{"query"`},
		{"text/plain", "  \n", "", "empty"},
		{"application/json", `{"query": ""}`, "", "empty"},
		{"text/plain", "SELECT '\xff'", "", "UTF-8"},
	} {
		got, err := SQLQuery(c.contentType, []byte(c.body))
		if got != c.want || (err == nil) != (c.err == "") || (err != nil && !strings.Contains(err.Error(), c.err)) {
			t.Errorf("%q %q: %q %v, want %q %q", c.contentType, c.body, got, err, c.want, c.err)
		}
	}
}

// The report and SQL metrics exist from registration, every report and outcome at 0, and count
// answers by outcome.
func TestMetrics(t *testing.T) {
	reg := newRegistry()
	mux := newMux(&API{Site: "P01", Database: "statepipe_p01", Store: fixedSQL{unreachable: unreachable{}, err: &schema.SQLBusyError{Running: 2}}, Registerer: reg})
	reg.has(t,
		`statepipe_report_queries_total{code="ok",report="compliance"} 0`,
		`statepipe_report_queries_total{code="not_found",report="machines"} 0`,
		`statepipe_report_queries_total{code="malformed",report=""} 0`,
		`statepipe_report_query_seconds_count{report="trend"} 0`,
		`statepipe_sql_queries_total{code="unavailable"} 0`,
		`statepipe_sql_query_seconds_count 0`)
	serve(mux, http.MethodGet, "/v1/reports/deployment", "", "")              // 400: deployment is required
	serve(mux, http.MethodGet, "/v1/reports/deployment?deployment=D", "", "") // 503: the store is unreachable
	serve(mux, http.MethodGet, "/v1/reports/nonsense", "", "")                // 404
	serve(mux, http.MethodPost, "/v1/sql", "text/plain", "SELECT 1")          // 503: busy
	serve(mux, http.MethodPost, "/v1/sql", "application/json", "{}")          // 400
	reg.has(t,
		`statepipe_report_queries_total{code="malformed",report="deployment"} 1`,
		`statepipe_report_queries_total{code="unavailable",report="deployment"} 1`,
		`statepipe_report_queries_total{code="not_found",report=""} 1`,
		`statepipe_report_query_seconds_count{report="deployment"} 2`,
		`statepipe_sql_queries_total{code="unavailable"} 1`,
		`statepipe_sql_queries_total{code="malformed"} 1`,
		`statepipe_sql_query_seconds_count 2`)
}

// registry is a Prometheus registry whose metrics a test reads as text.
type registry struct{ *prometheus.Registry }

func newRegistry() registry { return registry{prometheus.NewRegistry()} }

// has asserts that the registry's exposition holds every series line of want.
func (r registry) has(t *testing.T, want ...string) {
	t.Helper()
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(r.Registry, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for _, s := range want {
		if !strings.Contains(rec.Body.String(), s+"\n") {
			t.Errorf("metrics lack %s:\n%s", s, rec.Body)
		}
	}
}

func newMux(a *API) *http.ServeMux {
	mux := http.NewServeMux()
	a.Register(mux)
	return mux
}

// serve answers one request with mux.
func serve(mux *http.ServeMux, method, path, contentType, body string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	mux.ServeHTTP(rec, req)
	return rec
}
