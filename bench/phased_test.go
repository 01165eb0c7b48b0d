package bench

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/statepipe/statepipe/pacing"
)

func TestPhasedScenarioFields(t *testing.T) {
	base, err := os.ReadFile("scenarios/phased-deployment-small.yaml")
	if err != nil {
		t.Fatal(err)
	}
	sc, err := ParseScenario(base, "small")
	if err != nil {
		t.Fatal(err)
	}
	d := sc.Deployments[0]
	if len(d.Phases) != 3 || d.Poll.D() != 20*time.Minute || d.Phases[1].Failure == nil || *d.Phases[1].Failure != 0.3 ||
		d.Phases[1].RetryAfter.D() != 30*time.Minute || d.Phases[2].success() != 95 {
		t.Fatalf("phases %+v", d)
	}
	cases := []struct{ from, to, want string }{
		{"{name: rest, success_pct: 95}", "{name: pilot}", `phases[2].name: "pilot" repeats`},
		{"share: 0.45", "share: 0.95", "phases[1].share: the shares add up to more than 1"},
		{"share: 0.45", "collection: early", "phases[1].collection_target"},
		{"share: 0.45", "share: 0.45, collection: early, collection_target: 0.2", "by share or by collection"},
		{"share: 0.45", "collection: a~b, collection_target: 0.2", "phases[1].collection"},
		{"failure: 0.3", "failure: 1.3", "phases[1].failure"},
		{"retry_after: 30m", "retry_after: -30m", "phases[1].retry_after"},
		{"success_pct: 95, soak: 10m, failure: 0.3", "success_pct: 101, soak: 10m, failure: 0.3", "phases[1].success_pct"},
		{"clients: 600", "clients: 600\nprimaries: 2", "measured at one site"},
		{"{name: rest, success_pct: 95}", "{name: rest, frequency: 3}", `unknown field "frequency"`},
	}
	for _, c := range cases {
		b := strings.Replace(string(base), c.from, c.to, 1)
		if b == string(base) {
			t.Fatalf("%q not in the scenario", c.from)
		}
		_, err := ParseScenario([]byte(b), "edited")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q → %q: got %v, want an error containing %q", c.from, c.to, err, c.want)
		}
	}
	// poll is for phased deployments only.
	plain := "clients: 10\ncatalog: 10\napplicable: {min: 1, max: 2}\nlist: 5\nduration: 1h\nname: x\ndeployments: [{id: d, updates: 2, start: 0s, deadline: 1h, poll: 5m}]\n"
	if _, err := ParseScenario([]byte(plain), "x"); err == nil || !strings.Contains(err.Error(), "deployments[0].poll") {
		t.Errorf("poll without phases: %v", err)
	}
}

// TestPhasedWorld checks the simulated world of a phased deployment: each client's phase is
// the site's rule (pacing.AssignPhases over the target's members), a collection phase claims
// its collection, the reference record carries the phases with the soak on the wall clock, a
// client not released polls with a scan and does not enforce, and one that learns the release
// begins at once with a deadline relative to it; a phase's failures are its own, and a retried
// install succeeds.
func TestPhasedWorld(t *testing.T) {
	sc, err := LoadScenario("scenarios/phased-deployment-small.yaml")
	if err != nil {
		t.Fatal(err)
	}
	sc.Deployments[0].Phases[0] = DeploymentPhase{Name: "pilot", Collection: "pilot-pcs", CollectionTarget: 0.1, Soak: Duration(10 * time.Minute)}
	w := newWorld(sc, time.Now().Add(-sc.Duration.D()))
	sd := w.deps[0]
	var members []string
	colls := map[string][]string{}
	for c, in := range sd.members {
		if in {
			members = append(members, ClientID(c))
		}
		if sd.collections["pilot-pcs"][c] {
			colls["pilot-pcs"] = append(colls["pilot-pcs"], ClientID(c))
		}
	}
	if len(colls["pilot-pcs"]) == 0 {
		t.Fatal("no pilot collection")
	}
	assigned := pacing.AssignPhases(sd.ID, members, sd.plans, colls)
	for i, ids := range assigned {
		for _, id := range ids {
			var c int
			for c = range w.clients {
				if w.clients[c].id == id {
					break
				}
			}
			if int(sd.phaseOf[c]) != i || int(w.clients[c].deps[0].phase) != i {
				t.Fatalf("client %s: phase %d in the world, %d by the site's rule", id, sd.phaseOf[c], i)
			}
		}
	}
	if len(assigned[0]) != len(colls["pilot-pcs"]) {
		t.Errorf("the pilot phase has %d members, its collection %d", len(assigned[0]), len(colls["pilot-pcs"]))
	}
	before, _ := w.refLines()
	dep := before["deployments"][0]
	for _, want := range []string{`"phases":[`, `"collection":"pilot-pcs"`, `"soak":"667ms"`, `"share":0.45`, `"success_pct":95`} {
		if !strings.Contains(dep, want) {
			t.Errorf("deployment record %s lacks %s", dep, want)
		}
	}
	if !strings.Contains(strings.Join(before["collections"], "\n"), `"id":"pilot-pcs"`) {
		t.Error("the pilot collection is not imported")
	}
	// A client of broad, enrolled, not released: at its deployment's time it polls.
	var c *simClient
	for _, cl := range w.clients {
		if cl.deps[0].phase == 1 {
			c = cl
			break
		}
	}
	msgs, _ := w.act(c, c.enrolAt)
	if !c.enrolled || len(msgs) == 0 {
		t.Fatal("no first report")
	}
	at := c.deps[0].at
	msgs, _ = w.act(c, at)
	if len(msgs) != 1 || msgs[0].TopicType != 501 || c.deps[0].step != 0 || c.deps[0].at != at+sd.Poll.D() {
		t.Fatalf("a poll: %+v, dep %+v", msgs, c.deps[0])
	}
	if !w.learnRelease(c, 0, at+time.Minute) || w.learnRelease(c, 0, at+2*time.Minute) {
		t.Fatal("learning the release once")
	}
	cd := &c.deps[0]
	if cd.at != at+time.Minute || cd.deadline != cd.at+10*time.Minute {
		t.Errorf("released at %v: begins %v, deadline %v", at+time.Minute, cd.at, cd.deadline)
	}
	if fail, retry := sd.failure(cd); fail != 0.3 || retry != 30*time.Minute {
		t.Errorf("broad's failure %v retry %v", fail, retry)
	}
	cd.retried = true
	if fail, _ := sd.failure(cd); fail != 0 {
		t.Errorf("a retry fails at %v", fail)
	}
	if fail, _ := sd.failure(&clientDep{phase: 2}); fail != 0 {
		t.Errorf("the rest's failure %v, want the deployment's 0", fail)
	}
}

