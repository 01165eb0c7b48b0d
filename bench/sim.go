package bench

import (
	"encoding/json"
	"fmt"
	"hash/maphash"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/statepipe/statepipe/pacing"
	"github.com/statepipe/statepipe/schema"
)

// The simulated enterprise. Clients are cheap state machines, not goroutines: each holds its
// truth (the states it has reported) and the simulated time it next wakes; on waking it does
// everything due — its first scan, a rescan, the Patch Tuesday scan, the next step of each
// deployment it is targeted by — and sends it as one report. The truth of every client is the
// oracle: the reports of the site must equal what it implies.

// Realistic HRESULTs the simulated clients fail with (schema.HRESULTs describes them).
var (
	installErrors = []int32{hr(0x80070643), hr(0x8024402C), hr(0x87D00692), hr(0x80240022), hr(0x8024200D)}
	scanErrors    = []int32{hr(0x8024401C), hr(0x80244010)}
)

// hr returns an HRESULT as it travels: a signed 32-bit integer.
func hr(x uint32) int32 { return int32(x) }

// Deployment enforcement (301) and update enforcement (402) states the walk goes through.
const (
	s301Installing   = 1
	s301Success      = 4
	s301Restart      = 5
	s301Failed       = 6
	s301Downloading  = 7
	s301Downloaded   = 8
	s301Window       = 10
	s402Window       = 4
	s402Installing   = 8
	s402Restart      = 9
	s402Installed    = 10
	s402Failed       = 11
	s402Downloading  = 12
	s402Downloaded   = 13
	stepDone         = 255
	scanTopic        = "wsus"
	checkedList      = "checked"
	dropList         = "patch-tuesday"
	deploymentPrefix = "coll-"
)

// world is the simulated site: catalog, deployments, clients and their truth.
type world struct {
	sc          *Scenario
	simStart    time.Time // the wall-clock instant simulated time 0 stands for (in the past)
	updates     []string  // update ids: the catalog, then the Patch Tuesday drop
	firstSynced []int64   // ms, per update
	drop        int       // index of the first drop update (len(updates) without a drop)
	deps        []*simDeployment
	clients     []*simClient
	seed        maphash.Seed
	index       map[string]int32 // update id → index, built on first use
	// skipDeployments leaves the deployment reports out of check: in a hierarchy a primary's
	// are compared by the hierarchy's own check (hierarchy_check.go).
	skipDeployments bool
}

type simDeployment struct {
	Deployment
	updates []int32 // update indexes
	members []bool  // by client index
	// A phased deployment's (phased.go): each phase's plan as the site reads it, each client's
	// phase (-1: not targeted), and the members of the collections phases claim, by id.
	plans       []pacing.PhasePlan
	phaseOf     []int8
	collections map[string][]bool
}

// phased says whether the deployment is released a phase at a time.
func (sd *simDeployment) phased() bool { return len(sd.Phases) > 0 }

type simClient struct {
	idx      int
	id       string
	enrolAt  time.Duration
	enrolled bool // its first report was acknowledged
	apps     []int32
	st       []uint8 // 500 state per apps entry
	scan     uint8   // latest 501 state (0: none)
	scanErr  int32
	lastOK   int64 // ms of the latest successful scan (0: never)
	nextScan time.Duration
	patchAt  time.Duration // -1: none pending
	deps     []clientDep   // per scenario deployment
	wake     time.Duration
	phase    time.Duration // its report times are phase + k × Behaviour.ReportEvery
	rng      *rand.Rand
}

type clientDep struct {
	step uint8 // next step; stepDone when finished or not targeted
	at   time.Duration
	// A phased deployment's: whether the site has said it is released to the client (it
	// polls until then), when the client's own schedule would have begun it, its deadline
	// (relative to when it learnt of the release), and whether a failed install was retried.
	phase    int8 // its phase (-1: not targeted, or not phased)
	released bool
	firstAt  time.Duration
	deadline time.Duration
	retried  bool
	s300     uint8
	s301     uint8
	e301     int32
	has301   bool
	upd      []int32 // indexes into apps of the deployed updates the client needs
	s402     []uint8
	e402     []int32
}

