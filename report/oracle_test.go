package report_test

// The reports beside compliance — deployment, errors, scan, computer, update, trend, machines —
// and the analyst views of schema/ddl/0003_views.sql, against an oracle: each test folds
// reports into a site (store_test.go) and, from the same messages, the expected answer with
// estate (folding rules 1–4 written out plainly), and asks for the report once: the store is
// folded when the request runs.

import (
	"encoding/json"
	"fmt"
	"maps"
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

// key is a state key (client, topic type, topic id).
type key struct {
	client string
	topic  schema.TopicType
	id     string
}

// estate sends reports to a site and is the oracle of what the site must show.
type estate struct {
	s       *site
	current map[key]schema.StateMessage      // greatest serial per key (rule 1)
	markers map[key]uint64                   // (client, topic, "") → greatest full-report marker (rule 2)
	sent    map[string][]schema.StateMessage // every message per client
}

func newEstate(s *site) *estate {
	return &estate{s: s, current: map[key]schema.StateMessage{}, markers: map[key]uint64{}, sent: map[string][]schema.StateMessage{}}
}

// send folds one report exactly as given (serials included) into the site and the oracle.
func (e *estate) send(client string, full []schema.TopicType, msgs ...schema.StateMessage) {
	e.s.report(&schema.Report{Client: client, FullTypes: full, Messages: slices.Clone(msgs)})
	minSerial := msgs[0].Serial
	for _, m := range msgs {
		minSerial = min(minSerial, m.Serial)
		e.sent[client] = append(e.sent[client], m)
		k := key{client, m.TopicType, m.TopicID}
		if cur, ok := e.current[k]; !ok || cur.Serial < m.Serial {
			e.current[k] = m
		}
	}
	for _, tt := range full {
		k := key{client, tt, ""}
		e.markers[k] = max(e.markers[k], minSerial)
	}
}

// live returns the live state of a key: its greatest serial, unless a later full report of
// its type removed it.
func (e *estate) live(client string, tt schema.TopicType, id string) (schema.StateMessage, bool) {
	m, ok := e.current[key{client, tt, id}]
	if !ok || m.Serial < e.markers[key{client, tt, ""}] {
		return schema.StateMessage{}, false
	}
	return m, true
}

// liveKeys returns every live key of the given topic types.
func (e *estate) liveKeys(types ...schema.TopicType) map[key]schema.StateMessage {
	out := map[key]schema.StateMessage{}
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
func (e *estate) clients() []string {
	var out []string
	for c := range e.sent {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}

// lastScan is the client-clock time of the client's latest successful scan (501 = 3 or 6).
func (e *estate) lastScan(client, source string) (int64, bool) {
	var last int64
	ok := false
	for _, m := range e.sent[client] {
		if m.IsSuccessfulScan() && (source == "" || m.TopicID == source) {
			if !ok || m.Time > last {
				last, ok = m.Time, true
			}
		}
	}
	return last, ok
}

// compliance is folding rule 3 for (client, update); firstSynced holds the catalog.
func (e *estate) compliance(client, update string, firstSynced map[string]int64) (state int, inferred bool) {
	if m, ok := e.live(client, schema.TopicUpdateCompliance, update); ok && m.State >= 1 && m.State <= 3 {
		return int(m.State), false
	}
	fs, inCatalog := firstSynced[update]
	if scan, scanned := e.lastScan(client, ""); inCatalog && scanned && scan > fs {
		return 1, true
	}
	return 0, false
}

func msg(serial uint64, tt schema.TopicType, id string, state int32, hresult uint32, at int64) schema.StateMessage {
	return schema.StateMessage{Serial: serial, Time: at, TopicType: tt, TopicID: id, State: state, Error: hr(hresult)}
}

// hr is an HRESULT as it travels: a signed 32-bit integer.
func hr(code uint32) int32 { return int32(code) }

// pct is compliant_pct: x / total × 100, two decimals.
func pct(x, total int64) float64 {
	return float64(int64(float64(x)*100/float64(total)*100+0.5)) / 100
}

func ms(s string) int64 {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t.UnixMilli()
}

func states(tt schema.TopicType, counts map[int]int64) []report.StateCount {
	out := make([]report.StateCount, tt.StateCount())
	for i := range out {
		out[i] = report.StateCount{State: i, Name: tt.StateName(i), Clients: counts[i]}
	}
	return out
}

var start = time.Date(2024, 10, 1, 0, 0, 0, 0, time.UTC)

// Deployment enforcement (rule 4): every member of the target collection counts, in its live
// 301 state for the deployment or in state 0; drill-down lists the machines of one state, and
// the machines report pages them.
func TestDeploymentReportCountsTargetedClients(t *testing.T) {
	s := newSite(t, 0)
	e := newEstate(s)
	var members []string
	for i := range 12 {
		members = append(members, fmt.Sprintf("m%02d", i))
	}
	s.ref(schema.RefCollections, schema.Collection{ID: "C", Name: "ring 1", Members: members},
		schema.Collection{ID: "C2", Name: "ring 2", Members: []string{"m00", "x1"}})
	s.ref(schema.RefDeployments,
		schema.Deployment{ID: "D", Name: "November", Updates: []string{"U1", "U2"}, Collection: "C", Start: start, Deadline: start.Add(72 * time.Hour), Mandatory: true},
		schema.Deployment{ID: "D2", Name: "other", Updates: []string{"U1"}, Collection: "C2", Start: start, Deadline: start.Add(72 * time.Hour)})

	// m00…m08 report; m09…m11 are targeted but silent.
	for i, st := range []int32{4, 4, 4, 6, 6, 7, 1, 5, 4} {
		e.send(members[i], nil, msg(10, 301, "D", st, 0, 1000))
	}
	e.send("m02", nil, msg(20, 301, "D", 9, 0x80070643, 2000))             // later serial: 4 → 9
	e.send("m03", nil, msg(5, 301, "D", 4, 0, 3000))                       // older serial arriving late: stays 6
	e.send("m03", nil, msg(11, 301, "D2", 4, 0, 3000))                     // another deployment
	e.send("m05", []schema.TopicType{301}, msg(30, 301, "D2", 8, 0, 4000)) // full 301 report without D: D removed
	e.send("x1", nil, msg(1, 301, "D", 6, 0, 1000))                        // outside the collection
	s.fold()

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
	s.must("/v1/reports/deployment?deployment=D", &got)
	if w := states(301, want); !reflect.DeepEqual(got.States, w) || got.Total != 12 {
		t.Errorf("deployment D: total %d states %+v\nwant total 12 states %+v", got.Total, got.States, w)
	}
	if got.Name != "November" || got.Collection != "C" || got.CollectionName != "ring 1" || got.Machines != nil || got.State != nil {
		t.Errorf("deployment D: %+v", got)
	}
	for _, st := range []int{0, 4, 6, 3} {
		w := byState[st]
		if w == nil {
			w = []string{}
		}
		var dd report.Deployment
		s.must(fmt.Sprintf("/v1/reports/deployment?deployment=D&state=%d", st), &dd)
		if !reflect.DeepEqual(dd.Machines, w) || dd.State == nil || *dd.State != st {
			t.Errorf("drill-down state %d: machines %v, want %v", st, dd.Machines, w)
		}
		// The machines report: the same machines, a page of 2 at a time.
		var pages []string
		after := ""
		for range 10 {
			var m report.Machines
			s.must(fmt.Sprintf("/v1/reports/machines?deployment=D&state=%d&limit=2&after=%s", st, after), &m)
			if m.Total != int64(len(w)) || m.DeploymentName != "November" || m.Collection != "C" || m.StateName != schema.TopicDeploymentEnforcement.StateName(st) {
				t.Errorf("machines of state %d: %+v", st, m)
			}
			pages = append(pages, m.Machines...)
			if after = m.Next; after == "" {
				break
			}
		}
		if !reflect.DeepEqual(append([]string{}, pages...), w) {
			t.Errorf("machines of state %d in pages: %v, want %v", st, pages, w)
		}
	}
	var raw map[string]any
	s.must("/v1/reports/deployment?deployment=D&state=3", &raw)
	if m, ok := raw["machines"].([]any); !ok || len(m) != 0 {
		t.Errorf("an empty drill-down must still carry machines: []: %v", raw["machines"])
	}
	s.status("/v1/reports/deployment?deployment=nope", 404, "deployment")
	s.status("/v1/reports/deployment", 400, "deployment")
	s.status("/v1/reports/deployment?deployment=D&state=11", 400, "state")
	s.status("/v1/reports/deployment?deployment=D&state=x", 400, "state")
	s.status("/v1/reports/machines?deployment=D&state=11", 400, "state")
	s.status("/v1/reports/machines?deployment=D&state=1&collection=C", 400, "collection")
	s.status("/v1/reports/machines?deployment=nope&state=1", 404, "deployment")
	code, ed := s.get("/v1/reports/nonsense", new(json.RawMessage))
	if code != 404 || ed.Field != "name" || !strings.Contains(ed.Message, strings.Join(report.ReportNames(), ", ")) {
		t.Errorf("unknown report: %d %+v", code, ed)
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
	// Unqualified: the view resolves in the site's database.
	s.view("v_deployment_state", "SELECT deployment_id, client, state, state_name, error, toUnixTimestamp64Milli(time) FROM "+
		"v_deployment_state ORDER BY deployment_id, client", wantRows)
}

// stackRanked sorts errors as the errors report ranks them: most machines first, ties by code.
func stackRanked(out []report.ErrorCount) []report.ErrorCount {
	sort.Slice(out, func(i, j int) bool {
		if out[i].Machines != out[j].Machines {
			return out[i].Machines > out[j].Machines
		}
		return out[i].Error < out[j].Error
	})
	return out
}

// The errors report: distinct machines per HRESULT of live 402/301 states, most machines
// first, ties by code; described from the HRESULT table; with the updates and deployments
// that carry each; optionally per deployment.
func TestErrorsReportStackRanksByMachines(t *testing.T) {
	s := newSite(t, 0)
	e := newEstate(s)
	const (
		denied  = 0x80070005 // E_ACCESSDENIED
		dns     = 0x8024402C // WU_E_PT_WINHTTP_NAME_NOT_RESOLVED
		install = 0x80070643 // ERROR_INSTALL_FAILURE
		mystery = 0x80249999 // not in the table
	)
	s.ref(schema.RefCollections, schema.Collection{ID: "CE", Name: "pilot", Members: []string{"e0", "e1", "e3"}})
	s.ref(schema.RefDeployments, schema.Deployment{ID: "D", Name: "pilot wave", Updates: []string{"U1"}, Collection: "CE", Start: start, Deadline: start.Add(time.Hour)})
	e.send("e0", nil, msg(1, 402, "U1", 11, denied, 1), msg(2, 402, "U2", 11, denied, 1), // one machine, two updates
		msg(3, 501, "wsus", 5, dns, 1)) // a scan error is not an enforcement error
	e.send("e1", nil, msg(1, 402, "U1", 14, denied, 1), msg(2, 402, "U3", 11, install, 1))
	e.send("e1", nil, msg(3, 402, "U3", 10, 0, 2))                                       // cleared by a later success
	e.send("e2", nil, msg(1, 402, "U1", 6, denied, 1), msg(2, 500, "U1", 2, install, 1)) // 500 errors do not count
	e.send("e3", nil, msg(1, 301, "D", 6, dns, 1))
	e.send("e4", nil, msg(1, 301, "D", 9, dns, 1), msg(2, 402, "U2", 11, mystery, 1))
	e.send("e5", nil, msg(1, 402, "U3", 11, install, 1))
	s.fold()

	expect := func(deployment string) []report.ErrorCount {
		machines := map[int32]map[string]bool{}
		topics := map[int32]map[key]map[string]bool{} // error → (topic type, id) → machines
		for k, m := range e.liveKeys(301, 402) {
			if m.Error == 0 {
				continue
			}
			if deployment != "" && (!slices.Contains([]string{"e0", "e1", "e3"}, k.client) ||
				(k.topic == 402 && k.id != "U1") || (k.topic == 301 && k.id != deployment)) {
				continue
			}
			if machines[m.Error] == nil {
				machines[m.Error], topics[m.Error] = map[string]bool{}, map[key]map[string]bool{}
			}
			machines[m.Error][k.client] = true
			tk := key{topic: k.topic, id: k.id}
			if topics[m.Error][tk] == nil {
				topics[m.Error][tk] = map[string]bool{}
			}
			topics[m.Error][tk][k.client] = true
		}
		out := []report.ErrorCount{}
		for code, ms := range machines {
			ec := report.ErrorCount{Error: code, Hex: fmt.Sprintf("0x%08X", uint32(code)),
				Description: schema.DescribeHRESULT(code), Machines: int64(len(ms)), Updates: []string{}, Deployments: []string{}}
			var tks []key
			for tk := range topics[code] {
				tks = append(tks, tk)
			}
			sort.Slice(tks, func(i, j int) bool {
				if a, b := len(topics[code][tks[i]]), len(topics[code][tks[j]]); a != b {
					return a > b
				}
				return tks[i].id < tks[j].id
			})
			for _, tk := range tks {
				if tk.topic == 402 {
					ec.Updates = append(ec.Updates, tk.id)
				} else {
					ec.Deployments = append(ec.Deployments, tk.id)
				}
			}
			out = append(out, ec)
		}
		return stackRanked(out)
	}
	want := expect("")
	// The oracle, spelled out: denied ×3 (e0, e1, e2: U1 ×3, U2 ×1), dns ×2 (e3, e4: D), then
	// the ties install (e5: U3) before mystery (e4: U2), by code.
	if fmt.Sprint(want) != fmt.Sprint([]report.ErrorCount{
		{Error: hr(denied), Hex: "0x80070005", Description: "E_ACCESSDENIED: access is denied", Machines: 3, Updates: []string{"U1", "U2"}, Deployments: []string{}},
		{Error: hr(dns), Hex: "0x8024402C", Description: schema.DescribeHRESULT(hr(dns)), Machines: 2, Updates: []string{}, Deployments: []string{"D"}},
		{Error: hr(install), Hex: "0x80070643", Description: "ERROR_INSTALL_FAILURE: fatal error during installation", Machines: 1, Updates: []string{"U3"}, Deployments: []string{}},
		{Error: hr(mystery), Hex: "0x80249999", Description: "", Machines: 1, Updates: []string{"U2"}, Deployments: []string{}},
	}) {
		t.Fatalf("oracle: %+v", want)
	}
	var got report.Errors
	s.must("/v1/reports/errors", &got)
	if !reflect.DeepEqual(got.Errors, want) {
		t.Errorf("errors:\n got  %+v\n want %+v", got.Errors, want)
	}
	// Per deployment: its collection (e0, e1, e3), its updates (U1) and itself.
	want = expect("D")
	if len(want) != 2 || want[0].Machines != 2 || want[1].Machines != 1 {
		t.Fatalf("oracle for D: %+v", want)
	}
	s.must("/v1/reports/errors?deployment=D", &got)
	if !reflect.DeepEqual(got.Errors, want) || got.DeploymentID != "D" || got.DeploymentName != "pilot wave" {
		t.Errorf("errors for D: %+v, want %+v", got, want)
	}
	s.status("/v1/reports/errors?deployment=nope", 404, "deployment")

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
	s.view("v_enforcement_errors", "SELECT client, topic_type, topic_id, error, hex, toUnixTimestamp64Milli(time) FROM "+
		s.db+".v_enforcement_errors ORDER BY client, topic_type, topic_id", wantRows)
}

// The scan report: clients by the state of their latest scan (greatest serial across
// sources), silent clients as Unknown, and clients without a successful scan in N days.
func TestScanReportCountsStatesAndStaleClients(t *testing.T) {
	s := newSite(t, 0)
	e := newEstate(s)
	now := time.Now().UnixMilli()
	day := int64(24 * time.Hour / time.Millisecond)
	members := []string{"s0", "s1", "s2", "s3", "s4", "s5", "s6"}
	s.ref(schema.RefCollections, schema.Collection{ID: "CS", Name: "servers", Members: members})
	e.send("s0", nil, msg(1, 501, "wsus", 3, 0, now-day))                                 // recent success
	e.send("s1", nil, msg(1, 501, "wsus", 6, 0x8024400A, now-10*day))                     // success with errors, 10 days ago
	e.send("s2", nil, msg(1, 501, "wsus", 5, 0x8024402C, now-day))                        // failed, never succeeded
	e.send("s3", nil, msg(1, 501, "wsus", 3, 0, now-2*day), msg(2, 501, "mu", 2, 0, now)) // latest: running on mu
	e.send("s4", nil, msg(5, 501, "wsus", 2, 0, now))
	e.send("s4", nil, msg(3, 501, "wsus", 3, 0, now-3600_000)) // older serial, late: live stays 2, but it was a success
	e.send("s5", nil, msg(1, 500, "U1", 2, 0, now))            // never scanned
	e.send("o1", nil, msg(1, 501, "wsus", 3, 0, now))          // outside the collection
	// s6 is silent.
	s.fold()

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
		// Per source: the clients of scope by their state for it, those without one Unknown.
		bySource := map[string]map[int]int64{}
		for k, m := range e.liveKeys(501) {
			if !slices.Contains(scope, k.client) {
				continue
			}
			if bySource[k.id] == nil {
				bySource[k.id] = map[int]int64{0: int64(len(scope))}
			}
			if m.State > 0 {
				bySource[k.id][int(m.State)]++
				bySource[k.id][0]--
			}
		}
		sources := []report.ScanSource{}
		for _, id := range slices.Sorted(maps.Keys(bySource)) {
			sources = append(sources, report.ScanSource{Source: id, States: states(501, bySource[id])})
		}
		return report.Scan{States: states(501, counts), Sources: sources, Total: int64(len(scope)), StaleDays: int(days),
			StaleClients: int64(len(stale)), Stale: stale}
	}
	check := func(path string, want report.Scan) {
		t.Helper()
		var got report.Scan
		s.must(path, &got)
		got.Site, got.AsOf, got.Collection, got.CollectionName = "", time.Time{}, "", ""
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got  %+v\n want %+v", path, got, want)
		}
	}
	want := expect(members, 7)
	// The oracle, spelled out: 0 → s5, s6; 2 → s3, s4; 3 → s0; 5 → s2; 6 → s1.
	if fmt.Sprint(want.States[0].Clients, want.States[2].Clients, want.States[3].Clients, want.States[5].Clients,
		want.States[6].Clients, want.Stale) != "2 2 1 1 1 [s1 s2 s5 s6]" {
		t.Fatalf("oracle: %+v", want)
	}
	check("/v1/reports/scan?collection=CS", want)
	check("/v1/reports/scan?collection=CS&days=30", expect(members, 30))
	// Site scope: every client heard from (s6 never reported, o1 did).
	site := e.clients()
	if len(site) != 7 {
		t.Fatalf("oracle: %v", site)
	}
	check("/v1/reports/scan", expect(site, 7))
	s.status("/v1/reports/scan?days=0", 400, "days")
	s.status("/v1/reports/scan?days=week", 400, "days")
	s.status("/v1/reports/scan?collection=nope", 404, "collection")

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
	s.view("v_update_scan_status", "SELECT client, source, state, state_name, toUnixTimestamp64Milli(last_scan_time), "+
		"toUnixTimestamp64Milli(last_successful_scan_time) FROM "+s.db+".v_update_scan_status ORDER BY client, source", wantRows)
}

// Scan errors (ConfigMgr's Troubleshooting 1 and 3) and the scan drill-down (Scan 3 and 4):
// per HRESULT the distinct clients whose live 501 state of some source carries it, with the
// sources; the machines of a scan error or of a latest scan state, over the site and a
// collection.
func TestScanErrorsAndScanDrillDown(t *testing.T) {
	s := newSite(t, 0)
	e := newEstate(s)
	const (
		dns     = 0x8024402C // WU_E_PT_WINHTTP_NAME_NOT_RESOLVED
		timeout = 0x8024401C
		denied  = 0x80070005
	)
	s.ref(schema.RefCollections, schema.Collection{ID: "CS", Name: "servers", Members: []string{"s0", "s1", "s2", "s9"}})
	e.send("s0", nil, msg(1, 501, "wsus", 5, dns, 1), msg(2, 501, "mu", 5, dns, 2)) // one machine, two sources, one code
	e.send("s1", nil, msg(1, 501, "wsus", 6, timeout, 1))
	e.send("s2", nil, msg(1, 501, "wsus", 5, dns, 1))
	e.send("s2", nil, msg(2, 501, "wsus", 3, 0, 2))                                   // cleared by a later success
	e.send("s3", nil, msg(1, 501, "mu", 5, dns, 1), msg(2, 402, "U1", 11, denied, 1)) // an enforcement error is not a scan error
	e.send("s4", nil, msg(1, 501, "wsus", 2, 0, 1))
	e.send("s5", nil, msg(1, 500, "U1", 2, 0, 1)) // never scanned
	s.fold()

	expect := func(scope []string) []report.ErrorCount {
		machines := map[int32]map[string]bool{}
		bySource := map[int32]map[string]int{}
		for k, m := range e.liveKeys(501) {
			if m.Error == 0 || (scope != nil && !slices.Contains(scope, k.client)) {
				continue
			}
			if machines[m.Error] == nil {
				machines[m.Error], bySource[m.Error] = map[string]bool{}, map[string]int{}
			}
			machines[m.Error][k.client] = true
			bySource[m.Error][k.id]++
		}
		out := []report.ErrorCount{}
		for code, ms := range machines {
			ec := report.ErrorCount{Error: code, Hex: fmt.Sprintf("0x%08X", uint32(code)), Description: schema.DescribeHRESULT(code),
				Machines: int64(len(ms)), Updates: []string{}, Deployments: []string{}}
			ec.Sources = slices.SortedFunc(maps.Keys(bySource[code]), func(a, b string) int {
				if c := bySource[code][b] - bySource[code][a]; c != 0 {
					return c
				}
				return strings.Compare(a, b)
			})
			out = append(out, ec)
		}
		return stackRanked(out)
	}
	want := expect(nil)
	// The oracle, spelled out: dns on s0 (both sources) and s3 (mu): 2 machines, mu ×2 before
	// wsus ×1; timeout on s1.
	if fmt.Sprint(want) != fmt.Sprint([]report.ErrorCount{
		{Error: hr(dns), Hex: "0x8024402C", Description: schema.DescribeHRESULT(hr(dns)), Machines: 2, Updates: []string{}, Deployments: []string{}, Sources: []string{"mu", "wsus"}},
		{Error: hr(timeout), Hex: "0x8024401C", Description: schema.DescribeHRESULT(hr(timeout)), Machines: 1, Updates: []string{}, Deployments: []string{}, Sources: []string{"wsus"}},
	}) {
		t.Fatalf("oracle: %+v", want)
	}
	var got report.Errors
	s.must("/v1/reports/errors?topic=scan", &got)
	if !reflect.DeepEqual(got.Errors, want) || got.Topic != "scan" {
		t.Errorf("scan errors:\n got  %+v\n want %+v", got, want)
	}
	servers := []string{"s0", "s1", "s2", "s9"}
	got = report.Errors{}
	s.must("/v1/reports/errors?topic=scan&collection=CS", &got)
	if w := expect(servers); !reflect.DeepEqual(got.Errors, w) || len(w) != 2 || w[0].Machines != 1 || got.CollectionName != "servers" {
		t.Errorf("scan errors of CS:\n got  %+v\n want %+v", got, w)
	}
	// The enforcement errors are unchanged by scan errors, and take a collection too.
	got = report.Errors{}
	s.must("/v1/reports/errors", &got)
	if len(got.Errors) != 1 || got.Errors[0].Error != hr(denied) || got.Errors[0].Sources != nil || got.Topic != "enforcement" {
		t.Errorf("enforcement errors: %+v", got)
	}
	s.must("/v1/reports/errors?collection=CS", &got)
	if len(got.Errors) != 0 {
		t.Errorf("enforcement errors of CS: %+v", got)
	}
	s.status("/v1/reports/errors?topic=bogus", 400, "topic")
	s.status("/v1/reports/errors?topic=scan&deployment=D", 400, "deployment")
	s.status("/v1/reports/errors?topic=scan&collection=nope", 404, "collection")

	// Troubleshooting 3: the machines of a scan error.
	machines := func(path string) []string {
		t.Helper()
		var m report.Machines
		s.must(path, &m)
		if m.Total != int64(len(m.Machines)) {
			t.Errorf("%s: total %d, listed %d", path, m.Total, len(m.Machines))
		}
		return m.Machines
	}
	withError := func(code int32, scope []string) []string {
		set := map[string]bool{}
		for k, m := range e.liveKeys(501) {
			if m.Error == code && (scope == nil || slices.Contains(scope, k.client)) {
				set[k.client] = true
			}
		}
		return slices.Sorted(maps.Keys(set))
	}
	if got, want := machines("/v1/reports/machines?topic=scan&error=0x8024402C"), withError(hr(dns), nil); !slices.Equal(got, want) || len(want) != 2 {
		t.Errorf("machines of scan error dns: %v, want %v", got, want)
	}
	if got, want := machines("/v1/reports/machines?topic=scan&error=0x8024402C&collection=CS"), withError(hr(dns), servers); !slices.Equal(got, want) || len(want) != 1 {
		t.Errorf("machines of scan error dns in CS: %v, want %v", got, want)
	}
	if got := machines("/v1/reports/machines?error=0x8024402C"); len(got) != 0 {
		t.Errorf("machines of enforcement error dns: %v, want none (it is a scan error)", got)
	}
	// Scan 3 and 4: the machines whose latest scan (greatest serial across sources) is in a
	// state; those that never scanned in 0.
	latest := func(scope []string, st int32) []string {
		var out []string
		for _, c := range scope {
			state, best := int32(0), uint64(0)
			for k, m := range e.liveKeys(501) {
				if k.client == c && m.Serial > best {
					state, best = m.State, m.Serial
				}
			}
			if state == st {
				out = append(out, c)
			}
		}
		sort.Strings(out)
		return out
	}
	all := e.clients()
	for _, tc := range []struct {
		path  string
		scope []string
		state int32
		n     int
	}{
		{"/v1/reports/machines?topic=scan&state=5", all, 5, 2},                   // s0 (mu, serial 2), s3
		{"/v1/reports/machines?topic=scan&state=3", all, 3, 1},                   // s2
		{"/v1/reports/machines?topic=scan&state=0", all, 0, 1},                   // s5
		{"/v1/reports/machines?topic=scan&state=0&collection=CS", servers, 0, 1}, // s9, silent
		{"/v1/reports/machines?topic=scan&state=6&collection=CS", servers, 6, 1}, // s1
	} {
		want := latest(tc.scope, tc.state)
		if got := machines(tc.path); !slices.Equal(got, want) || len(want) != tc.n {
			t.Errorf("%s: %v, want %v (oracle %d)", tc.path, got, want, tc.n)
		}
	}
	s.status("/v1/reports/machines?topic=scan&state=7", 400, "state")
	s.status("/v1/reports/machines?topic=scan", 400, "state")
	s.status("/v1/reports/machines?topic=scan&state=5&update=U1", 400, "topic")
	s.status("/v1/reports/machines?topic=scan&error=0x8024402C&deployment=D", 400, "topic")
	s.status("/v1/reports/machines?topic=evaluation&error=0x8024402C", 400, "topic")
}

// rule3Fixture is the estate of the computer, update and machines tests: a catalog, a list,
// and clients whose compliance is stated, inferred from a scan, or unknown.
func rule3Fixture(t *testing.T) (*site, *estate, map[string]int64) {
	s := newSite(t, 0)
	e := newEstate(s)
	at := func(d string) time.Time { tm, _ := time.Parse(time.DateOnly, d); return tm }
	s.ref(schema.RefCatalog,
		schema.Update{ID: "U1", Article: "KB5001", Title: "Update one", FirstSynced: at("2024-10-01")},
		schema.Update{ID: "U2", Article: "KB5002", Title: "Update two", FirstSynced: at("2024-11-01")},
		schema.Update{ID: "U3", Article: "KB5003", Title: "Update three", FirstSynced: at("2024-12-01")},
		schema.Update{ID: "UE", Article: "KB4000", Title: "Expired", Expired: true, FirstSynced: at("2024-01-01")})
	s.ref(schema.RefUpdateLists, schema.UpdateList{ID: "L", Name: "November", Updates: []string{"U1", "U2", "U3", "UX"}})
	s.ref(schema.RefCollections, schema.Collection{ID: "C", Name: "desktops", Members: []string{"a", "b", "c", "d"}})
	firstSynced := map[string]int64{"U1": ms("2024-10-01T00:00:00Z"), "U2": ms("2024-11-01T00:00:00Z"),
		"U3": ms("2024-12-01T00:00:00Z"), "UE": ms("2024-01-01T00:00:00Z")}
	// a: U1 installed; scanned after U2's sync but before U3's → U2 inferred, U3 and UX (not
	// in the catalog) unknown. A later failed scan is not a successful one.
	e.send("a", []schema.TopicType{500}, msg(1, 500, "U1", 3, 0, ms("2024-11-15T00:00:00Z")))
	e.send("a", nil, msg(2, 501, "wsus", 3, 0, ms("2024-11-15T00:00:00Z")))
	e.send("a", nil, msg(3, 501, "wsus", 5, 0x8024402C, ms("2025-01-01T00:00:00Z")))
	// b: scanned after everything; U1 stated 0 (falls to inference), U2 installed, UX stated
	// not required → compliant.
	e.send("b", []schema.TopicType{500}, msg(1, 500, "U1", 0, 0, 1), msg(2, 500, "U2", 3, 0, 2), msg(3, 500, "UX", 1, 0, 3))
	e.send("b", nil, msg(4, 501, "wsus", 6, 0, ms("2025-01-01T00:00:00Z")))
	// c: never scanned; U1 required and failing to install.
	e.send("c", nil, msg(1, 500, "U1", 2, 0, 5), msg(2, 402, "U1", 11, 0x80070643, 6))
	// d: a member that never reported. e: outside the collection, U2 required.
	e.send("e", nil, msg(1, 500, "U2", 2, 0, 5), msg(2, 402, "U2", 12, 0, 6))
	s.fold()
	return s, e, firstSynced
}

// The computer report: one machine against a list, with Not-required inference (rule 3).
func TestComputerReportInfersNotRequired(t *testing.T) {
	s, e, firstSynced := rule3Fixture(t)
	titles := map[string]string{"U1": "Update one", "U2": "Update two", "U3": "Update three"}
	expect := func(client string) report.Computer {
		rep := report.Computer{Client: client, List: "L", ListName: "November"}
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
		var got report.Computer
		s.must("/v1/reports/computer?list=L&client="+client, &got)
		got.Site, got.AsOf = "", time.Time{}
		if !reflect.DeepEqual(got, want) {
			g, _ := json.Marshal(got)
			w, _ := json.Marshal(want)
			t.Errorf("computer %s:\n got  %s\n want %s", client, g, w)
		}
	}
	// Explicit ids, sorted and deduplicated.
	var got report.Computer
	s.must("/v1/reports/computer?client=c&updates=U2,U1,U2", &got)
	if len(got.Updates) != 2 || got.Updates[0].UpdateID != "U1" || got.Updates[0].Hex != "0x80070643" || got.Updates[0].EnforcementName != "Failed to install" {
		t.Errorf("computer c updates=U2,U1,U2: %+v", got)
	}
	s.status("/v1/reports/computer?list=L&client=nobody", 404, "client")
	s.status("/v1/reports/computer?list=L", 400, "client")
	s.status("/v1/reports/computer?client=a", 400, "list")
	s.status("/v1/reports/computer?client=a&list=nope", 404, "list")
	s.status("/v1/reports/computer?client=a&list=L&updates=U1", 400, "updates")
	s.status("/v1/reports/computer?client=a&updates=U1,KB-TYPO", 404, "updates")

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
	s.view("v_update_compliance_status", "SELECT client, update_id, state, state_name, toUnixTimestamp64Milli(last_scan_time) FROM "+
		"v_update_compliance_status ORDER BY client, update_id", wantRows)
}

// The update report: one update across the estate or a collection, with rule 3 and the live
// enforcement states; and the machines of each of its cells.
func TestUpdateReportAcrossTheEstate(t *testing.T) {
	s, e, firstSynced := rule3Fixture(t)
	machines := func(update string, scope []string) map[int][]string {
		out := map[int][]string{}
		for _, c := range scope {
			st, _ := e.compliance(c, update, firstSynced)
			out[st] = append(out[st], c)
		}
		return out
	}
	expect := func(update string, scope []string) report.Update {
		want := report.Update{UpdateID: update}
		enf := map[int]int64{}
		for st, cs := range machines(update, scope) {
			n := int64(len(cs))
			switch st {
			case 3:
				want.Installed = n
			case 2:
				want.Required = n
			case 1:
				want.NotRequired = n
			default:
				want.Unknown = n
			}
		}
		for _, c := range scope {
			if m, ok := e.live(c, 402, update); ok {
				enf[int(m.State)]++
			}
		}
		want.Total = int64(len(scope))
		if want.Total > 0 {
			want.CompliantPct = pct(want.Installed+want.NotRequired, want.Total)
		}
		want.Enforcement = states(402, enf)
		return want
	}
	check := func(path string, want report.Update) {
		t.Helper()
		var got report.Update
		s.must(path, &got)
		got.Site, got.AsOf, got.Article, got.Title, got.InCatalog, got.Expired, got.Collection, got.CollectionName = "", time.Time{}, "", "", false, false, "", ""
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got  %+v\n want %+v", path, got, want)
		}
	}
	site := e.clients() // a, b, c, e
	collection := []string{"a", "b", "c", "d"}
	want := expect("U2", site)
	// The oracle, spelled out: a inferred, b installed, c unknown, e required (downloading).
	if fmt.Sprint(want.Installed, want.Required, want.NotRequired, want.Unknown, want.Total, want.CompliantPct, want.Enforcement[12].Clients) != "1 1 1 1 4 50 1" {
		t.Fatalf("oracle: %+v", want)
	}
	check("/v1/reports/update?update=U2", want)
	for _, c := range []struct {
		update     string
		collection string
		scope      []string
		spell      string
	}{
		{"U2", "C", collection, "1 0 1 2 4"},
		{"U1", "C", collection, "1 1 1 1 4"},
		{"U3", "", site, "0 0 1 3 4"},
		{"UX", "", site, "0 0 1 3 4"}, // not in the catalog: only b's stated 1
	} {
		path := "/v1/reports/update?update=" + c.update
		if c.collection != "" {
			path += "&collection=" + c.collection
		}
		w := expect(c.update, c.scope)
		if got := fmt.Sprint(w.Installed, w.Required, w.NotRequired, w.Unknown, w.Total); got != c.spell {
			t.Errorf("oracle %s: %s, want %s", path, got, c.spell)
		}
		check(path, w)
		// Every cell's machines, as the drill-down lists them.
		for st, name := range []string{"unknown", "not_required", "required", "installed"} {
			var m report.Machines
			s.must("/v1/reports/machines?state="+name+"&"+strings.TrimPrefix(path, "/v1/reports/update?"), &m)
			wm := machines(c.update, c.scope)[st]
			if wm == nil {
				wm = []string{}
			}
			if !reflect.DeepEqual(m.Machines, wm) || m.Total != int64(len(wm)) || m.Next != "" {
				t.Errorf("machines of %s in %s: %+v, want %v", path, name, m, wm)
			}
		}
	}
	var got report.Update
	s.must("/v1/reports/update?update=U1&collection=C", &got)
	if got.Title != "Update one" || got.Article != "KB5001" || !got.InCatalog || got.Enforcement[11].Clients != 1 || got.CollectionName != "desktops" {
		t.Errorf("update U1: %+v", got)
	}
	s.must("/v1/reports/update?update=UX", &got)
	if got.InCatalog || got.Title != "" {
		t.Errorf("update UX is not in the catalog: %+v", got)
	}
	s.status("/v1/reports/update?update=nope", 404, "update")
	s.status("/v1/reports/update", 400, "update")
	s.status("/v1/reports/update?update=U1&collection=nope", 404, "collection")
	s.status("/v1/reports/machines?update=nope&state=required", 404, "update")
	s.status("/v1/reports/machines?update=U1&state=sideways", 400, "state")
	s.status("/v1/reports/machines?update=U1", 400, "state")
	s.status("/v1/reports/machines?state=required", 400, "update")
	s.status("/v1/reports/machines?update=U1&list=L&state=required", 400, "update")
}

// The machines of the compliance report's computers: compliant, non-compliant and unknown
// against a list or ids, as the computer report judges each machine; paged.
func TestMachinesOfTheComputers(t *testing.T) {
	s, _, _ := rule3Fixture(t)
	var comp report.Compliance
	s.must("/v1/reports/compliance?list=L&collection=C", &comp)
	// a unknown (U3, UX), b compliant, c non-compliant, d silent.
	if c := comp.Computers; c.Compliant != 1 || c.NonCompliant != 1 || c.Unknown != 2 || c.CompliantPct != 25 ||
		comp.ListName != "November" || comp.CollectionName != "desktops" {
		t.Fatalf("compliance: %+v", comp)
	}
	for status, want := range map[string][]string{"compliant": {"b"}, "non_compliant": {"c"}, "unknown": {"a", "d"}} {
		var m report.Machines
		s.must("/v1/reports/machines?list=L&collection=C&state="+status, &m)
		if !reflect.DeepEqual(m.Machines, want) || m.ListName != "November" || len(m.Updates) != 4 {
			t.Errorf("machines %s: %+v, want %v", status, m, want)
		}
		// Each agrees with the computer report of that machine.
		for _, c := range want {
			var cr report.Computer
			s.must("/v1/reports/computer?list=L&client="+c, &cr)
			if cr.Compliant != status {
				t.Errorf("machines %s lists %s, whose computer report says %s", status, c, cr.Compliant)
			}
		}
	}
	var m report.Machines
	s.must("/v1/reports/machines?updates=U1,U2&state=unknown&limit=1", &m)
	// Over the site's clients (a, b, c, e): a unknown? a has U1 3, U2 inferred 1 → compliant;
	// b compliant; c required; e required → none unknown.
	if m.Total != 0 || len(m.Machines) != 0 {
		t.Errorf("machines unknown of U1,U2: %+v", m)
	}
	s.must("/v1/reports/machines?updates=U1,U2&state=non_compliant&limit=1", &m)
	if m.Total != 2 || !reflect.DeepEqual(m.Machines, []string{"c"}) || m.Next != "c" {
		t.Errorf("machines non-compliant of U1,U2, first page of 1: %+v", m)
	}
	var last report.Machines
	s.must("/v1/reports/machines?updates=U1,U2&state=non_compliant&limit=1&after=c", &last)
	if !reflect.DeepEqual(last.Machines, []string{"e"}) || last.Next != "" {
		t.Errorf("machines non-compliant of U1,U2, second page: %+v", last)
	}
	s.status("/v1/reports/machines?list=L&state=required", 400, "state")
	s.status("/v1/reports/machines?list=L&state=compliant&limit=0", 400, "limit")
	s.status(fmt.Sprintf("/v1/reports/machines?list=L&state=compliant&limit=%d", report.MaxMachinesPage+1), 400, "limit")
	s.status("/v1/reports/machines?updates=U1,KB-TYPO&state=compliant", 404, "updates")
}

// An update id that is neither in the catalog nor reported by any client is an error naming
// updates (a typo once counted every machine Unknown), in every report that takes updates=.
func TestUnknownUpdateIDsAreNotFound(t *testing.T) {
	s, _, _ := rule3Fixture(t)
	for _, path := range []string{
		"/v1/reports/compliance?updates=KB-TYPO",
		"/v1/reports/compliance?updates=U1,KB-TYPO&source=scan",
		"/v1/reports/computer?client=a&updates=KB-TYPO",
		"/v1/reports/trend?updates=U1,KB-TYPO",
	} {
		code, e := s.get(path, new(json.RawMessage))
		if code != 404 || e.Field != "updates" || !strings.Contains(e.Message, `"KB-TYPO"`) {
			t.Errorf("%s: %d %+v, want 404 naming updates and the id", path, code, e)
		}
	}
	// Known: in the catalog (U3, which no client reported), or reported but not in it (UX).
	var c report.Compliance
	s.must("/v1/reports/compliance?updates=U3,UX", &c)
	if len(c.Updates) != 2 || c.Updates[1].UpdateID != "UX" || c.Updates[1].NotRequired != 1 {
		t.Errorf("compliance of U3, UX: %+v", c.Updates)
	}
}

// Compliance of updates given echoes them (sorted, each once): the table's header names them
// and its drill-down hint gives them, instead of "every catalog update" and "--updates IDS".
func TestComplianceEchoesTheUpdatesGiven(t *testing.T) {
	s, _, _ := rule3Fixture(t)
	var raw json.RawMessage
	s.must("/v1/reports/compliance?updates=UX,U3,UX", &raw)
	var c report.Compliance
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.RequestedUpdates, []string{"U3", "UX"}) || len(c.Updates) != 2 {
		t.Errorf("compliance of UX,U3,UX: requested %q, %d updates", c.RequestedUpdates, len(c.Updates))
	}
	d, _ := report.Lookup("compliance")
	var out strings.Builder
	if err := d.Table(&out, raw); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), ", 2 updates, every client,") || !strings.Contains(out.String(), "machines --updates U3,UX --state non_compliant") ||
		strings.Contains(out.String(), "every catalog update") {
		t.Errorf("compliance table of UX,U3:\n%s", out.String())
	}
	var ofList report.Compliance
	s.must("/v1/reports/compliance?list=L", &ofList)
	if ofList.RequestedUpdates != nil {
		t.Errorf("compliance of a list echoes updates %q", ofList.RequestedUpdates)
	}
}

