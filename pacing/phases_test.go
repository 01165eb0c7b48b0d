package pacing

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

func clients(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("pc-%05d", i)
	}
	return out
}

// Each member of the target is in exactly one phase: the first that claims it.
func TestAssignPhasesFirstClaimWins(t *testing.T) {
	members := clients(2000)
	ring0 := []string{"pc-00001", "pc-00002", "pc-00003", "not-a-target-member"}
	cases := []struct {
		name   string
		phases []PhasePlan
		check  func(t *testing.T, got [][]string)
	}{
		{"collection, then shares, then the rest", []PhasePlan{{Name: "pilot", Collection: "ring0"}, {Name: "early", Share: 0.1}, {Name: "broad", Share: 0.4}, {Name: "rest"}},
			func(t *testing.T, got [][]string) {
				if !slices.Equal(got[0], []string{"pc-00001", "pc-00002", "pc-00003"}) {
					t.Errorf("pilot %v: the collection's members that are in the target", got[0])
				}
				within(t, "early", len(got[1]), 0.1*1997)
				within(t, "broad", len(got[2]), 0.4*1997)
				within(t, "rest", len(got[3]), 0.5*1997)
			}},
		{"shares adding up to 1 leave the last phase its own share only", []PhasePlan{{Name: "a", Share: 0.25}, {Name: "b", Share: 0.75}},
			func(t *testing.T, got [][]string) {
				within(t, "a", len(got[0]), 500)
				if len(got[0])+len(got[1]) != 2000 {
					t.Errorf("%d + %d members", len(got[0]), len(got[1]))
				}
			}},
		{"a share phase after a collection phase does not take its members", []PhasePlan{{Name: "all", Share: 1}, {Name: "ring0", Collection: "ring0"}},
			func(t *testing.T, got [][]string) {
				if len(got[0]) != 2000 || len(got[1]) != 0 {
					t.Errorf("%d, %d", len(got[0]), len(got[1]))
				}
			}},
		{"unclaimed members go to the last phase, even a share phase", []PhasePlan{{Name: "a", Share: 0.2}, {Name: "b", Share: 0.1}},
			func(t *testing.T, got [][]string) {
				within(t, "a", len(got[0]), 400)
				within(t, "b", len(got[1]), 1600)
			}},
		{"a missing collection claims no one", []PhasePlan{{Name: "pilot", Collection: "nowhere"}, {Name: "rest"}},
			func(t *testing.T, got [][]string) {
				if len(got[0]) != 0 || len(got[1]) != 2000 {
					t.Errorf("%d, %d", len(got[0]), len(got[1]))
				}
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := AssignPhases("D-2026-11", append(slices.Clone(members), members[:10]...), c.phases, map[string][]string{"ring0": ring0})
			seen := map[string]int{}
			for i, ms := range got {
				if !slices.IsSorted(ms) {
					t.Errorf("phase %d not sorted", i)
				}
				for _, m := range ms {
					if j, dup := seen[m]; dup {
						t.Errorf("%s in phases %d and %d", m, j, i)
					}
					seen[m] = i
					if i != PhaseOf("D-2026-11", m, c.phases, func(coll string) bool { return slices.Contains(ring0, m) && coll == "ring0" }) {
						t.Errorf("%s: AssignPhases and PhaseOf differ", m)
					}
				}
			}
			if len(seen) != len(members) {
				t.Errorf("%d members assigned, want %d", len(seen), len(members))
			}
			c.check(t, got)
		})
	}
}

// within fails unless got is within 5 standard deviations of a binomial expectation.
func within(t *testing.T, what string, got int, want float64) {
	t.Helper()
	if d := math.Abs(float64(got) - want); d > 5*math.Sqrt(want)+1 {
		t.Errorf("%s: %d members, want about %.0f", what, got, want)
	}
}

// Adding members to the target moves no existing member between share phases, and the
// assignment depends on the deployment (another deployment shuffles anew).
func TestAssignPhasesIsStable(t *testing.T) {
	phases := []PhasePlan{{Name: "a", Share: 0.05}, {Name: "b", Share: 0.25}, {Name: "c", Share: 0.3}, {Name: "rest"}}
	before := AssignPhases("D", clients(1000), phases, nil)
	after := AssignPhases("D", append(clients(5000), "late-1", "late-2"), phases, nil)
	where := func(ps [][]string) map[string]int {
		m := map[string]int{}
		for i, ms := range ps {
			for _, c := range ms {
				m[c] = i
			}
		}
		return m
	}
	b, a := where(before), where(after)
	for c, i := range b {
		if a[c] != i {
			t.Errorf("%s moved from phase %d to %d when members were added", c, i, a[c])
		}
	}
	other := where(AssignPhases("E", clients(1000), phases, nil))
	moved := 0
	for c, i := range b {
		if other[c] != i {
			moved++
		}
	}
	if moved < 300 {
		t.Errorf("only %d of 1000 clients are in another phase of another deployment", moved)
	}
	for _, c := range clients(100) {
		if h := ShareHash("D", c); h < 0 || h >= 1 || h != ShareHash("D", c) {
			t.Fatalf("ShareHash(D, %s) = %v", c, h)
		}
	}
}

