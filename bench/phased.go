package bench

// Phased deployments (Deployment.Phases): the site releases a deployment to its collection a
// phase at a time (README "Phased deployments"). The simulated clients of a phased deployment
// start enforcing it only once an answer to their reports lists it as released to them
// (client.Client.IsReleased after each report); until then they poll the site every
// Deployment.Poll with a scan report. The oracle knows each client's phase by the site's own
// rule (pacing.PhaseOf) and counts, as each report is acknowledged, the phase's members
// compliant with the deployment's updates; the harness reads the site's phases
// (GET /v1/deployments/{id}/phases) once a second beside the other samples. The run then says,
// per phase, when its criterion first held on the oracle's truth, when the site released the
// next phase and the delay between the two, and whether any phase was released before its
// predecessor's criterion held (PhasedResult).

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/statepipe/statepipe/pacing"
	"github.com/statepipe/statepipe/report"
	"github.com/statepipe/statepipe/schema"
)

// DeploymentPhase is one phase of a scenario's phased deployment: the site's phase
// (schema.Phase) and how its clients behave.
type DeploymentPhase struct {
	Name string `json:"name"`
	// Share claims that share of the deployment's target collection (by the site's stable
	// hash); Collection claims the members of a collection the harness makes of
	// CollectionTarget of the target's clients (a pilot group); neither (the last phase
	// only): every client no phase before claimed.
	Share            float64 `json:"share,omitempty"`
	Collection       string  `json:"collection,omitempty"`
	CollectionTarget float64 `json:"collection_target,omitempty"`
	// SuccessPct is the criterion: the share of the phase's clients, in percent, compliant
	// with the deployment's updates before the next phase is released (default 95).
	SuccessPct *float64 `json:"success_pct,omitempty"`
	// Soak is the least simulated time the phase runs before the next is released; the site,
	// which runs on the wall clock, is given Soak / time_scale.
	Soak Duration `json:"soak,omitempty"`
	// Failure, when set, is the fraction of installations that fail for this phase's clients,
	// over the deployment's failure.
	Failure *float64 `json:"failure,omitempty"`
	// RetryAfter, when set, retries a failed installation of this phase's clients after this
	// simulated time, and the retry succeeds (an administrator's fix); without it a failed
	// installation stays failed.
	RetryAfter Duration `json:"retry_after,omitempty"`
}

// success is the phase's criterion in percent.
func (p DeploymentPhase) success() float64 {
	if p.SuccessPct == nil {
		return schema.DefaultSuccessPct
	}
	return *p.SuccessPct
}

// claims says how the phase claims its clients, for the report.
func (p DeploymentPhase) claims() string {
	switch {
	case p.Share > 0:
		return fmt.Sprintf("share %g", p.Share)
	case p.Collection != "":
		return fmt.Sprintf("collection %s (%g of the target)", p.Collection, p.CollectionTarget)
	}
	return "the rest"
}

// defaultPoll is how often a client of a phased deployment not released to it asks.
const defaultPoll = 30 * time.Minute