// TestPhasedDeploymentSmall runs phased-deployment-small.yaml against a site of this
// repository's statepipe (pacing on): every report equals the oracle; the site's phases have
// the oracle's members; the phases are released in order, each only after its predecessor's
// criterion held on the oracle and it soaked; broad's failures keep the rest waiting until
// they are retried; no client enforces a phase before the site released it. It asserts no
// speed.
func TestPhasedDeploymentSmall(t *testing.T) {
	bin := siteBinary(t)
	sc, err := LoadScenario("scenarios/phased-deployment-small.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var progress strings.Builder
	// The clients enrol before the run: let the controller admit them at once.
	res, err := RunScenario(ctx, HarnessConfig{Scenario: sc, Bin: bin, Progress: &progress, CheckTimeout: 2 * time.Minute,
		SiteArgs: []string{"--pacing.start-rate=1000"}})
	if err != nil {
		t.Fatalf("run: %v\n%s", err, progress.String())
	}
	if !res.OracleOK {
		t.Fatalf("the reports differ from the oracle: %s\n%s", res.OracleError, progress.String())
	}
	pr := res.Phased
	if pr == nil || len(pr.Deployments) != 1 || res.Pacing != "on" {
		t.Fatalf("phased %+v, pacing %q", pr, res.Pacing)
	}
	if !pr.OK {
		t.Errorf("violations: %v", pr.Violations)
	}
	ph := pr.Deployments[0].Phases
	total := 0
	for _, p := range ph {
		total += p.Members
		if int64(p.Members) != p.SiteMembers {
			t.Errorf("phase %d: %d members by the oracle, %d at the site", p.Phase, p.Members, p.SiteMembers)
		}
		if p.ReleasedSecs == nil {
			t.Fatalf("phase %d (%s) was never released\n%s", p.Phase, p.Name, progress.String())
		}
		// No client learnt of a release before the site made it.
		if p.FirstEnforced == nil || p.FirstEnforced.Secs < *p.ReleasedSecs {
			t.Errorf("phase %d released at %.1f s, first enforced %+v", p.Phase, *p.ReleasedSecs, p.FirstEnforced)
		}
	}
	if total != sc.Clients { // target 1: every client is in a phase
		t.Errorf("%d clients in phases, want %d", total, sc.Clients)
	}
	for i := 1; i < len(ph); i++ {
		prev, cur := ph[i-1], ph[i]
		if *cur.ReleasedSecs <= *prev.ReleasedSecs {
			t.Errorf("phase %d released at %.1f s, not after phase %d (%.1f s)", cur.Phase, *cur.ReleasedSecs, prev.Phase, *prev.ReleasedSecs)
		}
		if prev.CriterionHeld == nil || *cur.ReleasedSecs < prev.CriterionHeld.SentSecs {
			t.Errorf("phase %d released at %.1f s, phase %d's criterion held %+v", cur.Phase, *cur.ReleasedSecs, prev.Phase, prev.CriterionHeld)
		}
		if cur.DelaySecs == nil || cur.DueSecs == nil {
			t.Errorf("phase %d: no release delay", cur.Phase)
		}
	}
	// Broad's failures held the rest back until their retries: its criterion first held after
	// its first retried install could have been reported (its release + the retry's 30 min).
	broad := ph[1]
	if broad.CriterionHeld == nil || time.Duration(broad.CriterionHeld.Sim) < time.Duration(*broad.ReleasedSim)+broad.RetryAfter.D() {
		t.Errorf("broad: released at sim %v, criterion held %+v, before a retry could succeed", broad.ReleasedSim, broad.CriterionHeld)
	}
	if broad.WaitSecs == nil || ph[2].WaitSecs["criterion"] <= 0 {
		t.Errorf("the rest never waited for broad's criterion: %+v", ph[2].WaitSecs)
	}
	dir := t.TempDir()
	if err := WriteResults(dir, res); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"result.json", "report.md", "phased-small-phased-compliance.png", "phased-small-phased-enforcement.png"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
	md, _ := os.ReadFile(filepath.Join(dir, "report.md"))
	if !strings.Contains(string(md), "## Phased deployments") || !strings.Contains(string(md), "**Release delays**") {
		t.Errorf("report.md has no phased section:\n%s", md)
	}
	back, err := ReadResult(filepath.Join(dir, "result.json"))
	if err != nil || back.Phased == nil || len(back.Phased.Deployments[0].Phases) != 3 {
		t.Fatalf("result.json read back: %v", err)
	}
	for _, p := range ph[1:] {
		t.Logf("phase %d (%s): due %.1f s (%s), released %.1f s, delay %.1f s; waits %v", p.Phase, p.Name, *p.DueSecs, p.DueBy, *p.ReleasedSecs, *p.DelaySecs, p.WaitSecs)
	}
}

// TestPhasedJudge checks how a release is measured against its predecessor: due when the
// predecessor's criterion held and it soaked, the delay from then, and a violation for a
// release before the report that made the criterion hold was sent, before the soak was over,
// or without the criterion ever holding; a phase without members holds its criterion.
func TestPhasedJudge(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	held := func(sent, ack float64) *HeldChange { return &HeldChange{Held: true, SentSecs: sent, Secs: ack} }
	for _, c := range []struct {
		name      string
		prev, cur PhaseResult
		due       float64
		by        string
		violation string
	}{
		{"criterion last", PhaseResult{Members: 10, ReleasedSecs: f(0), SoakWall: 5, CriterionHeld: held(19.9, 20)}, PhaseResult{ReleasedSecs: f(21.5)}, 20, "criterion", ""},
		{"soak last", PhaseResult{Members: 10, ReleasedSecs: f(0), SoakWall: 30, CriterionHeld: held(19.9, 20)}, PhaseResult{ReleasedSecs: f(31)}, 30, "soak", ""},
		{"before the criterion", PhaseResult{Members: 10, ReleasedSecs: f(0), SoakWall: 5, CriterionHeld: held(19.9, 20)}, PhaseResult{ReleasedSecs: f(19)}, 20, "criterion", "before phase 0 ()'s criterion held"},
		{"never held", PhaseResult{Members: 10, ReleasedSecs: f(0), SoakWall: 5}, PhaseResult{ReleasedSecs: f(19)}, -1, "", "never held"},
		{"before the soak", PhaseResult{Members: 10, ReleasedSecs: f(0), SoakWall: 30, CriterionHeld: held(1, 2)}, PhaseResult{ReleasedSecs: f(10)}, 30, "soak", "had soaked"},
		{"no members", PhaseResult{ReleasedSecs: f(0), SoakWall: 5}, PhaseResult{ReleasedSecs: f(6)}, 5, "soak", ""},
		{"not released", PhaseResult{Members: 10, ReleasedSecs: f(0), CriterionHeld: held(1, 2)}, PhaseResult{}, 2, "criterion", ""},
	} {
		r := &PhasedResult{OK: true}
		r.judge("d", &c.prev, &c.cur)
		switch {
		case c.due < 0 && c.cur.DueSecs != nil, c.due >= 0 && (c.cur.DueSecs == nil || *c.cur.DueSecs != c.due || c.cur.DueBy != c.by):
			t.Errorf("%s: due %v by %q, want %v by %q", c.name, c.cur.DueSecs, c.cur.DueBy, c.due, c.by)
		case c.cur.ReleasedSecs != nil && c.cur.DueSecs != nil && (c.cur.DelaySecs == nil || *c.cur.DelaySecs != *c.cur.ReleasedSecs-c.due):
			t.Errorf("%s: delay %v", c.name, c.cur.DelaySecs)
		case c.violation == "" && (!r.OK || len(r.Violations) > 0):
			t.Errorf("%s: violations %v", c.name, r.Violations)
		case c.violation != "" && (r.OK || len(r.Violations) != 1 || !strings.Contains(r.Violations[0], c.violation)):
			t.Errorf("%s: violations %v, want one containing %q", c.name, r.Violations, c.violation)
		}
	}
	// The documented rule, exactly: 94.995 % is not 95 %, whatever it rounds to.
	if criterionHolds(18999, 20000, 95) || !criterionHolds(19000, 20000, 95) || !criterionHolds(0, 0, 95) || roundedPct(18999, 20000) != 95 {
		t.Error("criterionHolds")
	}
}
