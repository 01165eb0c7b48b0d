package report_test

// ConfigMgr's "Compliance 4 – Updates by vendor, month, year": the compliance report of the
// updates of a catalog vendor and of a month or year of release, each row with its vendor and
// release, and the counts summed per vendor, month or year (by=).

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/statepipe/statepipe/report"
	"github.com/statepipe/statepipe/schema"
)

// vendorCatalog is the catalog of the tests: two Microsoft updates (November and October
// 2026), one of Adobe (November 2026), one with neither vendor nor release.
func vendorCatalog(t *testing.T, s *site) {
	t.Helper()
	s.refJSON(schema.RefCatalog, []byte(`{"id":"U1","title":"update one","first_synced":"2024-10-01T00:00:00Z","vendor":"Microsoft","released":"2026-11-10"}`))
	s.refJSON(schema.RefCatalog, []byte(`{"id":"U2","title":"update two","first_synced":"2024-10-01T00:00:00Z","vendor":"Microsoft","released":"2026-10-14T17:00:00Z"}`))
	s.refJSON(schema.RefCatalog, []byte(`{"id":"U3","title":"update three","first_synced":"2024-10-01T00:00:00Z","vendor":"Adobe","released":"2026-11-03T00:00:00Z"}`))
	s.refJSON(schema.RefCatalog, []byte(`{"id":"U4","title":"update four","first_synced":"2024-10-01T00:00:00Z"}`))
}

// sendVendorEstate sends the clients of the tests: a and b state every update but one, c
// states U1 and scanned after every update was synchronised (the others inferred Not required).
func sendVendorEstate(e *estate, now int64) {
	e.send("a", nil, msg(1, 500, "U1", 3, 0, now), msg(2, 500, "U2", 2, 0, now), msg(3, 500, "U3", 1, 0, now), msg(4, 500, "U4", 2, 0, now))
	e.send("b", nil, msg(1, 500, "U1", 2, 0, now), msg(2, 500, "U2", 3, 0, now), msg(3, 500, "U3", 2, 0, now))
	e.send("c", nil, msg(1, 500, "U1", 3, 0, now), msg(2, 501, "wsus", 3, 0, now))
}

func releasedAt(s string) *time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return &t
}