// validatePhases checks a deployment's phases (f is the deployment's field path).
func (s *Scenario) validatePhases(f string, d *Deployment) error {
	fe := func(field, format string, a ...any) error {
		return fmt.Errorf("field %s: %s", field, fmt.Sprintf(format, a...))
	}
	if len(d.Phases) == 0 {
		if d.Poll != 0 {
			return fe(f+".poll", "only for a phased deployment (phases)")
		}
		return nil
	}
	switch {
	case len(d.Phases) < 2 || len(d.Phases) > schema.MaxPhases:
		return fe(f+".phases", "a phased deployment has 2 to %d phases, got %d", schema.MaxPhases, len(d.Phases))
	case s.Primaries > 0:
		return fe(f+".phases", "phased deployments are measured at one site, not in a hierarchy (primaries)")
	case d.Poll < 0:
		return fe(f+".poll", "must not be negative")
	}
	names := map[string]bool{}
	colls := map[string]bool{}
	sum := 0.0
	for i, p := range d.Phases {
		pf := fmt.Sprintf("%s.phases[%d]", f, i)
		switch {
		case strings.TrimSpace(p.Name) == "":
			return fe(pf+".name", "required")
		case names[p.Name]:
			return fe(pf+".name", "%q repeats another phase's name", p.Name)
		case p.Share < 0 || p.Share > 1:
			return fe(pf+".share", "%v is not a share between 0 and 1", p.Share)
		case p.Share > 0 && p.Collection != "":
			return fe(pf+".collection", "a phase claims by share or by collection, not both")
		case p.Collection != "" && (strings.ContainsAny(p.Collection, " ,"+schema.ReservedIDSep) || p.Collection == deploymentPrefix+d.ID || colls[p.Collection]):
			return fe(pf+".collection", "%q: want an id without spaces, commas or %q, unique, and not the target's (%s)", p.Collection, schema.ReservedIDSep, deploymentPrefix+d.ID)
		case p.Collection != "" && (p.CollectionTarget <= 0 || p.CollectionTarget > 1):
			return fe(pf+".collection_target", "want the fraction (0, 1] of the target's clients in collection %s", p.Collection)
		case p.Collection == "" && p.CollectionTarget != 0:
			return fe(pf+".collection_target", "only with collection")
		case p.Share == 0 && p.Collection == "" && i != len(d.Phases)-1:
			return fe(pf+".share", "the phase claims no client: give share or collection (only the last phase may have neither)")
		case p.success() < 0 || p.success() > 100:
			return fe(pf+".success_pct", "%v is not a percentage", p.success())
		case p.Soak < 0:
			return fe(pf+".soak", "must not be negative")
		case p.Failure != nil && (*p.Failure < 0 || *p.Failure > 1):
			return fe(pf+".failure", "%v is not a fraction between 0 and 1", *p.Failure)
		case p.RetryAfter < 0:
			return fe(pf+".retry_after", "must not be negative")
		}
		names[p.Name] = true
		if p.Collection != "" {
			colls[p.Collection] = true
		}
		if sum += p.Share; sum > 1+1e-9 {
			return fe(pf+".share", "the shares add up to more than 1")
		}
	}
	return nil
}

// assignPhases makes the collections the phases claim (each of CollectionTarget of the
// target's clients, from the world's random stream) and puts every targeted client in its
// phase by the site's rule.
func (sd *simDeployment) assignPhases(rng *rand.Rand) {
	n := len(sd.members)
	sd.collections = map[string][]bool{}
	for _, p := range sd.Phases {
		sd.plans = append(sd.plans, pacing.PhasePlan{Name: p.Name, Share: p.Share, Collection: p.Collection, SuccessPct: p.success()})
		if p.Collection == "" {
			continue
		}
		in := make([]bool, n)
		for c := range n {
			in[c] = sd.members[c] && rng.Float64() < p.CollectionTarget
		}
		sd.collections[p.Collection] = in
	}
	sd.phaseOf = make([]int8, n)
	for c := range n {
		sd.phaseOf[c] = -1
		if sd.members[c] {
			sd.phaseOf[c] = int8(pacing.PhaseOf(sd.ID, ClientID(c), sd.plans, func(coll string) bool { return sd.collections[coll][c] }))
		}
	}
}

// phaseRecords are the phases of the deployment's reference record. The site runs on the wall
// clock: a phase's soak is given as Soak / time_scale.
func (sd *simDeployment) phaseRecords(scale float64) []map[string]any {
	var out []map[string]any
	for _, p := range sd.Phases {
		r := map[string]any{"name": p.Name, "success_pct": p.success(), "soak": wallSoak(p.Soak, scale).String()}
		switch {
		case p.Share > 0:
			r["share"] = p.Share
		case p.Collection != "":
			r["collection"] = p.Collection
		}
		out = append(out, r)
	}
	return out
}

// wallSoak is a simulated soak on the wall clock, to the millisecond.
func wallSoak(soak Duration, scale float64) time.Duration {
	return time.Duration(float64(soak) / scale).Round(time.Millisecond)
}

// failure returns the failure rate of a client's installation of the deployment and, when its
// phase retries failed ones, after how long; a retry succeeds.
func (sd *simDeployment) failure(cd *clientDep) (fail float64, retry time.Duration) {
	fail = sd.Failure
	if cd.retried {
		return 0, 0
	}
	if cd.phase >= 0 && int(cd.phase) < len(sd.Phases) {
		p := sd.Phases[cd.phase]
		if p.Failure != nil {
			fail = *p.Failure
		}
		retry = p.RetryAfter.D()
	}
	return fail, retry
}