// An error carried by more updates or deployments than the report lists says so; one carried
// by exactly as many as it lists does not.
func TestErrorsReportSaysWhenMoreTopicsCarryAnError(t *testing.T) {
	s := newSite(t, 0)
	e := newEstate(s)
	const ten, eleven = 0x80070005, 0x80070643
	var tens, elevens []schema.StateMessage
	for i := range report.MaxErrorTopics + 1 {
		if i < report.MaxErrorTopics {
			tens = append(tens, msg(uint64(i+1), 402, fmt.Sprintf("U%02d", i), 11, ten, 1))
		}
		elevens = append(elevens, msg(uint64(2*i+1), 402, fmt.Sprintf("V%02d", i), 11, eleven, 1),
			msg(uint64(2*i+2), 301, fmt.Sprintf("D%02d", i), 6, eleven, 1))
	}
	e.send("ten", nil, tens...)
	e.send("eleven", nil, elevens...)
	s.fold()
	var raw json.RawMessage
	s.must("/v1/reports/errors", &raw)
	var got report.Errors
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Errors) != 2 {
		t.Fatalf("errors: %+v", got.Errors)
	}
	for _, ec := range got.Errors {
		more := ec.Error == hr(eleven)
		if len(ec.Updates) != report.MaxErrorTopics || ec.MoreUpdates != more || ec.MoreDeployments != more ||
			(more && len(ec.Deployments) != report.MaxErrorTopics) || (!more && len(ec.Deployments) != 0) {
			t.Errorf("error %s: %d updates (more %v), %d deployments (more %v)", ec.Hex, len(ec.Updates), ec.MoreUpdates, len(ec.Deployments), ec.MoreDeployments)
		}
	}
	d, _ := report.Lookup("errors")
	var out strings.Builder
	if err := d.Table(&out, raw); err != nil {
		t.Fatal(err)
	}
	if strings.Count(out.String(), "…") != 2 || !strings.Contains(out.String(), "V09, …") || !strings.Contains(out.String(), "D09, …") ||
		strings.Contains(out.String(), "U09, …") {
		t.Errorf("errors table:\n%s", out.String())
	}
}