func TestComplianceByVendorAndRelease(t *testing.T) {
	s := newSite(t, 0)
	e := newEstate(s)
	vendorCatalog(t, s)
	s.ref(schema.RefUpdateLists, schema.UpdateList{ID: "L", Name: "all four", Updates: []string{"U1", "U2", "U3", "U4"}})
	s.ref(schema.RefCollections, schema.Collection{ID: "C", Name: "a and b", Members: []string{"a", "b"}})
	sendVendorEstate(e, time.Now().UnixMilli())
	s.fold()

	// Every update with the catalog's vendor and release (null when not given).
	u1 := report.UpdateCompliance{UpdateID: "U1", Title: "update one", Installed: 2, Required: 1, Total: 3, CompliantPct: 66.67,
		Vendor: "Microsoft", Released: releasedAt("2026-11-10T00:00:00Z")}
	u2 := report.UpdateCompliance{UpdateID: "U2", Title: "update two", Installed: 1, Required: 1, NotRequired: 1, Total: 3, CompliantPct: 66.67,
		Vendor: "Microsoft", Released: releasedAt("2026-10-14T17:00:00Z")}
	u3 := report.UpdateCompliance{UpdateID: "U3", Title: "update three", Required: 1, NotRequired: 2, Total: 3, CompliantPct: 66.67,
		Vendor: "Adobe", Released: releasedAt("2026-11-03T00:00:00Z")}
	u4 := report.UpdateCompliance{UpdateID: "U4", Title: "update four", Required: 1, NotRequired: 1, Unknown: 1, Total: 3, CompliantPct: 33.33}
	for _, c := range []struct {
		query     string
		updates   []report.UpdateCompliance
		computers report.ComputerCounts
	}{
		{"", []report.UpdateCompliance{u1, u2, u3, u4}, report.ComputerCounts{Compliant: 1, NonCompliant: 2, Total: 3, CompliantPct: 33.33}},
		{"vendor=Microsoft", []report.UpdateCompliance{u1, u2}, report.ComputerCounts{Compliant: 1, NonCompliant: 2, Total: 3, CompliantPct: 33.33}},
		{"released=2026-11", []report.UpdateCompliance{u1, u3}, report.ComputerCounts{Compliant: 2, NonCompliant: 1, Total: 3, CompliantPct: 66.67}},
		{"released=2026", []report.UpdateCompliance{u1, u2, u3}, report.ComputerCounts{Compliant: 1, NonCompliant: 2, Total: 3, CompliantPct: 33.33}},
		{"vendor=Microsoft&released=2026-11&list=L", []report.UpdateCompliance{u1}, report.ComputerCounts{Compliant: 2, NonCompliant: 1, Total: 3, CompliantPct: 66.67}},
		{"vendor=Microsoft&updates=U1,U3,U4", []report.UpdateCompliance{u1}, report.ComputerCounts{Compliant: 2, NonCompliant: 1, Total: 3, CompliantPct: 66.67}},
		{"vendor=Adobe&source=scan", []report.UpdateCompliance{u3}, report.ComputerCounts{Compliant: 2, NonCompliant: 1, Total: 3, CompliantPct: 66.67}},
		{"released=2025", []report.UpdateCompliance{}, report.ComputerCounts{Unknown: 3, Total: 3}},
		{"vendor=microsoft", []report.UpdateCompliance{}, report.ComputerCounts{Unknown: 3, Total: 3}}, // exact
	} {
		var got report.Compliance
		s.must("/v1/reports/compliance?"+c.query, &got)
		if !reflect.DeepEqual(got.Updates, c.updates) || got.Computers != c.computers {
			t.Errorf("%s:\n got  %+v %+v\n want %+v %+v", c.query, got.Updates, got.Computers, c.updates, c.computers)
		}
		// The aggregates and a recount of the live states agree.
		var scan report.Compliance
		s.must("/v1/reports/compliance?source=scan&"+strings.TrimSuffix(strings.TrimSuffix(c.query, "&source=scan"), "source=scan"), &scan)
		if !reflect.DeepEqual(got.Updates, scan.Updates) || got.Computers != scan.Computers {
			t.Errorf("%s: aggregates %+v %+v, scan %+v %+v", c.query, got.Updates, got.Computers, scan.Updates, scan.Computers)
		}
	}
	var echo report.Compliance
	s.must("/v1/reports/compliance?vendor=Microsoft&released=2026-11", &echo)
	if echo.Vendor != "Microsoft" || echo.Released != "2026-11" || echo.By != "" || echo.Groups != nil {
		t.Errorf("echo: vendor %q released %q by %q groups %v", echo.Vendor, echo.Released, echo.By, echo.Groups)
	}

	// Grouped: the per-update counts summed (update × client pairs), the unknown group last.
	for _, c := range []struct {
		query string
		want  []report.ComplianceGroup
	}{
		{"by=vendor", []report.ComplianceGroup{
			{Group: "Adobe", Updates: 1, Required: 1, NotRequired: 2, Total: 3, CompliantPct: 66.67},
			{Group: "Microsoft", Updates: 2, Installed: 3, Required: 2, NotRequired: 1, Total: 6, CompliantPct: 66.67},
			{Group: "", Updates: 1, Required: 1, NotRequired: 1, Unknown: 1, Total: 3, CompliantPct: 33.33}}},
		{"by=month", []report.ComplianceGroup{
			{Group: "2026-10", Updates: 1, Installed: 1, Required: 1, NotRequired: 1, Total: 3, CompliantPct: 66.67},
			{Group: "2026-11", Updates: 2, Installed: 2, Required: 2, NotRequired: 2, Total: 6, CompliantPct: 66.67},
			{Group: "", Updates: 1, Required: 1, NotRequired: 1, Unknown: 1, Total: 3, CompliantPct: 33.33}}},
		{"by=year&collection=C", []report.ComplianceGroup{
			{Group: "2026", Updates: 3, Installed: 2, Required: 3, NotRequired: 1, Total: 6, CompliantPct: 50},
			{Group: "", Updates: 1, Required: 1, Unknown: 1, Total: 2}}},
		{"by=month&vendor=Microsoft", []report.ComplianceGroup{
			{Group: "2026-10", Updates: 1, Installed: 1, Required: 1, NotRequired: 1, Total: 3, CompliantPct: 66.67},
			{Group: "2026-11", Updates: 1, Installed: 2, Required: 1, Total: 3, CompliantPct: 66.67}}},
		{"by=vendor&released=2025", []report.ComplianceGroup{}},
	} {
		var got report.Compliance
		s.must("/v1/reports/compliance?"+c.query, &got)
		if !reflect.DeepEqual(got.Groups, c.want) || got.By != strings.TrimPrefix(strings.Split(c.query, "&")[0], "by=") {
			t.Errorf("%s: by %q groups\n got  %+v\n want %+v", c.query, got.By, got.Groups, c.want)
		}
	}

	// The values refused, naming the parameter.
	for _, bad := range []string{"released=2026-13", "released=Nov", "released=26", "released=2026-1", "released=2026-11-10",
		"released=1969", "released=+2026", "released=2026-00"} {
		s.status("/v1/reports/compliance?"+bad, 400, "released")
	}
	s.status("/v1/reports/compliance?by=week", 400, "by")

	// The analysts' view: vendor and released (NULL when unknown) at the end of v_updates.
	s.view("v_updates", "SELECT id, vendor, toString(released) FROM v_updates ORDER BY id", []string{
		"U1|Microsoft|2026-11-10 00:00:00.000", "U2|Microsoft|2026-10-14 17:00:00.000", "U3|Adobe|2026-11-03 00:00:00.000", "U4||null"})

	// The table: vendor and released columns, or the groups.
	def := reportDef(t, "compliance")
	for _, c := range []struct {
		query string
		want  []string
	}{
		{"vendor=Microsoft", []string{"compliance — site " + s.api.Site + ", every catalog update, vendor Microsoft, every client",
			"update  installed  required  not required  unknown  total  compliant  vendor     released    title",
			"U1      2          1         0             0        3      66.67 %    Microsoft  2026-11-10  update one",
			"U2      1          1         1             0        3      66.67 %    Microsoft  2026-10-14  update two"}},
		{"by=month", []string{"month      updates  installed  required  not required  unknown  total  compliant",
			"2026-10    1        1          1         1             0        3      66.67 %",
			"(unknown)  1        0          1         1             1        3      33.33 %"}},
	} {
		rec := s.do(httptest.NewRequest(http.MethodGet, "/v1/reports/compliance?"+c.query, nil))
		var out bytes.Buffer
		if err := def.Table(&out, rec.Body.Bytes()); err != nil {
			t.Fatal(err)
		}
		for _, line := range c.want {
			if !strings.Contains(out.String(), line) {
				t.Errorf("%s: table lacks %q:\n%s", c.query, line, out.String())
			}
		}
	}
}