// learnRelease is client c learning at simulated time now that phased deployment d is released
// to it: it begins the deployment at once (or at its own schedule's start, if later), with a
// deadline as far after that as the deployment's deadline is after its start. It returns
// false when there was nothing to learn.
func (w *world) learnRelease(c *simClient, d int, now time.Duration) bool {
	sd, cd := w.deps[d], &c.deps[d]
	if !sd.phased() || cd.released || cd.step != 0 {
		return false
	}
	cd.released = true
	cd.at = max(now, cd.firstAt)
	cd.deadline = cd.at + max(sd.Deadline.D()-sd.Start.D(), 0)
	return true
}

// ---- the run's measure

// phasedRun measures a run's phased deployments as it goes.
type phasedRun struct {
	h    *harness
	deps []*phasedDep

	mu      sync.Mutex
	samples []PhasedSample
}

// phasedDep is one phased deployment's measure.
type phasedDep struct {
	d         int
	sd        *simDeployment
	members   []int  // per phase, by the oracle's assignment
	compliant []bool // per client: compliant as last acknowledged (its worker's only)
	mu        sync.Mutex
	phases    []*phaseTrack
}

// phaseTrack is one phase's measure.
type phaseTrack struct {
	compliant   int // members compliant, as acknowledged
	enforced    int // members that learnt the release and began the deployment
	held        bool
	transitions []HeldChange
	firstHeld   *HeldChange
	firstEnf    *Moment
	lastEnf     *Moment
	// The site's view, from the polls.
	observed    *Moment   // the first poll that showed the phase released
	releasedAt  time.Time // as the site says
	releasedSim time.Duration
	reason      string     // why it was released
	siteHeld    *Moment    // the first poll whose success of the phase reached its criterion
	siteMembers int64      //
	siteLast    PhasePoint // the last poll's
	waits       []WaitChange
}

// HeldChange is the oracle's criterion of a phase starting (Held) or ceasing to hold, with the
// report that made it so: sent at SentSecs, acknowledged at Secs (wall clock since the run
// began), its client's simulated time Sim.
type HeldChange struct {
	Held     bool     `json:"held"`
	SentSecs float64  `json:"sent_seconds"`
	Secs     float64  `json:"seconds"`
	Sim      Duration `json:"sim_time"`
	Pct      float64  `json:"compliant_pct"`
}

// Moment is a wall-clock instant since the run began, with the simulated time then.
type Moment struct {
	Secs float64  `json:"seconds"`
	Sim  Duration `json:"sim_time"`
}

// WaitChange is the site's reason a phase waits changing to Kind (soak, fresh, criterion,
// backlog, previous, start, released), as first polled at Secs; Reason is the site's words.
type WaitChange struct {
	Secs   float64 `json:"seconds"`
	Kind   string  `json:"kind"`
	Reason string  `json:"reason"`
}

// PhasedSample is one second of a run's phased deployments.
type PhasedSample struct {
	At      time.Duration `json:"at"`
	SimTime time.Duration `json:"sim_time"`
	// Deployments, in the scenario's order of its phased deployments.
	Deployments []PhasedDeploymentPoint `json:"deployments"`
}

// PhasedDeploymentPoint is one phased deployment at a sample.
type PhasedDeploymentPoint struct {
	BacklogOK *bool        `json:"backlog_ok,omitempty"` // the site's, nil when not read
	Phases    []PhasePoint `json:"phases"`
}

// PhasePoint is one phase at a sample: the oracle's counts, and the site's view (SitePct -1,
// State empty: not read).
type PhasePoint struct {
	Compliant     int     `json:"compliant"`
	Enforced      int     `json:"enforced"`
	SitePct       float64 `json:"site_pct"`
	SiteCompliant int64   `json:"site_compliant"`
	State         string  `json:"state,omitempty"`
}

func newPhasedRun(h *harness) *phasedRun {
	var p *phasedRun
	for d, sd := range h.world.deps {
		if !sd.phased() {
			continue
		}
		if p == nil {
			p = &phasedRun{h: h}
		}
		pd := &phasedDep{d: d, sd: sd, members: make([]int, len(sd.Phases)), compliant: make([]bool, len(h.world.clients))}
		for _, ph := range sd.phaseOf {
			if ph >= 0 {
				pd.members[ph]++
			}
		}
		for range sd.Phases {
			pd.phases = append(pd.phases, &phaseTrack{})
		}
		p.deps = append(p.deps, pd)
	}
	return p
}

