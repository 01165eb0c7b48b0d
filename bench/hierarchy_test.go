package bench

import (
	"strings"
	"testing"
	"time"

	"github.com/statepipe/statepipe/report"
)

func TestVisibilityDelays(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	// Readings every 250 ms; the watermark trails by about a second and once steps back
	// (a reading at 2250 ms shows an older watermark than the one before it).
	readings := []wmPoint{
		{at(250), at(-800)}, {at(500), at(-500)}, {at(750), at(-200)}, {at(1000), at(100)},
		{at(1250), at(100)}, {at(1500), at(600)}, {at(1750), at(900)}, {at(2000), at(1400)},
		{at(2250), at(1000)}, {at(2500), at(2100)},
	}
	accepts := []time.Time{at(1300), at(0), at(50), at(100), at(101), at(2100), at(2101)}
	delays, unseen := visibilityDelays(accepts, readings)
	want := []time.Duration{ // in the order of the sorted acceptances
		1000 * time.Millisecond, // 0 → the reading at 1000 (watermark 100)
		950 * time.Millisecond,  // 50 → 1000
		900 * time.Millisecond,  // 100 → 1000: a watermark equal to the acceptance shows it
		1399 * time.Millisecond, // 101 → 1500 (watermark 600)
		700 * time.Millisecond,  // 1300 → 2000 (watermark 1400)
		400 * time.Millisecond,  // 2100 → 2500; the step back at 2250 does not show it
	}
	if unseen != 1 {
		t.Errorf("unseen = %d, want 1 (2101 is past the last watermark)", unseen)
	}
	if len(delays) != len(want) {
		t.Fatalf("delays = %v, want %v", delays, want)
	}
	for i := range want {
		if delays[i] != want[i] {
			t.Errorf("delay %d = %v, want %v", i, delays[i], want[i])
		}
	}
	// A reading taken before the acceptance never shows it, whatever its watermark says.
	if d, u := visibilityDelays([]time.Time{at(300)}, []wmPoint{{at(250), at(5000)}, {at(400), at(5000)}}); u != 0 || len(d) != 1 || d[0] != 100*time.Millisecond {
		t.Errorf("a reading before the acceptance: delays %v unseen %d, want [100ms] 0", d, u)
	}
	if d, u := visibilityDelays([]time.Time{at(0)}, nil); len(d) != 0 || u != 1 {
		t.Errorf("no readings: delays %v unseen %d, want none and 1", d, u)
	}
}

func TestVisibilityStats(t *testing.T) {
	var d []time.Duration
	for i := 100; i >= 1; i-- { // 1..100 s, unsorted
		d = append(d, time.Duration(i)*time.Second)
	}
	v := visibilityStats(d, 3)
	if v.Reports != 103 || v.Unseen != 3 || v.P50 != 50 || v.P90 != 90 || v.P99 != 99 || v.Max != 100 {
		t.Errorf("stats = %+v, want 103 reports, 3 unseen, p50 50 p90 90 p99 99 max 100", v)
	}
	if d[0] != 100*time.Second {
		t.Error("visibilityStats sorted its argument in place")
	}
	if v := visibilityStats(nil, 0); v.Reports != 0 || v.P99 != 0 {
		t.Errorf("empty = %+v", v)
	}
}

func TestSumCountsAndDiff(t *testing.T) {
	a := complianceCounts{Updates: map[string][4]int64{"u1": {1, 2, 3, 4}, "u2": {0, 1, 0, 0}},
		Computers: report.ComputerCounts{Total: 10, Compliant: 4, NonCompliant: 5, Unknown: 1}}
	b := complianceCounts{Updates: map[string][4]int64{"u1": {10, 0, 0, 1}, "u3": {0, 0, 7, 0}},
		Computers: report.ComputerCounts{Total: 8, Compliant: 8}}
	got := sumCounts([]complianceCounts{a, b})
	want := complianceCounts{Updates: map[string][4]int64{"u1": {11, 2, 3, 5}, "u2": {0, 1, 0, 0}, "u3": {0, 0, 7, 0}},
		Computers: report.ComputerCounts{Total: 18, Compliant: 12, NonCompliant: 5, Unknown: 1}}
	if err := diffCounts(got, want); err != nil {
		t.Fatalf("sum: %v", err)
	}
	for _, c := range []struct {
		name   string
		change func(*complianceCounts)
		says   string
	}{
		{"a count", func(c *complianceCounts) { c.Updates["u1"] = [4]int64{11, 2, 3, 6} }, "update u1"},
		{"a missing update", func(c *complianceCounts) { delete(c.Updates, "u2") }, "update u2 missing"},
		{"an extra update", func(c *complianceCounts) { c.Updates["u9"] = [4]int64{1} }, "update u9 not expected"},
		{"the computers", func(c *complianceCounts) { c.Computers.Unknown++ }, "computers"},
	} {
		g := sumCounts([]complianceCounts{a, b})
		c.change(&g)
		err := diffCounts(g, want)
		if err == nil || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s: %v, want an error saying %q", c.name, err, c.says)
		}
	}
	// The compliant share is derived, not summed: countsOf drops it.
	rep := &report.Compliance{Computers: report.ComputerCounts{Total: 2, Compliant: 1, CompliantPct: 50},
		Updates: []report.UpdateCompliance{{UpdateID: "u1", Installed: 1, Unknown: 1}}}
	if c := countsOf(rep); c.Computers.CompliantPct != 0 || c.Updates["u1"] != [4]int64{1, 0, 0, 1} {
		t.Errorf("countsOf = %+v", c)
	}
}