var t0 = time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)

func plans() []PhasePlan {
	return []PhasePlan{{Name: "pilot", Share: 0.1, SuccessPct: 95, Soak: time.Hour}, {Name: "broad", Share: 0.5, SuccessPct: 90}, {Name: "rest", SuccessPct: 95}}
}

func observe(released ...time.Time) []PhaseObservation {
	out := make([]PhaseObservation, 3)
	for i, p := range plans() {
		out[i] = PhaseObservation{Plan: p, Members: 100}
		if i < len(released) {
			out[i].ReleasedAt, out[i].Reason = released[i], "earlier"
		}
	}
	return out
}

func fresh(at time.Time) []SiteWatermark {
	return []SiteWatermark{{Site: "CEN", Watermark: at}, {Site: "P01", Watermark: at}, {Site: "P02", Watermark: at}}
}

func states(st []PhaseStatus) string {
	var b []string
	for _, s := range st {
		x := s.State
		if s.Release {
			x = "release"
		}
		b = append(b, x)
	}
	return strings.Join(b, " ")
}

func TestDecidePhases(t *testing.T) {
	compliant := func(obs []PhaseObservation, i int, n int64) []PhaseObservation { obs[i].Compliant = n; return obs }
	cases := []struct {
		name   string
		in     PhaseInputs
		want   string // each phase: waiting, released, or release (released by this decision)
		reason string // of the first phase not released before
	}{
		{"phase 1 waits for the start", PhaseInputs{Now: t0.Add(-time.Second), Start: t0, Phases: observe(), BacklogOK: true},
			"waiting waiting waiting", "waiting for the deployment's start at 2026-11-30T10:00:00.000Z"},
		{"phase 1 at the start, whatever the rest says", PhaseInputs{Now: t0, Start: t0, Phases: observe(), BacklogOK: false},
			"release waiting waiting", "the deployment's start"},
		{"phase 1 when first seen after the start", PhaseInputs{Now: t0.Add(time.Hour), Start: t0, Phases: observe()},
			"release waiting waiting", "first seen after the deployment's start"},
		{"soak", PhaseInputs{Now: t0.Add(59 * time.Minute), Start: t0, Phases: compliant(observe(t0), 0, 100), Watermarks: fresh(t0.Add(59 * time.Minute)), BacklogOK: true},
			"released waiting waiting", "soak of phase 1 (pilot) until 2026-11-30T11:00:00.000Z (1h0m0s)"},
		{"criterion failing", PhaseInputs{Now: t0.Add(2 * time.Hour), Start: t0, Phases: compliant(observe(t0), 0, 94), Watermarks: fresh(t0.Add(2 * time.Hour)), BacklogOK: true},
			"released waiting waiting", "criterion of phase 1 (pilot) 94 % < 95 % on fresh data (94 of 100 members compliant)"},
		{"criterion holding", PhaseInputs{Now: t0.Add(2 * time.Hour), Start: t0, Phases: compliant(observe(t0), 0, 95), Watermarks: fresh(t0.Add(2 * time.Hour)), BacklogOK: true},
			"released release waiting", "phase 1 (pilot): 95 % ≥ 95 % compliant (95 of 100) held on fresh data, after a soak of 1h0m0s"},
		{"a share that rounds to the criterion does not meet it", PhaseInputs{Now: t0.Add(2 * time.Hour), Start: t0,
			Phases: func() []PhaseObservation { o := observe(t0); o[0].Compliant, o[0].Members = 18_999, 20_000; return o }(), Watermarks: fresh(t0.Add(2 * time.Hour)), BacklogOK: true},
			"released waiting waiting", "criterion of phase 1 (pilot) 94.995 % < 95 % on fresh data (18999 of 20000 members compliant)"},
		{"exactly the criterion meets it", PhaseInputs{Now: t0.Add(2 * time.Hour), Start: t0,
			Phases: func() []PhaseObservation { o := observe(t0); o[0].Compliant, o[0].Members = 19_000, 20_000; return o }(), Watermarks: fresh(t0.Add(2 * time.Hour)), BacklogOK: true},
			"released release waiting", "phase 1 (pilot): 95 % ≥ 95 % compliant (19000 of 20000)"},
		{"stale watermark below", PhaseInputs{Now: t0.Add(2 * time.Hour), Start: t0, Phases: compliant(observe(t0), 0, 100),
			Watermarks: []SiteWatermark{{"CEN", t0.Add(2 * time.Hour)}, {"P01", t0.Add(-time.Minute)}, {"P02", t0.Add(2 * time.Hour)}}, BacklogOK: true},
			"released waiting waiting", "data not fresh: P01's watermark 2026-11-30T09:59:00.000Z is before the phase's start 2026-11-30T10:00:00.000Z"},
		{"a watermark at the phase's start is not after it", PhaseInputs{Now: t0.Add(2 * time.Hour), Start: t0, Phases: compliant(observe(t0), 0, 100),
			Watermarks: fresh(t0), BacklogOK: true}, "released waiting waiting", "data not fresh: CEN's watermark"},
		{"a site that never reported", PhaseInputs{Now: t0.Add(2 * time.Hour), Start: t0, Phases: compliant(observe(t0), 0, 100),
			Watermarks: []SiteWatermark{{"CEN", t0.Add(2 * time.Hour)}, {Site: "P02"}}, BacklogOK: true},
			"released waiting waiting", "data not fresh: P02 has no watermark yet"},
		{"no watermark at all", PhaseInputs{Now: t0.Add(2 * time.Hour), Start: t0, Phases: compliant(observe(t0), 0, 100), BacklogOK: true},
			"released waiting waiting", "data not fresh: no site's watermark is known"},
		{"backlog over target", PhaseInputs{Now: t0.Add(2 * time.Hour), Start: t0, Phases: compliant(observe(t0), 0, 100), Watermarks: fresh(t0.Add(2 * time.Hour)), BacklogOK: false},
			"released waiting waiting", "backlog over target (phase 1 (pilot): 100 % ≥ 95 % compliant (100 of 100) holds on fresh data)"},
		{"phase 3 waits on phase 2's own criterion", PhaseInputs{Now: t0.Add(3 * time.Hour), Start: t0, Phases: compliant(compliant(observe(t0, t0.Add(2*time.Hour)), 0, 100), 1, 80),
			Watermarks: fresh(t0.Add(3 * time.Hour)), BacklogOK: true},
			"released released waiting", "criterion of phase 2 (broad) 80 % < 90 % on fresh data (80 of 100 members compliant)"},
		{"phase 3 once phase 2 holds, soak 0", PhaseInputs{Now: t0.Add(2*time.Hour + time.Second), Start: t0, Phases: compliant(compliant(observe(t0, t0.Add(2*time.Hour)), 0, 100), 1, 90),
			Watermarks: fresh(t0.Add(2*time.Hour + time.Millisecond)), BacklogOK: true},
			"released released release", "phase 2 (broad): 90 % ≥ 90 % compliant (90 of 100) held on fresh data, after a soak of 0s"},
		{"a phase without members proves nothing: the next waits", PhaseInputs{Now: t0.Add(2 * time.Hour), Start: t0,
			Phases: func() []PhaseObservation { o := observe(t0); o[0].Members = 0; return o }(), Watermarks: fresh(t0.Add(2 * time.Hour)), BacklogOK: true},
			"released waiting waiting", "phase 1 (pilot) has no members: nothing proves the deployment yet (is its collection right?)"},
	}
	for _, c := range cases {
		got := DecidePhases(c.in)
		if s := states(got); s != c.want {
			t.Errorf("%s: %s, want %s (%+v)", c.name, s, c.want, got)
			continue
		}
		for _, st := range got {
			if st.State == PhaseWaiting || st.Release {
				if !strings.Contains(st.Reason, c.reason) {
					t.Errorf("%s: phase %d: reason %q, want it to say %q", c.name, st.Phase, st.Reason, c.reason)
				}
				break
			}
		}
	}
	// The phase after one released by this decision waits for the next one.
	got := DecidePhases(PhaseInputs{Now: t0, Start: t0, Phases: observe()})
	if got[1].Reason != "phase 1 (pilot) is released only now" || got[2].Reason != "phase 2 (broad) is not released yet" {
		t.Errorf("reasons %q, %q", got[1].Reason, got[2].Reason)
	}
	// Released phases keep their time and reason; the success is truncated to 2 decimals.
	o := observe(t0)
	o[0].Compliant, o[0].Members = 2, 3
	got = DecidePhases(PhaseInputs{Now: t0.Add(time.Minute), Start: t0, Phases: o})
	if !got[0].ReleasedAt.Equal(t0) || got[0].Reason != "earlier" || got[0].Release || got[0].SuccessPct != 66.66 {
		t.Errorf("phase 1 %+v", got[0])
	}
}

func TestMeetsIsExact(t *testing.T) {
	cases := []struct {
		compliant, members int64
		want               float64
		met                bool
	}{
		{999, 1000, 99.9, true}, {998, 1000, 99.9, false},
		{18_999, 20_000, 95, false}, {19_000, 20_000, 95, true},
		{1, 3, 33.333333, true}, {1, 3, 33.34, false},
		{9_999_999, 10_000_000, 99.99999, true}, {9_999_899, 10_000_000, 99.999, false},
		{0, 10, 0, true}, {10, 10, 100, true}, {9, 10, 100, false},
	}
	for _, c := range cases {
		if got := meets(c.compliant, c.members, c.want); got != c.met {
			t.Errorf("%d of %d against %g %%: %v, want %v", c.compliant, c.members, c.want, got, c.met)
		}
	}
}