// roundedPct is compliant of members in percent to two decimals, as the site shows it.
func roundedPct(compliant, members int) float64 {
	if members == 0 {
		return 0
	}
	return math.Round(float64(compliant)/float64(members)*1e4) / 100
}

// criterionHolds is the documented rule, exactly: compliant / members × 100 ≥ success_pct (a
// phase without members holds it). The site compares its rounded percentage instead
// (pacing.DecidePhases), so it may release at 94.995 % against 95 %: the oracle does not
// follow it there, and such a release is a violation.
func criterionHolds(compliant, members int, pct float64) bool {
	return members == 0 || float64(compliant)*100 >= pct*float64(members)
}

// acked takes client c's report acknowledged at ack (sent at sent): the phased deployments it
// learnt are released to it, and its compliance with each. Only c's worker calls it for c.
func (p *phasedRun) acked(c *simClient, released func(id string) bool, sent, ack time.Time) {
	h := p.h
	for _, pd := range p.deps {
		ph := pd.sd.phaseOf[c.idx]
		if ph < 0 {
			continue
		}
		learnt := released(pd.sd.ID) && h.world.learnRelease(c, pd.d, c.wake)
		comp := c.enrolled && h.world.computerStatus(c, pd.sd.updates) == report.ComputerCompliant
		if !learnt && comp == pd.compliant[c.idx] {
			continue
		}
		at := Moment{Secs: ack.Sub(h.begin).Seconds(), Sim: Duration(c.wake)}
		pd.mu.Lock()
		t := pd.phases[ph]
		if learnt {
			t.enforced++
			if t.firstEnf == nil {
				t.firstEnf = &at
			}
			if t.enforced == pd.members[ph] {
				t.lastEnf = &at
			}
		}
		if comp != pd.compliant[c.idx] {
			pd.compliant[c.idx] = comp
			if comp {
				t.compliant++
			} else {
				t.compliant--
			}
			pct := roundedPct(t.compliant, pd.members[ph])
			if held := criterionHolds(t.compliant, pd.members[ph], pd.sd.Phases[ph].success()); held != t.held {
				t.held = held
				ch := HeldChange{Held: held, SentSecs: sent.Sub(h.begin).Seconds(), Secs: at.Secs, Sim: at.Sim, Pct: pct}
				t.transitions = append(t.transitions, ch)
				if held && t.firstHeld == nil {
					t.firstHeld = &ch
				}
			}
		}
		pd.mu.Unlock()
	}
}

// phasesAnswer is what the harness reads of GET /v1/deployments/{id}/phases.
type phasesAnswer struct {
	BacklogOK *bool `json:"backlog_ok"`
	Phases    []struct {
		Phase      int        `json:"phase"`
		Members    int64      `json:"members"`
		Compliant  int64      `json:"compliant"`
		SuccessPct float64    `json:"success_pct"`
		Criterion  float64    `json:"criterion_pct"`
		State      string     `json:"state"`
		ReleasedAt *time.Time `json:"released_at"`
		Reason     string     `json:"reason"`
	} `json:"phases"`
}