func newWorld(sc *Scenario, simStart time.Time) *world {
	w := &world{sc: sc, simStart: simStart, seed: maphash.MakeSeed()}
	rng := rand.New(rand.NewPCG(sc.Seed, 1))
	base := simStart.Add(-30 * 24 * time.Hour).UnixMilli()
	for u := range sc.Catalog {
		w.updates = append(w.updates, UpdateID(u))
		w.firstSynced = append(w.firstSynced, base)
	}
	w.drop = len(w.updates)
	if p := sc.PatchTuesday; p != nil {
		at := simStart.Add(p.At.D()).UnixMilli()
		for u := range p.Updates {
			w.updates = append(w.updates, fmt.Sprintf("pt-%05d", u))
			w.firstSynced = append(w.firstSynced, at)
		}
	}
	for _, d := range sc.Deployments {
		sd := &simDeployment{Deployment: d, members: make([]bool, sc.Clients)}
		from := 0
		if d.FromDrop {
			from = w.drop
		}
		for u := range d.Updates {
			sd.updates = append(sd.updates, int32(from+u))
		}
		for c := range sc.Clients {
			sd.members[c] = rng.Float64() < d.Target
		}
		if sd.phased() {
			sd.assignPhases(rng)
		}
		w.deps = append(w.deps, sd)
	}
	// Enrolment times: waves, each spread over the ramp.
	enrol := make([]time.Duration, sc.Clients)
	c := 0
	waves := sc.Waves
	if len(waves) == 0 {
		waves = []Wave{{At: 0, Clients: sc.Clients}}
	}
	for _, wv := range waves {
		for range wv.Clients {
			enrol[c] = wv.At.D()
			if sc.Behaviour.Ramp > 0 {
				enrol[c] += time.Duration(rng.Int64N(int64(sc.Behaviour.Ramp)))
			}
			c++
		}
	}
	for i := range sc.Clients {
		w.clients = append(w.clients, w.newClient(i, enrol[i]))
	}
	return w
}

func (w *world) newClient(i int, enrolAt time.Duration) *simClient {
	sc := w.sc
	rng := rand.New(rand.NewPCG(sc.Seed, uint64(i)+2))
	n := sc.Applicable.Min
	if sc.Applicable.Max > sc.Applicable.Min {
		n += rng.IntN(sc.Applicable.Max - sc.Applicable.Min + 1)
	}
	c := &simClient{idx: i, id: ClientID(i), enrolAt: enrolAt, wake: enrolAt, patchAt: -1, rng: rng,
		deps: make([]clientDep, len(w.deps))}
	// n distinct updates of the catalog, biased to its head (the list and the deployments
	// are there, as the updates that matter are): half from the first 2×List, half uniform.
	seen := map[int32]bool{}
	head := min(sc.Catalog, 2*sc.List+n)
	for len(c.apps) < n {
		var u int32
		if len(c.apps)%2 == 0 {
			u = int32(rng.IntN(head))
		} else {
			u = int32(rng.IntN(sc.Catalog))
		}
		if !seen[u] {
			seen[u] = true
			c.apps = append(c.apps, u)
		}
	}
	slices.Sort(c.apps)
	c.st = make([]uint8, len(c.apps))
	b := sc.Behaviour
	for k := range c.st {
		switch r := rng.Float64(); {
		case r < b.Installed:
			c.st[k] = schema.ComplianceInstalled
		case r < b.Installed+b.Required:
			c.st[k] = schema.ComplianceRequired
		default:
			c.st[k] = schema.ComplianceNotRequired
		}
	}
	if b.ReportEvery > 0 {
		c.phase = time.Duration(rng.Int64N(int64(b.ReportEvery)))
	}
	c.nextScan = -1
	if b.ScanEvery > 0 {
		c.nextScan = enrolAt + b.ScanEvery.D() + time.Duration(rng.Int64N(int64(b.ScanEvery)))
	}
	if p := sc.PatchTuesday; p != nil {
		c.patchAt = p.At.D() + time.Duration(rng.Int64N(int64(p.Spread)+1))
	}
	for d, sd := range w.deps {
		cd := &c.deps[d]
		cd.step, cd.phase = stepDone, -1
		if sd.phased() {
			cd.phase = sd.phaseOf[i]
		}
		if sd.members[i] {
			cd.step = 0
			span := max(sd.Deadline.D()-sd.Start.D(), time.Minute)
			cd.at = sd.Start.D() + time.Duration(rng.Int64N(int64(min(span/4, time.Hour))+1))
			cd.firstAt, cd.deadline = cd.at, sd.Deadline.D()
			if sd.phased() {
				// Until it is released to it, it polls from the start at a moment of its own
				// within the poll interval (clients' policy polls are spread, not in step).
				cd.at = sd.Start.D() + time.Duration(rng.Int64N(int64(sd.Poll)+1))
			}
		}
	}
	return c
}

