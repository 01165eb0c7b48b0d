package main

// End-to-end tests of the reports beside compliance — deployment, errors, scan, computer,
// update, trend — and of the analyst views of schema/ddl/0003_views.sql. Each test imports
// reference data and posts state messages over HTTP, folds the expected answer from the same
// messages with rpEstate (folding rules 1–4 written out plainly), and polls the report until
// it equals that answer exactly.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/statepipe/statepipe/report"
	"github.com/statepipe/statepipe/schema"
)

// rpKey is a state key (client, topic type, topic id).
type rpKey struct {
	client string
	topic  schema.TopicType
	id     string
}

// rpEstate posts reports to a site and is the oracle of what the site must show.
type rpEstate struct {
	t       *testing.T
	s       *testSite
	current map[rpKey]schema.StateMessage    // greatest serial per key (rule 1)
	markers map[rpKey]uint64                 // (client, topic, "") → greatest full-report marker (rule 2)
	sent    map[string][]schema.StateMessage // every message per client
}

func newRPEstate(t *testing.T, s *testSite) *rpEstate {
	return &rpEstate{t: t, s: s, current: map[rpKey]schema.StateMessage{}, markers: map[rpKey]uint64{},
		sent: map[string][]schema.StateMessage{}}
}

// send posts one report exactly as given (serials included) and folds it into the oracle.
func (e *rpEstate) send(client string, full []schema.TopicType, msgs ...schema.StateMessage) {
	e.t.Helper()
	rep := &schema.Report{V: schema.Version, Client: client, Site: e.s.code, FullTypes: full, Messages: msgs}
	if _, err := e.s.client(client).Send(context.Background(), rep); err != nil {
		e.t.Fatalf("send %s: %v", client, err)
	}
	minSerial := msgs[0].Serial
	for _, m := range msgs {
		minSerial = min(minSerial, m.Serial)
		e.sent[client] = append(e.sent[client], m)
		k := rpKey{client, m.TopicType, m.TopicID}
		if cur, ok := e.current[k]; !ok || cur.Serial < m.Serial {
			e.current[k] = m
		}
	}
	for _, tt := range full {
		k := rpKey{client, tt, ""}
		e.markers[k] = max(e.markers[k], minSerial)
	}
}

// live returns the live state of a key: its greatest serial, unless a later full report of
// its type removed it.
func (e *rpEstate) live(client string, tt schema.TopicType, id string) (schema.StateMessage, bool) {
	m, ok := e.current[rpKey{client, tt, id}]
	if !ok || m.Serial < e.markers[rpKey{client, tt, ""}] {
		return schema.StateMessage{}, false
	}
	return m, true
}

// liveKeys returns every live key of the given topic types.
func (e *rpEstate) liveKeys(types ...schema.TopicType) map[rpKey]schema.StateMessage {
	out := map[rpKey]schema.StateMessage{}
	for k := range e.current {
		if slices.Contains(types, k.topic) {
			if m, ok := e.live(k.client, k.topic, k.id); ok {
				out[k] = m
			}
		}
	}
	return out
}