// sample polls the site's phases of every phased deployment and adds a PhasedSample at wall
// clock at (since the run began), simulated time sim.
func (p *phasedRun) sample(ctx context.Context, at, sim time.Duration) {
	s := PhasedSample{At: at, SimTime: sim}
	now := Moment{Secs: at.Seconds(), Sim: Duration(sim)}
	for _, pd := range p.deps {
		var a phasesAnswer
		err := p.h.site.get(ctx, "/v1/deployments/"+url.PathEscape(pd.sd.ID)+"/phases", &a)
		pt := PhasedDeploymentPoint{}
		if err == nil {
			pt.BacklogOK = a.BacklogOK
		}
		pd.mu.Lock()
		for i, t := range pd.phases {
			pp := PhasePoint{Compliant: t.compliant, Enforced: t.enforced, SitePct: -1}
			if err == nil && i < len(a.Phases) {
				sp := a.Phases[i]
				pp.SitePct, pp.SiteCompliant, pp.State = sp.SuccessPct, sp.Compliant, sp.State
				t.siteMembers = sp.Members
				if sp.ReleasedAt != nil && t.releasedAt.IsZero() {
					t.releasedAt, t.reason = *sp.ReleasedAt, sp.Reason
					m := now
					t.observed = &m
					// Simulated time then: the clock at this poll, less the poll's lag.
					t.releasedSim = sim - time.Duration(float64(p.h.begin.Add(at).Sub(t.releasedAt))*p.h.sc.TimeScale)
				}
				if t.siteHeld == nil && sp.Members > 0 && sp.SuccessPct >= sp.Criterion {
					m := now
					t.siteHeld = &m
				}
				kind := waitKind(sp.State, sp.Reason)
				if n := len(t.waits); n == 0 || t.waits[n-1].Kind != kind {
					t.waits = append(t.waits, WaitChange{Secs: at.Seconds(), Kind: kind, Reason: sp.Reason})
				}
				t.siteLast = pp
			}
			pt.Phases = append(pt.Phases, pp)
		}
		pd.mu.Unlock()
		s.Deployments = append(s.Deployments, pt)
	}
	p.mu.Lock()
	p.samples = append(p.samples, s)
	p.mu.Unlock()
}

// waitKind classifies the site's reason for a phase's state (pacing.DecidePhases's words).
func waitKind(state, reason string) string {
	switch {
	case state == pacing.PhaseReleased:
		return "released"
	case strings.HasPrefix(reason, "soak of"):
		return "soak"
	case strings.HasPrefix(reason, "data not fresh"):
		return "fresh"
	case strings.HasPrefix(reason, "criterion of"):
		return "criterion"
	case strings.HasPrefix(reason, "backlog over target"):
		return "backlog"
	case strings.Contains(reason, "is not released yet") || strings.Contains(reason, "is released only now"):
		return "previous"
	case strings.HasPrefix(reason, "waiting for the deployment's start"):
		return "start"
	}
	return "other"
}

// ---- the result

// PhasedResult is what a run measured of its phased deployments (HarnessResult.Phased).
type PhasedResult struct {
	TimeScale   float64            `json:"time_scale"`
	Deployments []PhasedDeployment `json:"deployments"`
	Samples     []PhasedSample     `json:"samples"`
	OK          bool               `json:"ok"`         // no phase released before its predecessor's criterion held and soaked
	Violations  []string           `json:"violations"` // what was released too early, and when
}

// PhasedDeployment is one phased deployment's measure.
type PhasedDeployment struct {
	ID     string        `json:"id"`
	Poll   Duration      `json:"poll"`
	Phases []PhaseResult `json:"phases"`
}

// PhaseResult is one phase's measure. Times are wall-clock seconds since the run began (a
// phase released before it, at the import, has a negative one), with the simulated time.
type PhaseResult struct {
	Phase       int      `json:"phase"`
	Name        string   `json:"name"`
	Claims      string   `json:"claims"`
	Members     int      `json:"members"`      // by the oracle's assignment (pacing.PhaseOf)
	SiteMembers int64    `json:"site_members"` // as the site counts them
	Criterion   float64  `json:"criterion_pct"`
	Failure     float64  `json:"failure"`
	RetryAfter  Duration `json:"retry_after,omitempty"`
	Soak        Duration `json:"soak"`
	SoakWall    float64  `json:"soak_wall_seconds"` // what the site was given
	// The site's release of this phase: released_at as it says, when the harness first saw
	// it, and why.
	ReleasedSecs  *float64  `json:"released_seconds,omitempty"`
	ReleasedSim   *Duration `json:"released_sim_time,omitempty"`
	ObservedSecs  *float64  `json:"observed_seconds,omitempty"`
	ReleaseReason string    `json:"release_reason,omitempty"`
	// The release measured against its predecessor: due when the predecessor's criterion
	// first held on the oracle and its soak was over (DueBy says which came last), and the
	// delay from then to the release. Empty for the first phase and one never released.
	DueSecs     *float64 `json:"due_seconds,omitempty"`
	DueBy       string   `json:"due_by,omitempty"`
	DelaySecs   *float64 `json:"release_delay_seconds,omitempty"`
	SiteSawSecs *float64 `json:"predecessor_site_held_seconds,omitempty"` // the first poll showing the predecessor's criterion held at the site
	// The phase's own criterion on the oracle: first held (the report that made it hold,
	// acknowledged), every change, and the compliance at the end.
	CriterionHeld *HeldChange  `json:"criterion_held,omitempty"`
	Changes       []HeldChange `json:"criterion_changes,omitempty"`
	FinalPct      float64      `json:"final_compliant_pct"`
	SiteFinalPct  float64      `json:"site_final_pct"`
	// Enforcement: the phase's clients that learnt the release from an answer and began the
	// deployment, the first and the last of them.
	Enforced      int     `json:"enforced"`
	FirstEnforced *Moment `json:"first_enforced,omitempty"`
	AllEnforced   *Moment `json:"all_enforced,omitempty"`
	// Waits is each change of the site's reason for the phase's state; WaitSecs the seconds
	// polled in each kind before its release.
	Waits    []WaitChange       `json:"waits,omitempty"`
	WaitSecs map[string]float64 `json:"wait_seconds,omitempty"`
}