// ms converts simulated time to a message time (Unix ms).
func (w *world) ms(t time.Duration) int64 { return w.simStart.Add(t).UnixMilli() }

// appIndex returns the position of update u in c.apps, or -1.
func (c *simClient) appIndex(u int32) int {
	k, ok := slices.BinarySearch(c.apps, u)
	if !ok {
		return -1
	}
	return k
}

// nextWake returns when c next reports (-1: never): when it next has something to do, or with
// a reporting interval the first of its report times at or after that.
func (c *simClient) nextWake(every time.Duration) time.Duration {
	next := c.nextEvent()
	if every <= 0 || next < 0 || !c.enrolled {
		return next
	}
	k := (next - c.phase + every - 1) / every
	if next < c.phase {
		k = 0
	}
	return c.phase + k*every
}

// due reports whether c has something to do at or before now (a report gathers them all).
func (c *simClient) due(now time.Duration) bool {
	next := c.nextEvent()
	return next >= 0 && next <= now && c.enrolled
}

// nextEvent returns when c next has something to do (-1: never).
func (c *simClient) nextEvent() time.Duration {
	next := time.Duration(-1)
	take := func(t time.Duration) {
		if t >= 0 && (next < 0 || t < next) {
			next = t
		}
	}
	if !c.enrolled {
		return c.enrolAt
	}
	take(c.nextScan)
	take(c.patchAt)
	for i := range c.deps {
		if c.deps[i].step != stepDone {
			take(c.deps[i].at)
		}
	}
	return next
}

// maxActsPerReport bounds the events one batched report gathers (a deployment walks a step an
// act): far more than fall due between two report times.
const maxActsPerReport = 64

// report returns what c reports at simulated time now: what it does then (act) and, with a
// reporting interval (Behaviour.ReportEvery), everything else that fell due since its last
// report time, in one report.
func (w *world) report(c *simClient, now time.Duration) (msgs []schema.StateMessage, full bool) {
	msgs, full = w.act(c, now)
	if w.sc.Behaviour.ReportEvery <= 0 || full {
		return msgs, full
	}
	for i := 0; i < maxActsPerReport && c.due(now); i++ {
		more, _ := w.act(c, now)
		msgs = append(msgs, more...)
	}
	return msgs, false
}