// clients returns every client that sent something, sorted.
func (e *rpEstate) clients() []string {
	var out []string
	for c := range e.sent {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}

// lastScan is the client-clock time of the client's latest successful scan (501 = 3 or 6).
func (e *rpEstate) lastScan(client, source string) (int64, bool) {
	var last int64
	ok := false
	for _, m := range e.sent[client] {
		if m.TopicType == schema.TopicScan && (source == "" || m.TopicID == source) &&
			(m.State == schema.ScanCompleted || m.State == schema.ScanCompletedWithErrors) {
			if !ok || m.Time > last {
				last, ok = m.Time, true
			}
		}
	}
	return last, ok
}

// compliance is folding rule 3 for (client, update); firstSynced holds the catalog.
func (e *rpEstate) compliance(client, update string, firstSynced map[string]int64) (state int, inferred bool) {
	if m, ok := e.live(client, schema.TopicUpdateCompliance, update); ok && m.State >= 1 && m.State <= 3 {
		return int(m.State), false
	}
	fs, inCatalog := firstSynced[update]
	if scan, scanned := e.lastScan(client, ""); inCatalog && scanned && scan > fs {
		return 1, true
	}
	return 0, false
}

func rpMsg(serial uint64, tt schema.TopicType, id string, state int32, hresult uint32, at int64) schema.StateMessage {
	return schema.StateMessage{Serial: serial, Time: at, TopicType: tt, TopicID: id, State: state, Error: rpHR(hresult)}
}

// rpHR is an HRESULT as it travels: a signed 32-bit integer.
func rpHR(code uint32) int32 { return int32(code) }

// rpPct is compliant_pct: x / total × 100, two decimals.
func rpPct(x, total int64) float64 {
	return float64(int64(float64(x)*100/float64(total)*100+0.5)) / 100
}

// rpRef imports reference records of a kind as JSON lines.
func (s *testSite) rpRef(kind schema.RefKind, records ...any) {
	s.t.Helper()
	var lines []string
	for _, r := range records {
		b, err := json.Marshal(r)
		if err != nil {
			s.t.Fatal(err)
		}
		lines = append(lines, string(b))
	}
	resp, err := http.Post(s.url+"/v1/ref/"+string(kind), "application/x-ndjson", strings.NewReader(strings.Join(lines, "\n")))
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	var ack struct {
		Kind     string `json:"kind"`
		Imported int    `json:"imported"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&ack); err != nil || resp.StatusCode != 200 || ack.Imported != len(records) {
		s.t.Fatalf("import %s: %s %+v %v", kind, resp.Status, ack, err)
	}
}

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

// rpRows runs SQL through POST /v1/sql and renders each row as "a|b|c" (NULL as null).
func (s *testSite) rpRows(q string) []string {
	s.t.Helper()
	res, code := s.sql(q)
	if code != 200 {
		s.t.Fatalf("sql %q: status %d", q, code)
	}
	out := []string{}
	for _, r := range res.Rows {
		cells := make([]string, len(r))
		for i, v := range r {
			switch v := v.(type) {
			case nil:
				cells[i] = "null"
			case float64:
				cells[i] = strconv.FormatFloat(v, 'f', -1, 64)
			default:
				cells[i] = fmt.Sprint(v)
			}
		}
		out = append(out, strings.Join(cells, "|"))
	}
	return out
}

// rpView polls an analyst view (through POST /v1/sql) until its rows equal want.
func (s *testSite) rpView(name, q string, want []string) {
	s.t.Helper()
	rpPoll(s.t, func() string {
		if got := s.rpRows(q); !reflect.DeepEqual(got, want) {
			return fmt.Sprintf("%s:\n got  %q\n want %q", name, got, want)
		}
		return ""
	})
}

// rpPoll polls f until it returns "" (a match), failing with its last answer after a minute.
func rpPoll(t *testing.T, f func() string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	last := ""
	for time.Now().Before(deadline) {
		if last = f(); last == "" {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal(last)
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

func rpStates(tt schema.TopicType, counts map[int]int64) []report.StateCount {
	out := make([]report.StateCount, tt.StateCount())
	for i := range out {
		out[i] = report.StateCount{State: i, Name: tt.StateName(i), Clients: counts[i]}
	}
	return out
}

var rpStart = time.Date(2024, 10, 1, 0, 0, 0, 0, time.UTC)

// Deployment enforcement (rule 4): every member of the target collection counts, in its live
// 301 state for the deployment or in state 0; drill-down lists the machines of one state.
func TestDeploymentReportCountsTargetedClients(t *testing.T) {
	s := startSite(t, siteOpts{})
	e := newRPEstate(t, s)
	var members []string
	for i := range 12 {
		members = append(members, fmt.Sprintf("m%02d", i))
	}
	s.rpRef(schema.RefCollections, schema.Collection{ID: "C", Name: "ring 1", Members: members},
		schema.Collection{ID: "C2", Name: "ring 2", Members: []string{"m00", "x1"}})
	s.rpRef(schema.RefDeployments,
		schema.Deployment{ID: "D", Name: "November", Updates: []string{"U1", "U2"}, Collection: "C", Start: rpStart, Deadline: rpStart.Add(72 * time.Hour), Mandatory: true},
		schema.Deployment{ID: "D2", Name: "other", Updates: []string{"U1"}, Collection: "C2", Start: rpStart, Deadline: rpStart.Add(72 * time.Hour)})

	// m00…m08 report; m09…m11 are targeted but silent.
	for i, st := range []int32{4, 4, 4, 6, 6, 7, 1, 5, 4} {
		e.send(members[i], nil, rpMsg(10, 301, "D", st, 0, 1000))
	}
	e.send("m02", nil, rpMsg(20, 301, "D", 9, 0x80070643, 2000))             // later serial: 4 → 9
	e.send("m03", nil, rpMsg(5, 301, "D", 4, 0, 3000))                       // older serial arriving late: stays 6
	e.send("m03", nil, rpMsg(11, 301, "D2", 4, 0, 3000))                     // another deployment
	e.send("m05", []schema.TopicType{301}, rpMsg(30, 301, "D2", 8, 0, 4000)) // full 301 report without D: D removed
	e.send("x1", nil, rpMsg(1, 301, "D", 6, 0, 1000))                        // outside the collection

	want := map[int]int64{}
	byState := map[int][]string{}
	for _, c := range members {
		st := 0
		if m, ok := e.live(c, 301, "D"); ok {
			st = int(m.State)
		}
		want[st]++
		byState[st] = append(byState[st], c)
	}
	// The oracle, spelled out: m05 removed, m09–m11 silent → 4 in state 0; m02 moved to 9.
	if fmt.Sprint(want) != "map[0:4 1:1 4:3 5:1 6:2 9:1]" {
		t.Fatalf("oracle: %v", want)
	}
	var got report.Deployment
	rpPoll(t, func() string {
		if code, e := s.rpGet("/v1/reports/deployment?deployment=D", &got); code != 200 {
			return fmt.Sprintf("status %d %+v", code, e)
		}
		if w := rpStates(301, want); !reflect.DeepEqual(got.States, w) || got.Total != 12 {
			return fmt.Sprintf("deployment D: total %d states %+v\nwant total 12 states %+v", got.Total, got.States, w)
		}
		return ""
	})
	if got.Name != "November" || got.Collection != "C" || got.Machines != nil || got.State != nil {
		t.Errorf("deployment D: %+v", got)
	}
	for _, st := range []int{0, 4, 6, 3} {
		var dd report.Deployment
		if code, e := s.rpGet(fmt.Sprintf("/v1/reports/deployment?deployment=D&state=%d", st), &dd); code != 200 {
			t.Fatalf("drill-down %d: %d %+v", st, code, e)
		}
		w := byState[st]
		if w == nil {
			w = []string{}
		}
		if !reflect.DeepEqual(dd.Machines, w) || dd.State == nil || *dd.State != st {
			t.Errorf("drill-down state %d: machines %v, want %v", st, dd.Machines, w)
		}
	}
	var raw map[string]any
	s.rpGet("/v1/reports/deployment?deployment=D&state=3", &raw)
	if m, ok := raw["machines"].([]any); !ok || len(m) != 0 {
		t.Errorf("an empty drill-down must still carry machines: []: %v", raw["machines"])
	}
	s.rpStatus("/v1/reports/deployment?deployment=nope", 404, "deployment")
	s.rpStatus("/v1/reports/deployment", 400, "deployment")
	s.rpStatus("/v1/reports/deployment?deployment=D&state=11", 400, "state")
	s.rpStatus("/v1/reports/deployment?deployment=D&state=x", 400, "state")
	var v json.RawMessage
	if code, e := s.rpGet("/v1/reports/nonsense", &v); code != 404 || e.Field != "name" ||
		!strings.Contains(e.Message, strings.Join(report.ReportNames, ", ")) {
		t.Errorf("unknown report: %d %+v", code, e)
	}

	// v_deployment_state: the same targeted clients, silent ones as 0 with a NULL time.
	var wantRows []string
	for _, dep := range []struct{ id, coll string }{{"D", "C"}, {"D2", "C2"}} {
		targets := members
		if dep.coll == "C2" {
			targets = []string{"m00", "x1"}
		}
		for _, c := range targets {
			row := fmt.Sprintf("%s|%s|0|%s|0|null", dep.id, c, schema.TopicDeploymentEnforcement.StateName(0))
			if m, ok := e.live(c, 301, dep.id); ok {
				row = fmt.Sprintf("%s|%s|%d|%s|%d|%d", dep.id, c, m.State, schema.TopicDeploymentEnforcement.StateName(int(m.State)), m.Error, m.Time)
			}
			wantRows = append(wantRows, row)
		}
	}
	if len(wantRows) != 14 {
		t.Fatalf("oracle: %q", wantRows)
	}
	s.rpView("v_deployment_state", "SELECT deployment_id, client, state, state_name, error, toUnixTimestamp64Milli(time) FROM "+
		database(s.code)+".v_deployment_state ORDER BY deployment_id, client", wantRows)
}

// The errors report: distinct machines per HRESULT of live 402/301 states, most machines
// first, ties by code; described from the HRESULT table; optionally per deployment.
func TestErrorsReportStackRanksByMachines(t *testing.T) {
	s := startSite(t, siteOpts{})
	e := newRPEstate(t, s)
	const (
		denied  = 0x80070005 // E_ACCESSDENIED
		dns     = 0x8024402C // WU_E_PT_WINHTTP_NAME_NOT_RESOLVED
		install = 0x80070643 // ERROR_INSTALL_FAILURE
		mystery = 0x80249999 // not in the table
	)
	s.rpRef(schema.RefCollections, schema.Collection{ID: "CE", Name: "pilot", Members: []string{"e0", "e1", "e3"}})
	s.rpRef(schema.RefDeployments, schema.Deployment{ID: "D", Name: "pilot", Updates: []string{"U1"}, Collection: "CE", Start: rpStart, Deadline: rpStart.Add(time.Hour)})
	e.send("e0", nil, rpMsg(1, 402, "U1", 11, denied, 1), rpMsg(2, 402, "U2", 11, denied, 1), // one machine, two updates
		rpMsg(3, 501, "wsus", 5, dns, 1)) // a scan error is not an enforcement error
	e.send("e1", nil, rpMsg(1, 402, "U1", 14, denied, 1), rpMsg(2, 402, "U3", 11, install, 1))
	e.send("e1", nil, rpMsg(3, 402, "U3", 10, 0, 2))                                         // cleared by a later success
	e.send("e2", nil, rpMsg(1, 402, "U1", 6, denied, 1), rpMsg(2, 500, "U1", 2, install, 1)) // 500 errors do not count
	e.send("e3", nil, rpMsg(1, 301, "D", 6, dns, 1))
	e.send("e4", nil, rpMsg(1, 301, "D", 9, dns, 1), rpMsg(2, 402, "U2", 11, mystery, 1))
	e.send("e5", nil, rpMsg(1, 402, "U3", 11, install, 1))

	expect := func(deployment string) []report.ErrorCount {
		machines := map[int32]map[string]bool{}
		for k, m := range e.liveKeys(301, 402) {
			if m.Error == 0 {
				continue
			}
			if deployment != "" && (!slices.Contains([]string{"e0", "e1", "e3"}, k.client) ||
				(k.topic == 402 && k.id != "U1") || (k.topic == 301 && k.id != deployment)) {
				continue
			}
			if machines[m.Error] == nil {
				machines[m.Error] = map[string]bool{}
			}
			machines[m.Error][k.client] = true
		}
		out := []report.ErrorCount{}
		for code, ms := range machines {
			out = append(out, report.ErrorCount{Error: code, Hex: fmt.Sprintf("0x%08X", uint32(code)),
				Description: schema.DescribeHRESULT(code), Machines: int64(len(ms))})
		}
		sort.Slice(out, func(i, j int) bool {
			if out[i].Machines != out[j].Machines {
				return out[i].Machines > out[j].Machines
			}
			return out[i].Error < out[j].Error
		})
		return out
	}
	want := expect("")
	// The oracle, spelled out: denied ×3 (e0, e1, e2), dns ×2 (e3, e4), then the ties install
	// (e5) before mystery (e4), by code.
	if fmt.Sprint(want) != fmt.Sprint([]report.ErrorCount{
		{Error: rpHR(denied), Hex: "0x80070005", Description: "E_ACCESSDENIED: access is denied", Machines: 3},
		{Error: rpHR(dns), Hex: "0x8024402C", Description: schema.DescribeHRESULT(rpHR(dns)), Machines: 2},
		{Error: rpHR(install), Hex: "0x80070643", Description: "ERROR_INSTALL_FAILURE: fatal error during installation", Machines: 1},
		{Error: rpHR(mystery), Hex: "0x80249999", Description: "", Machines: 1},
	}) {
		t.Fatalf("oracle: %+v", want)
	}
	var got report.Errors
	rpPoll(t, func() string {
		if code, e := s.rpGet("/v1/reports/errors", &got); code != 200 {
			return fmt.Sprintf("status %d %+v", code, e)
		}
		if !reflect.DeepEqual(got.Errors, want) {
			return fmt.Sprintf("errors:\n got  %+v\n want %+v", got.Errors, want)
		}
		return ""
	})
	if got.Errors[1].Description == "" || got.Errors[3].Description != "" {
		t.Errorf("descriptions: %+v", got.Errors)
	}
	// Per deployment: its collection (e0, e1, e3), its updates (U1) and itself.
	want = expect("D")
	if len(want) != 2 || want[0].Machines != 2 || want[1].Machines != 1 {
		t.Fatalf("oracle for D: %+v", want)
	}
	rpPoll(t, func() string { // the deployment and its collection may be folded after the states
		if code, e := s.rpGet("/v1/reports/errors?deployment=D", &got); code != 200 || !reflect.DeepEqual(got.Errors, want) || got.DeploymentID != "D" {
			return fmt.Sprintf("errors for D: %d %+v %+v, want %+v", code, e, got, want)
		}
		return ""
	})
	s.rpStatus("/v1/reports/errors?deployment=nope", 404, "deployment")

	// v_enforcement_errors: every live 301/402 state with an error, hex as Windows shows it.
	var wantRows []string
	for k, m := range e.liveKeys(301, 402) {
		if m.Error != 0 {
			wantRows = append(wantRows, fmt.Sprintf("%s|%d|%s|%d|0x%08X|%d", k.client, k.topic, k.id, m.Error, uint32(m.Error), m.Time))
		}
	}
	sort.Strings(wantRows)
	if len(wantRows) != 8 {
		t.Fatalf("oracle: %q", wantRows)
	}
	s.rpView("v_enforcement_errors", "SELECT client, topic_type, topic_id, error, hex, toUnixTimestamp64Milli(time) FROM "+
		database(s.code)+".v_enforcement_errors ORDER BY client, topic_type, topic_id", wantRows)
}

// The scan report: clients by the state of their latest scan (greatest serial across
// sources), silent clients as Unknown, and clients without a successful scan in N days.
func TestScanReportCountsStatesAndStaleClients(t *testing.T) {
	s := startSite(t, siteOpts{})
	e := newRPEstate(t, s)
	now := time.Now().UnixMilli()
	day := int64(24 * time.Hour / time.Millisecond)
	members := []string{"s0", "s1", "s2", "s3", "s4", "s5", "s6"}
	s.rpRef(schema.RefCollections, schema.Collection{ID: "CS", Name: "servers", Members: members})
	e.send("s0", nil, rpMsg(1, 501, "wsus", 3, 0, now-day))                                   // recent success
	e.send("s1", nil, rpMsg(1, 501, "wsus", 6, 0x8024400A, now-10*day))                       // success with errors, 10 days ago
	e.send("s2", nil, rpMsg(1, 501, "wsus", 5, 0x8024402C, now-day))                          // failed, never succeeded
	e.send("s3", nil, rpMsg(1, 501, "wsus", 3, 0, now-2*day), rpMsg(2, 501, "mu", 2, 0, now)) // latest: running on mu
	e.send("s4", nil, rpMsg(5, 501, "wsus", 2, 0, now))
	e.send("s4", nil, rpMsg(3, 501, "wsus", 3, 0, now-3600_000)) // older serial, late: live stays 2, but it was a success
	e.send("s5", nil, rpMsg(1, 500, "U1", 2, 0, now))            // never scanned
	e.send("o1", nil, rpMsg(1, 501, "wsus", 3, 0, now))          // outside the collection
	// s6 is silent.

	expect := func(scope []string, days int64) report.Scan {
		counts := map[int]int64{}
		stale := []string{}
		for _, c := range scope {
			st, best := 0, uint64(0)
			for k, m := range e.liveKeys(501) {
				if k.client == c && m.Serial > best {
					st, best = int(m.State), m.Serial
				}
			}
			counts[st]++
			if last, ok := e.lastScan(c, ""); !ok || last < now-days*day {
				stale = append(stale, c)
			}
		}
		return report.Scan{States: rpStates(501, counts), Total: int64(len(scope)), StaleDays: int(days),
			StaleClients: int64(len(stale)), Stale: stale}
	}
	check := func(path string, want report.Scan) string {
		var got report.Scan
		if code, e := s.rpGet(path, &got); code != 200 {
			return fmt.Sprintf("%s: status %d %+v", path, code, e)
		}
		got.Site, got.AsOf, got.Collection = "", time.Time{}, ""
		if !reflect.DeepEqual(got, want) {
			return fmt.Sprintf("%s:\n got  %+v\n want %+v", path, got, want)
		}
		return ""
	}
	want := expect(members, 7)
	// The oracle, spelled out: 0 → s5, s6; 2 → s3, s4; 3 → s0; 5 → s2; 6 → s1.
	if fmt.Sprint(want.States[0].Clients, want.States[2].Clients, want.States[3].Clients, want.States[5].Clients,
		want.States[6].Clients, want.Stale) != "2 2 1 1 1 [s1 s2 s5 s6]" {
		t.Fatalf("oracle: %+v", want)
	}
	rpPoll(t, func() string { return check("/v1/reports/scan?collection=CS", want) })
	rpPoll(t, func() string { return check("/v1/reports/scan?collection=CS&days=30", expect(members, 30)) })
	// Site scope: every client heard from (s6 never reported, o1 did).
	site := e.clients()
	if len(site) != 7 {
		t.Fatalf("oracle: %v", site)
	}
	rpPoll(t, func() string { return check("/v1/reports/scan", expect(site, 7)) })
	s.rpStatus("/v1/reports/scan?days=0", 400, "days")
	s.rpStatus("/v1/reports/scan?days=week", 400, "days")
	s.rpStatus("/v1/reports/scan?collection=nope", 404, "collection")

	// v_update_scan_status: per live 501 key, its state and time, and the source's latest
	// successful scan.
	var wantRows []string
	for k, m := range e.liveKeys(501) {
		success := "null"
		if last, ok := e.lastScan(k.client, k.id); ok {
			success = strconv.FormatInt(last, 10)
		}
		wantRows = append(wantRows, fmt.Sprintf("%s|%s|%d|%s|%d|%s", k.client, k.id, m.State, schema.TopicScan.StateName(int(m.State)), m.Time, success))
	}
	sort.Strings(wantRows)
	if len(wantRows) != 7 {
		t.Fatalf("oracle: %q", wantRows)
	}
	s.rpView("v_update_scan_status", "SELECT client, source, state, state_name, toUnixTimestamp64Milli(last_scan_time), "+
		"toUnixTimestamp64Milli(last_successful_scan_time) FROM "+database(s.code)+".v_update_scan_status ORDER BY client, source", wantRows)
}

// rule3Fixture is the estate of the computer and update tests: a catalog, a list, and clients
// whose compliance is stated, inferred from a scan, or unknown.
func rule3Fixture(t *testing.T) (*testSite, *rpEstate, map[string]int64) {
	s := startSite(t, siteOpts{})
	e := newRPEstate(t, s)
	at := func(d string) time.Time { tm, _ := time.Parse(time.DateOnly, d); return tm }
	s.rpRef(schema.RefCatalog,
		schema.Update{ID: "U1", Article: "KB5001", Title: "Update one", FirstSynced: at("2024-10-01")},
		schema.Update{ID: "U2", Article: "KB5002", Title: "Update two", FirstSynced: at("2024-11-01")},
		schema.Update{ID: "U3", Article: "KB5003", Title: "Update three", FirstSynced: at("2024-12-01")},
		schema.Update{ID: "UE", Article: "KB4000", Title: "Expired", Expired: true, FirstSynced: at("2024-01-01")})
	s.rpRef(schema.RefUpdateLists, schema.UpdateList{ID: "L", Name: "November", Updates: []string{"U1", "U2", "U3", "UX"}})
	s.rpRef(schema.RefCollections, schema.Collection{ID: "C", Name: "desktops", Members: []string{"a", "b", "c", "d"}})
	firstSynced := map[string]int64{"U1": ms("2024-10-01T00:00:00Z"), "U2": ms("2024-11-01T00:00:00Z"),
		"U3": ms("2024-12-01T00:00:00Z"), "UE": ms("2024-01-01T00:00:00Z")}
	// a: U1 installed; scanned after U2's sync but before U3's → U2 inferred, U3 and UX (not
	// in the catalog) unknown. A later failed scan is not a successful one.
	e.send("a", []schema.TopicType{500}, rpMsg(1, 500, "U1", 3, 0, ms("2024-11-15T00:00:00Z")))
	e.send("a", nil, rpMsg(2, 501, "wsus", 3, 0, ms("2024-11-15T00:00:00Z")))
	e.send("a", nil, rpMsg(3, 501, "wsus", 5, 0x8024402C, ms("2025-01-01T00:00:00Z")))
	// b: scanned after everything; U1 stated 0 (falls to inference), U2 installed, UX stated
	// not required → compliant.
	e.send("b", []schema.TopicType{500}, rpMsg(1, 500, "U1", 0, 0, 1), rpMsg(2, 500, "U2", 3, 0, 2), rpMsg(3, 500, "UX", 1, 0, 3))
	e.send("b", nil, rpMsg(4, 501, "wsus", 6, 0, ms("2025-01-01T00:00:00Z")))
	// c: never scanned; U1 required and failing to install.
	e.send("c", nil, rpMsg(1, 500, "U1", 2, 0, 5), rpMsg(2, 402, "U1", 11, 0x80070643, 6))
	// d: a member that never reported. e: outside the collection, U2 required.
	e.send("e", nil, rpMsg(1, 500, "U2", 2, 0, 5), rpMsg(2, 402, "U2", 12, 0, 6))
	return s, e, firstSynced
}

// The computer report: one machine against a list, with Not-required inference (rule 3).
func TestComputerReportInfersNotRequired(t *testing.T) {
	s, e, firstSynced := rule3Fixture(t)
	titles := map[string]string{"U1": "Update one", "U2": "Update two", "U3": "Update three"}
	expect := func(client string) report.Computer {
		rep := report.Computer{Client: client, List: "L"}
		required, ok := false, true
		for _, u := range []string{"U1", "U2", "U3", "UX"} {
			st, inferred := e.compliance(client, u, firstSynced)
			cu := report.ComputerUpdate{UpdateID: u, Title: titles[u], State: st, StateName: schema.TopicUpdateCompliance.StateName(st), Inferred: inferred}
			if m, live := e.live(client, 500, u); live && !inferred && st != 0 {
				tm := time.UnixMilli(m.Time).UTC()
				cu.Serial, cu.Time = m.Serial, &tm
			}
			if m, live := e.live(client, 402, u); live {
				st, code := int(m.State), m.Error
				cu.EnforcementState, cu.EnforcementName, cu.Error, cu.Hex = &st, schema.TopicUpdateEnforcement.StateName(st), &code, fmt.Sprintf("0x%08X", uint32(code))
			}
			required = required || st == 2
			ok = ok && (st == 1 || st == 3)
			rep.Updates = append(rep.Updates, cu)
		}
		rep.Compliant = map[bool]string{true: "compliant", false: "unknown"}[ok]
		if required {
			rep.Compliant = "non_compliant"
		}
		if last, scanned := e.lastScan(client, ""); scanned {
			tm := time.UnixMilli(last).UTC()
			rep.LastScanTime = &tm
		}
		return rep
	}
	// The oracle, spelled out.
	for client, want := range map[string]string{"a": "3 1 0 0 unknown", "b": "1 3 1 1 compliant", "c": "2 0 0 0 non_compliant", "d": "0 0 0 0 unknown"} {
		w := expect(client)
		if got := fmt.Sprintf("%d %d %d %d %s", w.Updates[0].State, w.Updates[1].State, w.Updates[2].State, w.Updates[3].State, w.Compliant); got != want {
			t.Fatalf("oracle for %s: %s, want %s", client, got, want)
		}
	}
	for _, client := range []string{"a", "b", "c", "d"} {
		want := expect(client)
		rpPoll(t, func() string {
			var got report.Computer
			if code, e := s.rpGet("/v1/reports/computer?list=L&client="+client, &got); code != 200 {
				return fmt.Sprintf("computer %s: status %d %+v", client, code, e)
			}
			got.Site, got.AsOf = "", time.Time{}
			if !reflect.DeepEqual(got, want) {
				g, _ := json.Marshal(got)
				w, _ := json.Marshal(want)
				return fmt.Sprintf("computer %s:\n got  %s\n want %s", client, g, w)
			}
			return ""
		})
	}
	// Explicit ids, sorted and deduplicated.
	var got report.Computer
	if code, _ := s.rpGet("/v1/reports/computer?client=c&updates=U2,U1,U2", &got); code != 200 || len(got.Updates) != 2 ||
		got.Updates[0].UpdateID != "U1" || got.Updates[0].Hex != "0x80070643" || got.Updates[0].EnforcementName != "Failed to install" {
		t.Errorf("computer c updates=U2,U1,U2: %+v", got)
	}
	s.rpStatus("/v1/reports/computer?list=L&client=nobody", 404, "client")
	s.rpStatus("/v1/reports/computer?list=L", 400, "client")
	s.rpStatus("/v1/reports/computer?client=a", 400, "list")
	s.rpStatus("/v1/reports/computer?client=a&list=nope", 404, "list")
	s.rpStatus("/v1/reports/computer?client=a&list=L&updates=U1", 400, "updates")

	// v_update_compliance_status: clients heard from × catalog updates not expired, rule 3.
	var wantRows []string
	for _, c := range e.clients() {
		for _, u := range []string{"U1", "U2", "U3"} {
			st, _ := e.compliance(c, u, firstSynced)
			last := "null"
			if l, ok := e.lastScan(c, ""); ok {
				last = strconv.FormatInt(l, 10)
			}
			wantRows = append(wantRows, fmt.Sprintf("%s|%s|%d|%s|%s", c, u, st, schema.TopicUpdateCompliance.StateName(st), last))
		}
	}
	if len(wantRows) != 12 {
		t.Fatalf("oracle: %q", wantRows)
	}
	s.rpView("v_update_compliance_status", "SELECT client, update_id, state, state_name, toUnixTimestamp64Milli(last_scan_time) FROM "+
		database(s.code)+".v_update_compliance_status ORDER BY client, update_id", wantRows)
}

// The update report: one update across the estate or a collection, with rule 3 and the live
// enforcement states.
func TestUpdateReportAcrossTheEstate(t *testing.T) {
	s, e, firstSynced := rule3Fixture(t)
	expect := func(update string, scope []string) report.Update {
		want := report.Update{UpdateID: update}
		enf := map[int]int64{}
		for _, c := range scope {
			st, _ := e.compliance(c, update, firstSynced)
			switch st {
			case 3:
				want.Installed++
			case 2:
				want.Required++
			case 1:
				want.NotRequired++
			default:
				want.Unknown++
			}
			if m, ok := e.live(c, 402, update); ok {
				enf[int(m.State)]++
			}
		}
		want.Total = int64(len(scope))
		if want.Total > 0 {
			want.CompliantPct = rpPct(want.Installed+want.NotRequired, want.Total)
		}
		want.Enforcement = rpStates(402, enf)
		return want
	}
	check := func(path string, want report.Update) string {
		var got report.Update
		if code, e := s.rpGet(path, &got); code != 200 {
			return fmt.Sprintf("%s: status %d %+v", path, code, e)
		}
		got.Site, got.AsOf, got.Article, got.Title, got.InCatalog, got.Expired, got.Collection = "", time.Time{}, "", "", false, false, ""
		if !reflect.DeepEqual(got, want) {
			return fmt.Sprintf("%s:\n got  %+v\n want %+v", path, got, want)
		}
		return ""
	}
	site := e.clients() // a, b, c, e
	collection := []string{"a", "b", "c", "d"}
	want := expect("U2", site)
	// The oracle, spelled out: a inferred, b installed, c unknown, e required (downloading).
	if fmt.Sprint(want.Installed, want.Required, want.NotRequired, want.Unknown, want.Total, want.CompliantPct, want.Enforcement[12].Clients) != "1 1 1 1 4 50 1" {
		t.Fatalf("oracle: %+v", want)
	}
	rpPoll(t, func() string { return check("/v1/reports/update?update=U2", want) })
	for _, c := range []struct {
		path  string
		want  report.Update
		spell string
	}{
		{"/v1/reports/update?update=U2&collection=C", expect("U2", collection), "1 0 1 2 4"},
		{"/v1/reports/update?update=U1&collection=C", expect("U1", collection), "1 1 1 1 4"},
		{"/v1/reports/update?update=U3", expect("U3", site), "0 0 1 3 4"},
		{"/v1/reports/update?update=UX", expect("UX", site), "0 0 1 3 4"}, // not in the catalog: only b's stated 1
	} {
		if got := fmt.Sprint(c.want.Installed, c.want.Required, c.want.NotRequired, c.want.Unknown, c.want.Total); got != c.spell {
			t.Errorf("oracle %s: %s, want %s", c.path, got, c.spell)
		}
		rpPoll(t, func() string { return check(c.path, c.want) })
	}
	var got report.Update
	s.rpGet("/v1/reports/update?update=U1", &got)
	if got.Title != "Update one" || got.Article != "KB5001" || !got.InCatalog || got.Enforcement[11].Clients != 1 {
		t.Errorf("update U1: %+v", got)
	}
	s.rpGet("/v1/reports/update?update=UX", &got)
	if got.InCatalog || got.Title != "" {
		t.Errorf("update UX is not in the catalog: %+v", got)
	}
	s.rpStatus("/v1/reports/update?update=nope", 404, "update")
	s.rpStatus("/v1/reports/update", 400, "update")
	s.rpStatus("/v1/reports/update?update=U1&collection=nope", 404, "collection")
}

// The trend report: compliance as of each step from the history, by acceptance time. A
// client's retry of an earlier report (accepted again later) moves nothing.
func TestTrendShowsChangeOverTime(t *testing.T) {
	s := startSite(t, siteOpts{})
	e := newRPEstate(t, s)
	db := database(s.code)
	s.rpRef(schema.RefCatalog,
		schema.Update{ID: "U1", Title: "one", FirstSynced: rpStart}, schema.Update{ID: "U2", Title: "two", FirstSynced: rpStart})
	s.rpRef(schema.RefUpdateLists, schema.UpdateList{ID: "L", Name: "list", Updates: []string{"U1", "U2"}})
	s.rpRef(schema.RefCollections, schema.Collection{ID: "C", Name: "ring", Members: []string{"t0", "t1", "t2", "t3"}})
	rawRows := func(n int) {
		rpPoll(t, func() string {
			// Acceptances: a retry is a new one, a projector redelivery is not.
			rows := s.rpRows("SELECT count() FROM (SELECT DISTINCT client, serial, accepted_at FROM " + db + ".state_messages)")
			if rows[0] != strconv.Itoa(n) {
				return fmt.Sprintf("raw log holds %s acceptances, want %d", rows[0], n)
			}
			// The reference data is folded too (it travels its own topic).
			if got := s.rpRows("SELECT (SELECT count() FROM " + db + ".v_collection_members WHERE collection = 'C') + " +
				"(SELECT count() FROM " + db + ".v_update_lists WHERE id = 'L')"); got[0] != "5" {
				return "collection C or list L not folded yet"
			}
			return ""
		})
	}
	type snap struct{ installed, required, notRequired int64 }
	snapshot := func(scope []string) (snap, int64) {
		var sn snap
		for _, c := range scope {
			for _, u := range []string{"U1", "U2"} {
				if m, ok := e.live(c, 500, u); ok {
					switch m.State {
					case 3:
						sn.installed++
					case 2:
						sn.required++
					case 1:
						sn.notRequired++
					}
				}
			}
		}
		return sn, int64(len(scope))
	}
	members := []string{"t0", "t1", "t2", "t3"}

	// Phase A.
	t1 := []schema.StateMessage{rpMsg(1, 500, "U1", 3, 0, 1), rpMsg(2, 500, "U2", 1, 0, 1)}
	e.send("t0", nil, rpMsg(1, 500, "U1", 2, 0, 1), rpMsg(2, 500, "U2", 2, 0, 1))
	e.send("t1", nil, t1...)
	rawRows(4)
	aColl, _ := snapshot(members)
	aSite, aClients := snapshot(e.clients())
	mid := time.Now().UTC().Truncate(time.Millisecond)
	time.Sleep(20 * time.Millisecond)

	// Phase B: t0 installs U1, t2 appears requiring U1, t1 retries its first report.
	e.send("t0", nil, rpMsg(3, 500, "U1", 3, 0, 2))
	e.send("t2", nil, rpMsg(1, 500, "U1", 2, 0, 2))
	e.send("t1", nil, t1...)
	rawRows(8)
	bColl, _ := snapshot(members)
	bSite, bClients := snapshot(e.clients())
	step := time.Since(mid).Truncate(time.Millisecond) + time.Millisecond

	// The oracle, spelled out.
	if fmt.Sprint(aColl, bColl, aSite, aClients, bSite, bClients) != "{1 2 1} {2 2 1} {1 2 1} 2 {2 2 1} 3" {
		t.Fatalf("oracle: %v %v %v %d %v %d", aColl, bColl, aSite, aClients, bSite, bClients)
	}
	point := func(at time.Time, sn snap, clients int64) report.TrendPoint {
		p := report.TrendPoint{Time: at, Installed: sn.installed, Required: sn.required, NotRequired: sn.notRequired,
			Clients: clients, Total: 2 * clients}
		p.Unknown = p.Total - sn.installed - sn.required - sn.notRequired
		p.CompliantPct = rpPct(sn.installed+sn.notRequired, p.Total)
		return p
	}
	q := url.Values{"list": {"L"}, "from": {mid.Format(time.RFC3339Nano)}, "to": {mid.Add(step).Format(time.RFC3339Nano)}, "step": {step.String()}}
	for _, c := range []struct {
		collection string
		want       []report.TrendPoint
	}{
		{"C", []report.TrendPoint{point(mid, aColl, 4), point(mid.Add(step), bColl, 4)}},
		{"", []report.TrendPoint{point(mid, aSite, aClients), point(mid.Add(step), bSite, bClients)}},
	} {
		q.Set("collection", c.collection)
		var got report.Trend
		if code, e := s.rpGet("/v1/reports/trend?"+q.Encode(), &got); code != 200 {
			t.Fatalf("trend: %d %+v", code, e)
		}
		for i := range got.Points {
			got.Points[i].Time = got.Points[i].Time.UTC()
		}
		if !reflect.DeepEqual(got.Points, c.want) || !reflect.DeepEqual(got.Updates, []string{"U1", "U2"}) {
			t.Errorf("trend collection %q:\n got  %+v\n want %+v", c.collection, got.Points, c.want)
		}
	}
	// Defaults: the last 7 days by the hour, ending now; everything is visible at the end.
	var got report.Trend
	if code, e := s.rpGet("/v1/reports/trend?updates=U1,U2&collection=C", &got); code != 200 || len(got.Points) != 169 ||
		got.Points[168] != point(got.Points[168].Time, bColl, 4) || got.Points[0] != point(got.Points[0].Time, snap{}, 4) {
		t.Errorf("default trend: %d %+v, %d points, last %+v", code, e, len(got.Points), got.Points[len(got.Points)-1])
	}
	s.rpStatus("/v1/reports/trend?list=L&step=soon", 400, "step")
	s.rpStatus("/v1/reports/trend?list=L&step=1ms", 400, "step") // 7 days of milliseconds is too many points
	s.rpStatus("/v1/reports/trend?list=L&from=yesterday", 400, "from")
	s.rpStatus("/v1/reports/trend?list=L&from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", 400, "from")
	s.rpStatus("/v1/reports/trend", 400, "list")
	s.rpStatus("/v1/reports/trend?list=nope", 404, "list")
}
