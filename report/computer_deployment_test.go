package report_test

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/statepipe/statepipe/report"
	"github.com/statepipe/statepipe/schema"
)

// The computer report of one machine and one deployment (ConfigMgr's "States 3"): whether the
// deployment targets it, its live 301/302/300 states for it — state 0 for a targeted machine
// without one (folding rule 4, as the deployment report counts it) — and per update of the
// deployment its compliance and enforcement, as computer reports them for updates=.
func TestComputerReportForADeployment(t *testing.T) {
	s := newSite(t, 0)
	at := func(d string) time.Time { tm, _ := time.Parse(time.DateOnly, d); return tm }
	s.ref(schema.RefCatalog,
		schema.Update{ID: "U1", Article: "KB5001", Title: "Update one", FirstSynced: at("2024-10-01")},
		schema.Update{ID: "U2", Article: "KB5002", Title: "Update two", FirstSynced: at("2024-11-01")},
		schema.Update{ID: "U3", Article: "KB5003", Title: "Update three", FirstSynced: at("2024-12-01")})
	s.ref(schema.RefUpdateLists, schema.UpdateList{ID: "L", Name: "November", Updates: []string{"U1"}})
	s.ref(schema.RefCollections, schema.Collection{ID: "C", Name: "ring 1", Members: []string{"a", "b", "m"}},
		schema.Collection{ID: "C2", Name: "ring 2", Members: []string{"x"}})
	s.ref(schema.RefDeployments,
		schema.Deployment{ID: "D", Name: "November wave", Updates: []string{"U2", "U1", "U2"}, Collection: "C", Start: start, Deadline: start.Add(72 * time.Hour), Mandatory: true},
		schema.Deployment{ID: "D2", Name: "other", Updates: []string{"U3"}, Collection: "C2", Start: start, Deadline: start.Add(24 * time.Hour)})
	e := newEstate(s)
	// a: targeted; evaluated, enforcement moved from installing to failed with an HRESULT,
	// non-compliant; U1 required and failing to install, U2 inferred from a later scan.
	const failed = 0x80070643
	e.send("a", nil, msg(1, 302, "D", 1, 0, ms("2024-11-10T08:00:00Z")), msg(2, 301, "D", 1, 0, ms("2024-11-10T08:01:00Z")))
	e.send("a", nil, msg(3, 302, "D", 2, 0, ms("2024-11-10T08:02:00Z")), msg(4, 500, "U1", 2, 0, ms("2024-11-10T08:03:00Z")),
		msg(5, 402, "U1", 11, failed, ms("2024-11-10T08:04:00Z")), msg(6, 301, "D", 6, failed, ms("2024-11-10T08:05:00Z")),
		msg(7, 300, "D", 2, 0, ms("2024-11-10T08:06:00Z")), msg(8, 501, "wsus", 3, 0, ms("2024-11-15T00:00:00Z")))
	e.send("a", nil, msg(9, 301, "D2", 4, 0, ms("2024-11-10T08:07:00Z"))) // another deployment: not D's
	// b: targeted; its 301 state for D removed by a later full 301 report without D → silent,
	// state 0 everywhere. U1 installed.
	e.send("b", nil, msg(1, 301, "D", 4, 0, 1000), msg(2, 500, "U1", 3, 0, 1000))
	e.send("b", []schema.TopicType{301}, msg(3, 301, "D2", 8, 0, 2000))
	// m: targeted, never reported (a member of C). x: not targeted, yet reports a 301 state
	// for D. y: not targeted and nothing for D.
	e.send("x", nil, msg(1, 301, "D", 6, 0x80240022, ms("2024-11-11T00:00:00Z")))
	e.send("y", nil, msg(1, 500, "U1", 3, 0, 1000))
	s.fold()

	tm := func(s string) *time.Time { t := time.UnixMilli(ms(s)).UTC(); return &t }
	zero := func(t schema.TopicType) *report.ComputerState {
		return &report.ComputerState{TopicType: int(t), StateName: t.StateName(0), Hex: "0x00000000"}
	}
	lastA := tm("2024-11-15T00:00:00Z")
	enfA, code := 11, hr(failed)
	silent := report.ComputerDeployment{DeploymentID: "D", Name: "November wave", Collection: "C", CollectionName: "ring 1", Targeted: true,
		Compliance: zero(300), Enforcement: zero(301), Evaluation: zero(302)}
	unknownRows := []report.ComputerUpdate{{UpdateID: "U1", Title: "Update one", StateName: "Detection state unknown"}, {UpdateID: "U2", Title: "Update two", StateName: "Detection state unknown"}}
	for _, c := range []struct {
		client string
		want   report.Computer
	}{
		{"a", report.Computer{Client: "a", LastScanTime: lastA, Compliant: report.ComputerNonCompliant,
			Deployment: &report.ComputerDeployment{DeploymentID: "D", Name: "November wave", Collection: "C", CollectionName: "ring 1", Targeted: true,
				Compliance: &report.ComputerState{TopicType: 300, State: 2, StateName: "Non-compliant", Serial: 7, Time: tm("2024-11-10T08:06:00Z"), Hex: "0x00000000"},
				Enforcement: &report.ComputerState{TopicType: 301, State: 6, StateName: "Failed to install update(s)", Serial: 6, Time: tm("2024-11-10T08:05:00Z"),
					Error: code, Hex: "0x80070643", Description: schema.DescribeHRESULT(code)},
				Evaluation: &report.ComputerState{TopicType: 302, State: 2, StateName: "Evaluation succeeded", Serial: 3, Time: tm("2024-11-10T08:02:00Z"), Hex: "0x00000000"}},
			Updates: []report.ComputerUpdate{
				{UpdateID: "U1", Title: "Update one", State: 2, StateName: "Required", Serial: 4, Time: tm("2024-11-10T08:03:00Z"),
					EnforcementState: &enfA, EnforcementName: "Failed to install", Error: &code, Hex: "0x80070643"},
				{UpdateID: "U2", Title: "Update two", State: 1, StateName: "Not required", Inferred: true}}}},
		{"b", report.Computer{Client: "b", Compliant: report.ComputerUnknown, Deployment: &silent,
			Updates: []report.ComputerUpdate{{UpdateID: "U1", Title: "Update one", State: 3, StateName: "Installed", Serial: 2, Time: tm("1970-01-01T00:00:01Z")},
				{UpdateID: "U2", Title: "Update two", StateName: "Detection state unknown"}}}},
		{"m", report.Computer{Client: "m", Compliant: report.ComputerUnknown, Deployment: &silent, Updates: unknownRows}},
		{"x", report.Computer{Client: "x", Compliant: report.ComputerUnknown, Updates: unknownRows,
			Deployment: &report.ComputerDeployment{DeploymentID: "D", Name: "November wave", Collection: "C", CollectionName: "ring 1",
				Enforcement: &report.ComputerState{TopicType: 301, State: 6, StateName: "Failed to install update(s)", Serial: 1, Time: tm("2024-11-11T00:00:00Z"),
					Error: hr(0x80240022), Hex: "0x80240022", Description: schema.DescribeHRESULT(hr(0x80240022))}}}},
		{"y", report.Computer{Client: "y", Compliant: report.ComputerUnknown,
			Updates: []report.ComputerUpdate{{UpdateID: "U1", Title: "Update one", State: 3, StateName: "Installed", Serial: 1, Time: tm("1970-01-01T00:00:01Z")},
				{UpdateID: "U2", Title: "Update two", StateName: "Detection state unknown"}},
			Deployment: &report.ComputerDeployment{DeploymentID: "D", Name: "November wave", Collection: "C", CollectionName: "ring 1"}}},
	} {
		var got report.Computer
		s.must("/v1/reports/computer?deployment=D&client="+c.client, &got)
		got.Site, got.AsOf = "", time.Time{}
		if !reflect.DeepEqual(got, c.want) {
			g, _ := json.Marshal(got)
			w, _ := json.Marshal(c.want)
			t.Errorf("computer %s deployment D:\n got  %s\n want %s", c.client, g, w)
		}
	}
	if schema.DescribeHRESULT(code) == "" {
		t.Error("0x80070643 has no description")
	}

	// The same rule as the deployment report: its state-0 and state-6 machines are the
	// targeted ones the computer report puts there (x, not targeted, is in neither).
	for st, want := range map[string][]string{"0": {"b", "m"}, "6": {"a"}} {
		var dep report.Deployment
		s.must("/v1/reports/deployment?deployment=D&state="+st, &dep)
		if !slices.Equal(dep.Machines, want) {
			t.Errorf("deployment D state %s: machines %v, want %v", st, dep.Machines, want)
		}
	}

	// The JSON: deployment present with a deployment only, its states null when absent.
	var raw map[string]any
	s.must("/v1/reports/computer?deployment=D&client=y", &raw)
	if d, ok := raw["deployment"].(map[string]any); !ok || d["targeted"] != false || d["enforcement"] != nil || !hasKey(d, "enforcement") {
		t.Errorf("computer y deployment D: %v", raw["deployment"])
	}
	raw = nil
	s.must("/v1/reports/computer?list=L&client=a", &raw)
	if _, ok := raw["deployment"]; ok {
		t.Errorf("computer a list L carries a deployment: %v", raw)
	}

	// deployment excludes list and updates; an unknown deployment or client is not found.
	s.status("/v1/reports/computer?client=a&deployment=D&list=L", 400, "deployment")
	s.status("/v1/reports/computer?client=a&deployment=D&updates=U1", 400, "deployment")
	code2, ed := s.get("/v1/reports/computer?client=a", new(json.RawMessage))
	if code2 != 400 || ed.Field != "list" || !strings.Contains(ed.Message, "deployment") {
		t.Errorf("computer without a set: %d %+v", code2, ed)
	}
	s.status("/v1/reports/computer?client=a&deployment=nope", 404, "deployment")
	var depErr, compErr schema.ErrorDetail
	_, depErr = s.get("/v1/reports/deployment?deployment=nope", new(json.RawMessage))
	_, compErr = s.get("/v1/reports/computer?client=a&deployment=nope", new(json.RawMessage))
	if depErr != compErr {
		t.Errorf("unknown deployment: computer says %+v, deployment says %+v", compErr, depErr)
	}
	s.status("/v1/reports/computer?client=nobody&deployment=D", 404, "client")
}

func hasKey(m map[string]any, k string) bool { _, ok := m[k]; return ok }