// act returns the report c sends at simulated time now (full for its first), and applies it
// to c's truth; nil when c has nothing to say (offline, or nothing due).
func (w *world) act(c *simClient, now time.Duration) (msgs []schema.StateMessage, full bool) {
	t := w.ms(now)
	m500 := func(k int) schema.StateMessage {
		return schema.StateMessage{Time: t, TopicType: schema.TopicUpdateCompliance, TopicID: w.updates[c.apps[k]], State: int32(c.st[k])}
	}
	scan := func() schema.StateMessage {
		if c.rng.Float64() < w.sc.Behaviour.ScanFailure {
			c.scan, c.scanErr = 5, scanErrors[c.rng.IntN(len(scanErrors))]
		} else {
			c.scan, c.scanErr, c.lastOK = schema.ScanCompleted, 0, t
		}
		return schema.StateMessage{Time: t, TopicType: schema.TopicScan, TopicID: scanTopic, State: int32(c.scan), Error: c.scanErr}
	}
	if !c.enrolled {
		for k := range c.apps {
			msgs = append(msgs, m500(k))
		}
		msgs = append(msgs, schema.StateMessage{Time: t, TopicType: schema.TopicScan, TopicID: scanTopic, State: schema.ScanCompleted})
		c.scan, c.lastOK = schema.ScanCompleted, t
		c.enrolled = true // the harness stops at the first report the site does not acknowledge
		return msgs, true
	}
	b := w.sc.Behaviour
	if c.nextScan >= 0 && now >= c.nextScan {
		c.nextScan += b.ScanEvery.D()
		if c.rng.Float64() < b.Offline {
			// Offline: everything due waits until it is back.
			back := now + b.OfflineFor.D()
			c.nextScan = max(c.nextScan, back)
			if c.patchAt >= 0 {
				c.patchAt = max(c.patchAt, back)
			}
			for i := range c.deps {
				if c.deps[i].step != stepDone {
					c.deps[i].at = max(c.deps[i].at, back)
				}
			}
			return nil, false
		}
		changes := int(b.Change*float64(len(c.apps)) + c.rng.Float64())
		for range changes {
			k := c.rng.IntN(len(c.apps))
			c.st[k] = uint8(1 + (int(c.st[k])+c.rng.IntN(2))%3) // another of 1..3
			msgs = append(msgs, m500(k))
		}
		msgs = append(msgs, scan())
	}
	if c.patchAt >= 0 && now >= c.patchAt {
		c.patchAt = -1
		for u := w.drop; u < len(w.updates); u++ {
			if c.rng.Float64() < 0.6 {
				c.apps = append(c.apps, int32(u))
				s := uint8(schema.ComplianceRequired)
				if c.rng.Float64() < 0.1 {
					s = schema.ComplianceNotRequired
				}
				c.st = append(c.st, s)
				msgs = append(msgs, m500(len(c.apps)-1))
			}
		}
		msgs = append(msgs, scan())
	}
	polled := false
	for d, sd := range w.deps {
		cd := &c.deps[d]
		if cd.step == stepDone || now < cd.at {
			continue
		}
		if sd.phased() && !cd.released {
			// Not released to it yet: it asks again (a scan report; the answer says what is
			// released, phasedRun.acked notes it) and waits a poll.
			if !polled && !slices.ContainsFunc(msgs, func(m schema.StateMessage) bool { return m.TopicType == schema.TopicScan }) {
				msgs = append(msgs, scan())
			}
			polled = true
			cd.at = now + sd.Poll.D()
			continue
		}
		msgs = w.step(c, sd, cd, now, t, msgs)
	}
	return msgs, false
}