// The central oracle is the sum of the primaries' oracles: splitting a world's clients among
// primaries and summing their expected compliance gives the whole world's.
func TestHierarchySplitSumsToWhole(t *testing.T) {
	sc, err := ParseScenario([]byte(`{name: t, clients: 90, catalog: 300, applicable: {min: 10, max: 40}, list: 50, primaries: 3,
duration: 2h, behaviour: {installed: 0.4, required: 0.3},
deployments: [{id: d1, updates: 10, target: 0.5, start: 0s, deadline: 1h}]}`), "t")
	if err != nil {
		t.Fatal(err)
	}
	w := newWorld(sc, time.Now().Add(-2*time.Hour))
	for i, c := range w.clients {
		if i%4 != 0 { // a few never reported
			w.act(c, 0)
		}
	}
	r := newHierRun(nil, w, centralSite, primaryCodes(3))
	if r.siteOf(4) != "P02" || r.siteOf(5) != "P03" || r.siteOf(6) != "P01" {
		t.Errorf("sites of clients 4, 5, 6: %s %s %s, want P02 P03 P01", r.siteOf(4), r.siteOf(5), r.siteOf(6))
	}
	ids := w.listIDs(checkedList)
	var parts []complianceCounts
	n := 0
	for p, part := range r.parts {
		n += len(part.clients)
		for _, c := range part.clients {
			if r.primaryOf(c.idx) != p {
				t.Fatalf("client %d in the part of primary %d", c.idx, p)
			}
		}
		parts = append(parts, part.oracleCounts(ids))
		if !part.skipDeployments || w.skipDeployments {
			t.Error("a primary's part must leave the deployments to the hierarchy's check, and the whole world keep them")
		}
	}
	if n != len(w.clients) {
		t.Errorf("the parts hold %d clients, want %d", n, len(w.clients))
	}
	if err := diffCounts(sumCounts(parts), w.oracleCounts(ids)); err != nil {
		t.Errorf("the primaries' oracles do not sum to the whole: %v", err)
	}
	// Deployment: each part counts its own members; together, every member.
	var states = map[int]int64{}
	for _, part := range r.parts {
		for s, n := range part.expectDeployment(0) {
			states[s] += n
		}
	}
	whole := w.expectDeployment(0)
	for s, n := range whole {
		if states[s] != n {
			t.Errorf("deployment state %d: the parts count %d, the whole %d", s, states[s], n)
		}
	}
}

func TestWatermarksAtLeast(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	wm := func(d time.Duration) *time.Time { x := t0.Add(d); return &x }
	sites := []report.SiteStatus{{Site: "CEN", LinkState: report.LinkLocal}, {Site: "P01", Watermark: wm(time.Second)}, {Site: "P02", Watermark: wm(-time.Millisecond)}, {Site: "P03"}}
	if err := watermarksAtLeast(sites, []string{"P01"}, t0); err != nil {
		t.Errorf("P01: %v", err)
	}
	// A watermark equal to the time to the millisecond passes (watermarks have milliseconds).
	if err := watermarksAtLeast(sites, []string{"P01"}, t0.Add(time.Second+500*time.Microsecond)); err != nil {
		t.Errorf("P01 at the same millisecond: %v", err)
	}
	for code, says := range map[string]string{"P02": "before", "P03": "no watermark", "P04": "not listed"} {
		if err := watermarksAtLeast(sites, []string{"P01", code}, t0); err == nil || !strings.Contains(err.Error(), says) {
			t.Errorf("%s: %v, want an error saying %q", code, err, says)
		}
	}
}

func TestTopologyYAML(t *testing.T) {
	got := topologyYAML("CEN", primaryCodes(3))
	for _, want := range []string{"  - code: CEN\n", "  - code: P01\n    parent: CEN\n", "  - code: P03\n    parent: CEN\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("topology lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "P04") {
		t.Errorf("topology has a fourth primary:\n%s", got)
	}
}

var _ siteReader = siteAt{}

func TestSiteAtNamesTheSite(t *testing.T) {
	a := siteAt{code: "P02"}
	if got := a.withSite("/v1/reports/errors"); got != "/v1/reports/errors?site=P02" {
		t.Errorf("without a query: %s", got)
	}
	if got := a.withSite("/v1/reports/compliance?list=x"); got != "/v1/reports/compliance?list=x&site=P02" {
		t.Errorf("with a query: %s", got)
	}
	if a.database() != "statepipe_p02" {
		t.Errorf("database %s", a.database())
	}
}