// The trend report: compliance as of each step from the history, by acceptance time. A
// client's retry of an earlier report (accepted again later) moves nothing. Without a step,
// the points are few: 7 days by the day.
func TestTrendShowsChangeOverTime(t *testing.T) {
	s := newSite(t, 0)
	e := newEstate(s)
	s.ref(schema.RefCatalog,
		schema.Update{ID: "U1", Title: "one", FirstSynced: start}, schema.Update{ID: "U2", Title: "two", FirstSynced: start})
	s.ref(schema.RefUpdateLists, schema.UpdateList{ID: "L", Name: "list", Updates: []string{"U1", "U2"}})
	s.ref(schema.RefCollections, schema.Collection{ID: "C", Name: "ring", Members: []string{"t0", "t1", "t2", "t3"}})
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
	mid := time.Now().UTC().Truncate(time.Hour).Add(-3 * time.Hour)
	step := time.Hour

	// Phase A, accepted before mid.
	s.at = mid.Add(-30 * time.Minute)
	t1 := []schema.StateMessage{msg(1, 500, "U1", 3, 0, 1), msg(2, 500, "U2", 1, 0, 1)}
	e.send("t0", nil, msg(1, 500, "U1", 2, 0, 1), msg(2, 500, "U2", 2, 0, 1))
	e.send("t1", nil, t1...)
	aColl, _ := snapshot(members)
	aSite, aClients := snapshot(e.clients())
	s.fold() // a batch of its own: a retry is another record, inserted later

	// Phase B, accepted between mid and mid + step: t0 installs U1, t2 appears requiring U1,
	// t1 retries its first report.
	s.at = mid.Add(30 * time.Minute)
	e.send("t0", nil, msg(3, 500, "U1", 3, 0, 2))
	e.send("t2", nil, msg(1, 500, "U1", 2, 0, 2))
	e.send("t1", nil, t1...)
	bColl, _ := snapshot(members)
	bSite, bClients := snapshot(e.clients())
	s.fold()

	// The oracle, spelled out.
	if fmt.Sprint(aColl, bColl, aSite, aClients, bSite, bClients) != "{1 2 1} {2 2 1} {1 2 1} 2 {2 2 1} 3" {
		t.Fatalf("oracle: %v %v %v %d %v %d", aColl, bColl, aSite, aClients, bSite, bClients)
	}
	point := func(at time.Time, sn snap, clients int64) report.TrendPoint {
		p := report.TrendPoint{Time: at, Installed: sn.installed, Required: sn.required, NotRequired: sn.notRequired,
			Clients: clients, Total: 2 * clients}
		p.Unknown = p.Total - sn.installed - sn.required - sn.notRequired
		if p.Total > 0 {
			p.CompliantPct = pct(sn.installed+sn.notRequired, p.Total)
		}
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
		s.must("/v1/reports/trend?"+q.Encode(), &got)
		for i := range got.Points {
			got.Points[i].Time = got.Points[i].Time.UTC()
		}
		if !reflect.DeepEqual(got.Points, c.want) || !reflect.DeepEqual(got.Updates, []string{"U1", "U2"}) ||
			!reflect.DeepEqual(got.Titles, map[string]string{"U1": "one", "U2": "two"}) || got.ListName != "list" {
			t.Errorf("trend collection %q:\n got  %+v\n want %+v", c.collection, got, c.want)
		}
	}
	// Defaults: the last 7 days by the day, ending now; everything is visible at the end, and
	// nothing a week ago.
	var got report.Trend
	s.must("/v1/reports/trend?updates=U1,U2&collection=C", &got)
	if n := len(got.Points); n != 8 || got.Step != "24h0m0s" || got.Points[n-1] != point(got.Points[n-1].Time, bColl, 4) ||
		got.Points[0] != point(got.Points[0].Time, snap{}, 4) || got.CollectionName != "ring" {
		t.Errorf("default trend: %d points every %s, first %+v, last %+v", n, got.Step, got.Points[0], got.Points[n-1])
	}
	s.status("/v1/reports/trend?list=L&step=soon", 400, "step")
	s.status("/v1/reports/trend?list=L&step=1ms", 400, "step") // 7 days of milliseconds is too many points
	s.status("/v1/reports/trend?list=L&from=yesterday", 400, "from")
	s.status("/v1/reports/trend?list=L&from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", 400, "from")
	s.status("/v1/reports/trend", 400, "list")
	s.status("/v1/reports/trend?list=nope", 404, "list")
}