// step walks one deployment one step: evaluation and download, maintenance window, install,
// outcome (failure with an HRESULT, pending restart, or installed), restart.
func (w *world) step(c *simClient, sd *simDeployment, cd *clientDep, now time.Duration, t int64, msgs []schema.StateMessage) []schema.StateMessage {
	id := sd.ID
	m := func(tt schema.TopicType, topic string, state int32, err int32) {
		msgs = append(msgs, schema.StateMessage{Time: t, TopicType: tt, TopicID: topic, State: state, Error: err})
	}
	set301 := func(s uint8, err int32) {
		cd.s301, cd.e301, cd.has301 = s, err, true
		m(schema.TopicDeploymentEnforcement, id, int32(s), err)
	}
	all402 := func(s uint8) {
		for j := range cd.upd {
			cd.s402[j], cd.e402[j] = s, 0
			m(schema.TopicUpdateEnforcement, w.updates[c.apps[cd.upd[j]]], int32(s), 0)
		}
	}
	installed := func() {
		for j, k := range cd.upd {
			if cd.s402[j] != s402Failed {
				c.st[k] = schema.ComplianceInstalled
				msgs = append(msgs, schema.StateMessage{Time: t, TopicType: schema.TopicUpdateCompliance, TopicID: w.updates[c.apps[k]], State: schema.ComplianceInstalled})
			}
		}
	}
	minutes := func(lo, hi int) time.Duration { return time.Duration(lo+c.rng.IntN(hi-lo+1)) * time.Minute }
	switch cd.step {
	case 0: // evaluation; download what is required
		m(schema.TopicDeploymentEvaluation, id, 2, 0)
		cd.upd = cd.upd[:0]
		for _, u := range sd.updates {
			if k := c.appIndex(u); k >= 0 && c.st[k] == schema.ComplianceRequired {
				cd.upd = append(cd.upd, int32(k))
			}
		}
		if len(cd.upd) == 0 {
			cd.s300 = 1
			m(schema.TopicDeploymentCompliance, id, 1, 0)
			cd.step = stepDone
			return msgs
		}
		cd.s402, cd.e402 = make([]uint8, len(cd.upd)), make([]int32, len(cd.upd))
		cd.s300 = 2
		m(schema.TopicDeploymentCompliance, id, 2, 0)
		set301(s301Downloading, 0)
		all402(s402Downloading)
		cd.step, cd.at = 1, now+minutes(5, 30)
	case 1: // downloaded; wait for the deadline (mandatory) or the user (optional), or a window
		set301(s301Downloaded, 0)
		all402(s402Downloaded)
		install := cd.deadline + minutes(0, 30)
		if sd.Optional {
			install = now + time.Duration(c.rng.Int64N(int64(max(cd.deadline-now, time.Minute))))
		}
		cd.step, cd.at = 2, max(install, now+time.Minute)
		if c.rng.Float64() < sd.Window {
			cd.step = 10
			cd.at = now + minutes(1, 10)
		}
	case 10: // waiting for a maintenance window
		set301(s301Window, 0)
		all402(s402Window)
		cd.step, cd.at = 2, max(cd.deadline, now)+minutes(30, 240)
	case 2: // installing (on a retry, the updates that failed)
		set301(s301Installing, 0)
		if cd.retried {
			for j := range cd.upd {
				if cd.s402[j] == s402Failed {
					cd.s402[j], cd.e402[j] = s402Installing, 0
					m(schema.TopicUpdateEnforcement, w.updates[c.apps[cd.upd[j]]], s402Installing, 0)
				}
			}
		} else {
			all402(s402Installing)
		}
		cd.step, cd.at = 3, now+minutes(5, 45)
	case 3: // outcome
		if fail, retry := sd.failure(cd); c.rng.Float64() < fail {
			j := c.rng.IntN(len(cd.upd))
			code := installErrors[c.rng.IntN(len(installErrors))]
			for i := range cd.upd {
				if i == j {
					cd.s402[i], cd.e402[i] = s402Failed, code
					m(schema.TopicUpdateEnforcement, w.updates[c.apps[cd.upd[i]]], s402Failed, code)
				} else {
					cd.s402[i], cd.e402[i] = s402Installed, 0
					m(schema.TopicUpdateEnforcement, w.updates[c.apps[cd.upd[i]]], s402Installed, 0)
				}
			}
			set301(s301Failed, code)
			installed()
			cd.step = stepDone
			if retry > 0 {
				// It stays failed until the retry, which succeeds (an administrator's fix).
				cd.retried, cd.step, cd.at = true, 2, now+retry
			}
			return msgs
		}
		if c.rng.Float64() < sd.Restart {
			set301(s301Restart, 0)
			all402(s402Restart)
			cd.step, cd.at = 4, now+minutes(30, 240)
			return msgs
		}
		fallthrough
	case 4: // restarted: installed and compliant
		set301(s301Success, 0)
		all402(s402Installed)
		installed()
		cd.s300 = 1
		m(schema.TopicDeploymentCompliance, id, 1, 0)
		cd.step = stepDone
	}
	return msgs
}