// result summarises the run's phased deployments.
func (p *phasedRun) result() *PhasedResult {
	h := p.h
	scale := h.sc.TimeScale
	r := &PhasedResult{TimeScale: scale, OK: true, Violations: []string{}}
	p.mu.Lock()
	r.Samples = p.samples
	p.mu.Unlock()
	var last time.Duration
	if n := len(r.Samples); n > 0 {
		last = r.Samples[n-1].At
	}
	for _, pd := range p.deps {
		pd.mu.Lock()
		out := PhasedDeployment{ID: pd.sd.ID, Poll: pd.sd.Poll}
		for i, t := range pd.phases {
			ph := pd.sd.Phases[i]
			fail, _ := pd.sd.failure(&clientDep{phase: int8(i)})
			pr := PhaseResult{Phase: i + 1, Name: ph.Name, Claims: ph.claims(), Members: pd.members[i], SiteMembers: t.siteMembers,
				Criterion: ph.success(), Failure: fail, RetryAfter: ph.RetryAfter, Soak: ph.Soak, SoakWall: wallSoak(ph.Soak, scale).Seconds(),
				CriterionHeld: t.firstHeld, Changes: t.transitions, FinalPct: roundedPct(t.compliant, pd.members[i]), SiteFinalPct: t.siteLast.SitePct,
				Enforced: t.enforced, FirstEnforced: t.firstEnf, AllEnforced: t.lastEnf, Waits: t.waits, WaitSecs: map[string]float64{}}
			if !t.releasedAt.IsZero() {
				secs := t.releasedAt.Sub(h.begin).Seconds()
				sim := Duration(t.releasedSim)
				pr.ReleasedSecs, pr.ReleasedSim, pr.ReleaseReason = &secs, &sim, t.reason
				if t.observed != nil {
					pr.ObservedSecs = &t.observed.Secs
				}
			}
			for j, wc := range t.waits {
				end := last.Seconds()
				if j+1 < len(t.waits) {
					end = t.waits[j+1].Secs
				}
				if wc.Kind != "released" {
					pr.WaitSecs[wc.Kind] += end - wc.Secs
				}
			}
			out.Phases = append(out.Phases, pr)
		}
		for i := 1; i < len(out.Phases); i++ {
			prev, cur := &out.Phases[i-1], &out.Phases[i]
			if t := pd.phases[i-1].siteHeld; t != nil {
				cur.SiteSawSecs = &t.Secs
			}
			r.judge(pd.sd.ID, prev, cur)
		}
		pd.mu.Unlock()
		r.Deployments = append(r.Deployments, out)
	}
	return r
}