// ConfigMgr's "States 2", "States 4", "States 5" and "States 6" for a deployment: its
// targeted clients by 302 and 300 state, per update by 402 state (silent ones in state 0), and
// the machines of each such cell; and the deployments report's filters (Management 1, 3–6).
func TestDeploymentDetailsAndTheirMachines(t *testing.T) {
	s := newSite(t, 0)
	e := newEstate(s)
	members := []string{"m0", "m1", "m2", "m3", "m4"}
	s.ref(schema.RefCatalog, schema.Update{ID: "U1", Title: "Update one", FirstSynced: start}, schema.Update{ID: "U2", Title: "Update two", FirstSynced: start},
		schema.Update{ID: "U3", Title: "Update three", FirstSynced: start})
	s.ref(schema.RefUpdateLists, schema.UpdateList{ID: "L", Name: "list", Updates: []string{"U2", "U3"}})
	s.ref(schema.RefCollections, schema.Collection{ID: "C", Name: "ring", Members: members}, schema.Collection{ID: "C2", Name: "other", Members: []string{"m0", "z9"}})
	s.ref(schema.RefDeployments,
		schema.Deployment{ID: "D", Name: "November", Updates: []string{"U1", "U2"}, Collection: "C", Start: start, Deadline: start.Add(72 * time.Hour), Mandatory: true},
		schema.Deployment{ID: "D2", Name: "Other", Updates: []string{"U3"}, Collection: "C2", Start: start, Deadline: start.Add(24 * time.Hour)})
	e.send("m0", nil, msg(1, 302, "D", 2, 0, 1000), msg(2, 300, "D", 1, 0, 1000), msg(3, 402, "U1", 10, 0, 1000), msg(4, 402, "U2", 10, 0, 1000))
	e.send("m1", nil, msg(1, 302, "D", 2, 0, 1000), msg(2, 300, "D", 2, 0, 1000), msg(3, 402, "U1", 11, 0x80070643, 1000))
	e.send("m1", nil, msg(4, 402, "U1", 8, 0, 2000)) // later: installing again
	e.send("m2", nil, msg(1, 302, "D", 3, 0, 1000), msg(2, 402, "U2", 12, 0, 1000), msg(3, 402, "U3", 11, 0x80070643, 1000))
	e.send("m4", nil, msg(1, 301, "D", 6, 0x80070643, 1000))
	e.send("m3", []schema.TopicType{402}, msg(1, 402, "U1", 13, 0, 1000))
	e.send("m3", []schema.TopicType{402}, msg(5, 402, "U2", 13, 0, 2000))           // full: U1 removed
	e.send("z9", nil, msg(1, 302, "D", 2, 0, 1000), msg(2, 402, "U1", 10, 0, 1000)) // outside C
	s.fold()

	count := func(tt schema.TopicType, id string) map[int]int64 {
		out := map[int]int64{}
		for _, c := range members {
			st := 0
			if m, ok := e.live(c, tt, id); ok {
				st = int(m.State)
			}
			out[st]++
		}
		return out
	}
	if got := fmt.Sprint(count(402, "U1")); got != "map[0:3 8:1 10:1]" { // the oracle, spelled out
		t.Fatalf("oracle of U1: %s", got)
	}
	var got report.Deployment
	s.must("/v1/reports/deployment?deployment=D", &got)
	if w := states(302, count(302, "D")); !reflect.DeepEqual(got.Evaluation, w) {
		t.Errorf("evaluation: %+v\nwant %+v", got.Evaluation, w)
	}
	if w := states(300, count(300, "D")); !reflect.DeepEqual(got.Compliance, w) {
		t.Errorf("compliance: %+v\nwant %+v", got.Compliance, w)
	}
	wantUpdates := []report.DeploymentUpdate{{UpdateID: "U1", Title: "Update one", States: states(402, count(402, "U1"))},
		{UpdateID: "U2", Title: "Update two", States: states(402, count(402, "U2"))}}
	if !reflect.DeepEqual(got.Updates, wantUpdates) {
		t.Errorf("updates: %+v\nwant %+v", got.Updates, wantUpdates)
	}
	// The machines of each cell.
	for _, c := range []struct {
		query string
		tt    schema.TopicType
		id    string
		state int
	}{{"update=U1&state=0", 402, "U1", 0}, {"update=U2&state=13", 402, "U2", 13}, {"topic=evaluation&state=2", 302, "D", 2},
		{"topic=compliance&state=0", 300, "D", 0}, {"topic=enforcement&state=0", 301, "D", 0}} {
		var want []string
		for _, m := range members {
			st := 0
			if l, ok := e.live(m, c.tt, c.id); ok {
				st = int(l.State)
			}
			if st == c.state {
				want = append(want, m)
			}
		}
		var m report.Machines
		s.must("/v1/reports/machines?deployment=D&"+c.query, &m)
		if !reflect.DeepEqual(m.Machines, want) || m.Total != int64(len(want)) || m.StateName != c.tt.StateName(c.state) {
			t.Errorf("machines of %s: %+v, want %v (%s)", c.query, m, want, c.tt.StateName(c.state))
		}
	}
	s.status("/v1/reports/machines?deployment=D&topic=nope&state=1", 400, "topic")
	s.status("/v1/reports/machines?deployment=D&topic=evaluation&state=4", 400, "state")
	s.status("/v1/reports/machines?deployment=D&update=U1&topic=evaluation&state=1", 400, "topic")
	s.status("/v1/reports/machines?deployment=D&update=nope&state=1", 404, "update")
	s.status("/v1/reports/machines?deployment=D&update=U3&state=1", 400, "update") // U3 is D2's

	// The deployments report: its filters, each as ConfigMgr's Management reports ask.
	for _, c := range []struct {
		query string
		want  []string
	}{{"", []string{"D", "D2"}}, {"list=L", []string{"D", "D2"}}, {"update=U3", []string{"D2"}}, {"collection=C", []string{"D"}},
		{"client=m0", []string{"D", "D2"}}, {"client=m4", []string{"D"}}, {"client=nobody", nil}, {"update=U1&client=z9", nil}} {
		var r report.Deployments
		s.must("/v1/reports/deployments?"+c.query, &r)
		var ids []string
		for _, d := range r.Deployments {
			ids = append(ids, d.DeploymentID)
		}
		if !reflect.DeepEqual(ids, c.want) {
			t.Errorf("deployments?%s: %v, want %v", c.query, ids, c.want)
		}
	}
	var one report.Deployments
	s.must("/v1/reports/deployments?deployment=D&list=L", &one)
	if len(one.Deployments) != 1 {
		t.Fatalf("deployments?deployment=D: %+v", one)
	}
	d := one.Deployments[0]
	if d.Name != "November" || d.Collection != "C" || d.CollectionName != "ring" || d.Members != 5 || !d.Mandatory ||
		!d.Start.Equal(start) || !d.Deadline.Equal(start.Add(72*time.Hour)) || !reflect.DeepEqual(d.Updates, []string{"U1", "U2"}) ||
		!reflect.DeepEqual(d.Titles, []string{"Update one", "Update two"}) || d.OfList == nil || *d.OfList != 1 || one.ListName != "list" {
		t.Errorf("deployment D: %+v (list %q)", d, one.ListName)
	}
	// Troubleshooting 4: the machines of an error (live 402 and 301 states carrying it), over
	// the site and within a deployment (its updates and itself, its collection).
	for _, c := range []struct{ query, dep string }{{"error=0x80070643", ""}, {"error=2147944003", ""}, {"error=-2147023293", ""},
		{"error=0x80070643&deployment=D2", "D2"}, {"error=0x80070643&deployment=D", "D"}} {
		var want []string
		for _, cl := range e.clients() {
			for k, m := range e.liveKeys(301, 402) {
				if k.client != cl || m.Error != hr(0x80070643) || slices.Contains(want, cl) {
					continue
				}
				if c.dep == "D" && !(slices.Contains(members, cl) && (k.topic == 402 && (k.id == "U1" || k.id == "U2") || k.topic == 301 && k.id == "D")) {
					continue
				}
				if c.dep == "D2" && !((cl == "m0" || cl == "z9") && (k.topic == 402 && k.id == "U3" || k.topic == 301 && k.id == "D2")) {
					continue
				}
				want = append(want, cl)
			}
		}
		slices.Sort(want)
		var m report.Machines
		s.must("/v1/reports/machines?"+c.query, &m)
		if !slices.Equal(m.Machines, want) || m.Error != "0x80070643" || m.StateName != "ERROR_INSTALL_FAILURE: fatal error during installation" {
			t.Errorf("machines of %s: %+v, want %v", c.query, m, want)
		}
	}
	s.status("/v1/reports/machines?error=nope", 400, "error")
	s.status("/v1/reports/machines?error=0x80070643&state=1", 400, "state")
	s.status("/v1/reports/machines?deployment=D", 400, "state")
	s.status("/v1/reports/deployments?deployment=nope", 404, "deployment")
	s.status("/v1/reports/deployments?list=nope", 404, "list")
	s.status("/v1/reports/deployments?collection=nope", 404, "collection")
}