// resyncState is the client's whole update-compliance state: its answer to a resync request.
func (w *world) resyncState(c *simClient) []schema.StateMessage {
	t := w.ms(c.wake)
	out := make([]schema.StateMessage, len(c.apps))
	for k := range c.apps {
		out[k] = schema.StateMessage{Time: t, TopicType: schema.TopicUpdateCompliance, TopicID: w.updates[c.apps[k]], State: int32(c.st[k])}
	}
	return out
}

// refLines returns the reference data the scenario imports before the run (catalog, lists,
// collections, deployments) as JSON lines by kind, and the drop's catalog lines for later.
func (w *world) refLines() (before map[schema.RefKind][]string, drop []string) {
	before = map[schema.RefKind][]string{}
	line := func(v any) string { b, _ := json.Marshal(v); return string(b) }
	for u, id := range w.updates {
		l := line(map[string]any{"id": id, "title": "Update " + id, "classification": "Security Updates",
			"first_synced": time.UnixMilli(w.firstSynced[u]).UTC().Format(time.RFC3339Nano)})
		if u >= w.drop {
			drop = append(drop, l)
		} else {
			before[schema.RefCatalog] = append(before[schema.RefCatalog], l)
		}
	}
	before[schema.RefUpdateLists] = append(before[schema.RefUpdateLists], line(map[string]any{"id": checkedList, "name": "checked list", "updates": w.updates[:w.sc.List]}))
	if w.drop < len(w.updates) {
		drop = append(drop, line(map[string]any{"id": dropList, "name": "Patch Tuesday", "updates": w.updates[w.drop:]}))
	}
	for _, sd := range w.deps {
		var members []string
		for c, in := range sd.members {
			if in {
				members = append(members, ClientID(c))
			}
		}
		before[schema.RefCollections] = append(before[schema.RefCollections], line(map[string]any{"id": deploymentPrefix + sd.ID, "name": "targets of " + sd.ID, "members": members}))
		for _, id := range slices.Sorted(maps.Keys(sd.collections)) {
			var in []string
			for c, m := range sd.collections[id] {
				if m {
					in = append(in, ClientID(c))
				}
			}
			before[schema.RefCollections] = append(before[schema.RefCollections], line(map[string]any{"id": id, "name": "phase collection " + id, "members": in}))
		}
		var ids []string
		for _, u := range sd.updates {
			ids = append(ids, w.updates[u])
		}
		dep := map[string]any{"id": sd.ID, "name": "deployment " + sd.ID,
			"updates": ids, "collection": deploymentPrefix + sd.ID, "start": w.simStart.Add(sd.Start.D()).UTC().Format(time.RFC3339),
			"deadline": w.simStart.Add(sd.Deadline.D()).UTC().Format(time.RFC3339), "mandatory": !sd.Optional}
		if sd.phased() {
			dep["phases"] = sd.phaseRecords(w.sc.TimeScale)
		}
		before[schema.RefDeployments] = append(before[schema.RefDeployments], line(dep))
	}
	return before, drop
}

// describe summarises the world for the report.
func (w *world) describe() string {
	var apps int
	for _, c := range w.clients {
		apps += len(c.apps)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d clients, %d catalog updates, %.0f applicable per client on average, %d deployments",
		len(w.clients), w.sc.Catalog, float64(apps)/float64(max(len(w.clients), 1)), len(w.deps))
	if w.drop < len(w.updates) {
		fmt.Fprintf(&b, ", a Patch Tuesday drop of %d updates", len(w.updates)-w.drop)
	}
	return b.String()
}