// judge measures phase cur's release against its predecessor prev: when it was due (prev's
// criterion held on the oracle and prev had soaked) and the delay, and a violation when cur was
// released before prev's criterion held — before the report that made it hold was even sent —
// or before prev's soak was over.
func (r *PhasedResult) judge(dep string, prev, cur *PhaseResult) {
	var due *float64
	empty := prev.Members == 0 // holds its criterion: nothing to wait for
	if prev.ReleasedSecs != nil && (prev.CriterionHeld != nil || empty) {
		d, by := *prev.ReleasedSecs+prev.SoakWall, "soak"
		if !empty && prev.CriterionHeld.Secs > d {
			d, by = prev.CriterionHeld.Secs, "criterion"
		}
		due, cur.DueBy = &d, by
		cur.DueSecs = due
	}
	if cur.ReleasedSecs == nil {
		return
	}
	rel := *cur.ReleasedSecs
	if due != nil {
		delay := rel - *due
		cur.DelaySecs = &delay
	}
	switch {
	case prev.ReleasedSecs == nil:
		r.violate("%s: phase %d (%s) released at %.1f s, but phase %d (%s) never was", dep, cur.Phase, cur.Name, rel, prev.Phase, prev.Name)
	case !empty && prev.CriterionHeld == nil:
		r.violate("%s: phase %d (%s) released at %.1f s, but phase %d (%s)'s criterion (%g %%) never held on the oracle", dep, cur.Phase, cur.Name, rel, prev.Phase, prev.Name, prev.Criterion)
	case !empty && rel < prev.CriterionHeld.SentSecs:
		r.violate("%s: phase %d (%s) released at %.1f s, before phase %d (%s)'s criterion held on the oracle (the report that made it hold was sent at %.1f s)",
			dep, cur.Phase, cur.Name, rel, prev.Phase, prev.Name, prev.CriterionHeld.SentSecs)
	case rel < *prev.ReleasedSecs+prev.SoakWall-0.001:
		r.violate("%s: phase %d (%s) released at %.1f s, before phase %d (%s) had soaked (%.1f s from %.1f s)", dep, cur.Phase, cur.Name, rel, prev.Phase, prev.Name, prev.SoakWall, *prev.ReleasedSecs)
	}
}

func (r *PhasedResult) violate(format string, a ...any) {
	r.OK = false
	r.Violations = append(r.Violations, fmt.Sprintf(format, a...))
}

// phasedGoals are the phased deployments' goals: no phase released early, and each release
// within a few seconds of being due.
func phasedGoals(r *PhasedResult) []Goal {
	g := []Goal{{What: "phased deployments: no phase released before its predecessor's criterion held and it soaked", Want: "none",
		Got: fmt.Sprintf("%d", len(r.Violations)), Met: r.OK}}
	for _, d := range r.Deployments {
		for _, p := range d.Phases[1:] {
			what := fmt.Sprintf("%s phase %d (%s): release after its predecessor's criterion held (and soak)", d.ID, p.Phase, p.Name)
			switch {
			case p.ReleasedSecs == nil:
				g = append(g, Goal{What: what, Want: fmt.Sprintf("≤ %.0f s", phasedDelayGoal), Got: "never released", Met: false})
			case p.DelaySecs != nil:
				g = append(g, Goal{What: what, Want: fmt.Sprintf("≤ %.0f s", phasedDelayGoal), Got: fmt.Sprintf("%.1f s", *p.DelaySecs), Met: *p.DelaySecs <= phasedDelayGoal})
			}
		}
	}
	return g
}

// phasedDelayGoal is "within seconds": the decider looks every 2 s, the projector's visible
// delay is about a second, and fresh data needs a report accepted after the phase began.
const phasedDelayGoal = 10.0