// ConfigMgr's "Management 2 – Updates required but not deployed": of the catalog (or a
// list), the updates no deployment holds that some client in scope requires, each counted as
// the compliance report counts it.
func TestUpdatesRequiredButNotDeployed(t *testing.T) {
	s := newSite(t, 0)
	e := newEstate(s)
	var ups []schema.Update
	for _, id := range []string{"U1", "U2", "U3", "U4"} {
		ups = append(ups, schema.Update{ID: id, Title: "update " + id, FirstSynced: start})
	}
	s.ref(schema.RefCatalog, ups[0], ups[1], ups[2], ups[3])
	s.ref(schema.RefUpdateLists, schema.UpdateList{ID: "L", Name: "list", Updates: []string{"U2", "U3", "U4"}})
	s.ref(schema.RefCollections, schema.Collection{ID: "C", Name: "ring", Members: []string{"a", "b"}})
	s.ref(schema.RefDeployments, schema.Deployment{ID: "D", Name: "November", Updates: []string{"U1", "U3"}, Collection: "C", Start: start, Deadline: start.Add(time.Hour)})
	e.send("a", nil, msg(1, 500, "U1", 2, 0, 1000), msg(2, 500, "U2", 2, 0, 1000), msg(3, 500, "U4", 3, 0, 1000))
	e.send("b", nil, msg(1, 500, "U2", 2, 0, 1000), msg(2, 500, "U3", 2, 0, 1000), msg(3, 500, "U4", 1, 0, 1000))
	e.send("c", nil, msg(1, 500, "U4", 2, 0, 1000)) // outside C
	s.fold()

	for _, c := range []struct {
		query string
		want  []string // the updates listed: not in D, required in scope
	}{{"not_deployed=true", []string{"U2", "U4"}}, {"not_deployed=true&collection=C", []string{"U2"}}, {"not_deployed=true&list=L", []string{"U2", "U4"}}} {
		var got report.Compliance
		s.must("/v1/reports/compliance?"+c.query, &got)
		var ids []string
		for _, u := range got.Updates {
			ids = append(ids, u.UpdateID)
		}
		if !reflect.DeepEqual(ids, c.want) || !got.NotDeployed {
			t.Errorf("%s: updates %v, want %v", c.query, ids, c.want)
			continue
		}
		// Each row counts as the compliance report of the same updates does.
		var same report.Compliance
		s.must("/v1/reports/compliance?source=scan&updates="+strings.Join(c.want, ",")+strings.TrimPrefix(strings.TrimPrefix(c.query, "not_deployed=true"), "&list=L"), &same)
		for i, u := range got.Updates {
			if w := same.Updates[i]; u != w {
				t.Errorf("%s: %+v, want %+v", c.query, u, w)
			}
		}
	}
	s.status("/v1/reports/compliance?not_deployed=maybe", 400, "not_deployed")
	// A set with nothing left still says what it is.
	var none report.Compliance
	s.must("/v1/reports/compliance?not_deployed=true&updates=U1", &none)
	if !none.NotDeployed || len(none.Updates) != 0 {
		t.Errorf("not_deployed of a deployed update: %+v", none)
	}
}