// Over the sites below, the filters keep the same updates (the catalog is at every site) and
// their rows add up the sites' counts; the computers, counted per list in the cells, are not
// counted for a filtered set, and the answer says so.
func TestComplianceByVendorOverTheSitesBelow(t *testing.T) {
	cen, p01 := newHierSite(t, "cen"), newHierSite(t, "p01")
	now := time.Now().UnixMilli()
	for _, h := range []*hsite{cen, p01} {
		vendorCatalog(t, h.site)
	}
	sendVendorEstate(cen.e, now)
	// P01: d requires both Microsoft updates, e installed U1 and scanned (U2 inferred).
	p01.e.send("d", nil, msg(1, 500, "U1", 2, 0, now), msg(2, 500, "U2", 2, 0, now))
	p01.e.send("e", nil, msg(1, 500, "U1", 3, 0, now), msg(2, 501, "wsus", 3, 0, now))
	for _, h := range []*hsite{cen, p01} {
		h.fold()
	}
	p01.sendUp(t, cen, cen.code)
	top := cen.tree()

	var got report.Compliance
	top.must("/v1/reports/compliance?vendor=Microsoft&by=month", &got)
	want := []report.UpdateCompliance{
		{UpdateID: "U1", Title: "update one", Installed: 3, Required: 2, Total: 5, CompliantPct: 60, Vendor: "Microsoft", Released: releasedAt("2026-11-10T00:00:00Z")},
		{UpdateID: "U2", Title: "update two", Installed: 1, Required: 2, NotRequired: 2, Total: 5, CompliantPct: 60, Vendor: "Microsoft", Released: releasedAt("2026-10-14T17:00:00Z")},
	}
	if !reflect.DeepEqual(got.Updates, want) {
		t.Errorf("updates over the tree:\n got  %+v\n want %+v", got.Updates, want)
	}
	if g := []report.ComplianceGroup{{Group: "2026-10", Updates: 1, Installed: 1, Required: 2, NotRequired: 2, Total: 5, CompliantPct: 60},
		{Group: "2026-11", Updates: 1, Installed: 3, Required: 2, Total: 5, CompliantPct: 60}}; !reflect.DeepEqual(got.Groups, g) {
		t.Errorf("groups over the tree: %+v, want %+v", got.Groups, g)
	}
	if got.Computers != (report.ComputerCounts{Total: 5}) || got.ComputersUncounted == "" || len(got.Sites) != 2 {
		t.Errorf("computers over the tree: %+v %q, sites %d", got.Computers, got.ComputersUncounted, len(got.Sites))
	}
	// The unfiltered report counts them as before; an ad-hoc set is still refused.
	var all report.Compliance
	top.must("/v1/reports/compliance", &all)
	if all.ComputersUncounted != "" || all.Computers.Total != 5 || all.Computers.Compliant+all.Computers.NonCompliant+all.Computers.Unknown != 5 {
		t.Errorf("unfiltered over the tree: %+v %q", all.Computers, all.ComputersUncounted)
	}
	top.status("/v1/reports/compliance?vendor=Microsoft&updates=U1", 400, "updates")
	// The site alone counts its computers.
	var alone report.Compliance
	p01.tree().must("/v1/reports/compliance?vendor=Microsoft", &alone)
	if alone.ComputersUncounted != "" || alone.Computers != (report.ComputerCounts{Compliant: 1, NonCompliant: 1, Total: 2, CompliantPct: 50}) {
		t.Errorf("P01 alone: %+v %q", alone.Computers, alone.ComputersUncounted)
	}
}

func reportDef(t *testing.T, name string) report.Definition {
	t.Helper()
	for _, d := range report.Reports() {
		if d.Name == name {
			return d
		}
	}
	t.Fatalf("no report %s", name)
	return report.Definition{}
}