// phasedMarkdown is report.md's section on phased deployments (empty without one).
func phasedMarkdown(r *HarnessResult) string {
	pr := r.Phased
	if pr == nil {
		return ""
	}
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	secs := func(v *float64) string {
		if v == nil {
			return "—"
		}
		return fmt.Sprintf("%.1f s", *v)
	}
	released := func(ph PhaseResult) string {
		switch {
		case ph.ReleasedSecs == nil:
			return "never"
		case *ph.ReleasedSecs < 0:
			return fmt.Sprintf("%.1f s: at the import, before the run (the deployment's start lies in the simulated past)", *ph.ReleasedSecs)
		}
		return fmt.Sprintf("%.1f s (sim %s)", *ph.ReleasedSecs, time.Duration(*ph.ReleasedSim).Truncate(time.Minute))
	}
	p("## Phased deployments (pacing %s)\n\n", pacingLabel(r.Pacing))
	verdict := "**no phase was released before its predecessor's criterion held on the oracle and it had soaked**"
	if !pr.OK {
		verdict = "**phases released too early**: " + strings.Join(pr.Violations, "; ")
	}
	p("Simulated time runs %g× the wall clock; the site, which decides on the wall clock, was given each soak ÷ %g. %s.\n\n", pr.TimeScale, pr.TimeScale, verdict)
	for _, d := range pr.Deployments {
		p("### %s (clients not released to poll every %s simulated)\n\n", d.ID, time.Duration(d.Poll))
		p("| phase | claims | members (site) | criterion | install failure | soak (wall) | released (site's released_at) | criterion held on the oracle | enforcement: first → all | final compliance: oracle / site |\n|---|---|---|---|---|---|---|---|---|---|\n")
		for _, ph := range d.Phases {
			fail := percent(ph.Failure)
			if ph.RetryAfter > 0 {
				fail += fmt.Sprintf(", retried after %s (succeeds)", time.Duration(ph.RetryAfter))
			}
			held := "never"
			if c := ph.CriterionHeld; c != nil {
				held = fmt.Sprintf("%.1f s (sim %s)", c.Secs, time.Duration(c.Sim).Truncate(time.Minute))
			}
			enf := "—"
			if ph.FirstEnforced != nil {
				enf = fmt.Sprintf("%.1f s → ", ph.FirstEnforced.Secs)
				if ph.ReleasedSecs != nil && *ph.ReleasedSecs >= 0 {
					enf = fmt.Sprintf("%.1f s (%.2f s after the release) → ", ph.FirstEnforced.Secs, ph.FirstEnforced.Secs-*ph.ReleasedSecs)
				}
				if ph.AllEnforced != nil {
					enf += fmt.Sprintf("%.1f s (sim %s)", ph.AllEnforced.Secs, time.Duration(ph.AllEnforced.Sim).Truncate(time.Minute))
				} else {
					enf += fmt.Sprintf("%d of %d", ph.Enforced, ph.Members)
				}
			}
			site := "—"
			if ph.SiteFinalPct >= 0 {
				site = fmt.Sprintf("%g %%", ph.SiteFinalPct)
			}
			p("| %d %s | %s | %d (%d) | %g %% | %s | %s (%.1f s) | %s | %s | %s | %g %% / %s |\n", ph.Phase, ph.Name, ph.Claims, ph.Members, ph.SiteMembers,
				ph.Criterion, fail, time.Duration(ph.Soak), ph.SoakWall, released(ph), held, enf, ph.FinalPct, site)
		}
		p("\n**Release delays** — each phase's release against its predecessor: due once the predecessor's criterion held on the oracle's truth (the acknowledgement of the report that made it hold) and its soak was over; the delay runs from then to the site's `released_at`.\n\n")
		p("| release of | due (by) | predecessor's criterion seen held at the site (first poll) | released | **delay** | the site's reasons while it waited (seconds polled) |\n|---|---|---|---|---|---|\n")
		for _, ph := range d.Phases[1:] {
			due := "never"
			if ph.DueSecs != nil {
				due = fmt.Sprintf("%.1f s (%s)", *ph.DueSecs, ph.DueBy)
			}
			delay := "—"
			if ph.DelaySecs != nil {
				delay = fmt.Sprintf("**%.1f s**", *ph.DelaySecs)
			}
			var waits []string
			for _, k := range []string{"previous", "soak", "fresh", "criterion", "backlog", "start", "other"} {
				if v, ok := ph.WaitSecs[k]; ok && v > 0 {
					waits = append(waits, fmt.Sprintf("%s %.0f s", k, v))
				}
			}
			p("| %d %s | %s | %s | %s | %s | %s |\n", ph.Phase, ph.Name, due, secs(ph.SiteSawSecs), secs(ph.ReleasedSecs), delay, strings.Join(waits, ", "))
		}
		p("\n")
		for _, ph := range d.Phases {
			if ph.ReleaseReason != "" {
				p("- phase %d (%s) released: \"%s\"\n", ph.Phase, ph.Name, ph.ReleaseReason)
			}
		}
		p("\n")
	}
	p("The criterion is the documented rule applied to the oracle's truth — compliant members ÷ members × 100 ≥ success_pct, exactly (the site compares its percentage rounded to two decimals) — over each phase's members by `pacing.PhaseOf`; a client is compliant when every update of the deployment is Installed or Not required, as of its last acknowledged report. " +
		"Reasons: *previous* the phase before was not released yet, *soak* its predecessor soaking, *fresh* a watermark before the predecessor's start, *criterion* the predecessor under its criterion, *backlog* the site's backlog over target.\n\n")
	return b.String()
}
