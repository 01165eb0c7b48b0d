package pacing

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// Phased deployments: which phase each client of a deployment's collection is in
// (AssignPhases), and when each phase is released (DecidePhases). Both are pure: the site's
// wiring reads the deployments, the collections, the compliance cells and the watermarks from
// its store, and writes the releases and the generated collections.

// PhasePlan is one phase of a deployment as imported (schema.Phase, defaults filled in).
type PhasePlan struct {
	Name string
	// Share > 0 claims that share of the target collection (by a stable hash of the client);
	// Collection != "" claims that collection's members; neither: the phase claims no one
	// itself (only the last phase, which takes every member no phase claimed before).
	Share      float64
	Collection string
	SuccessPct float64       // the criterion: % of the phase's members compliant
	Soak       time.Duration // the least time the phase runs before the next is released
}

// ShareHash maps (deployment, client) to [0, 1), stably: the first 8 bytes of
// SHA-256(deployment NUL client), as a fraction of 2^64 (53 bits of it). A client's place
// never depends on the other members, so adding members moves no one between share phases.
func ShareHash(deployment, client string) float64 {
	h := sha256.New()
	h.Write([]byte(deployment))
	h.Write([]byte{0})
	h.Write([]byte(client))
	var sum [sha256.Size]byte
	x := binary.BigEndian.Uint64(h.Sum(sum[:0])[:8])
	return float64(x>>11) / (1 << 53)
}

// PhaseOf returns the phase (0-based) of a client of deployment's target collection: the
// first phase that claims it — a collection phase when inCollection(collection) says the
// client is a member, share phase j when ShareHash falls in [c_{j-1}, c_j), c being the
// cumulative shares of the share phases in order — and the last phase when none does.
func PhaseOf(deployment, client string, phases []PhasePlan, inCollection func(collection string) bool) int {
	if len(phases) == 0 {
		return -1
	}
	h := -1.0 // computed once, when a share phase asks
	cum := 0.0
	for i, p := range phases {
		switch {
		case p.Collection != "":
			if inCollection != nil && inCollection(p.Collection) {
				return i
			}
		case p.Share > 0:
			lo := cum
			cum += p.Share
			if h < 0 {
				h = ShareHash(deployment, client)
			}
			if h >= lo && h < cum {
				return i
			}
		}
	}
	return len(phases) - 1
}

// AssignPhases returns, per phase, its members among members (the target collection's; each
// once, sorted): the rule of PhaseOf. collections holds the members of the collections the
// phases name (a collection missing claims no one).
func AssignPhases(deployment string, members []string, phases []PhasePlan, collections map[string][]string) [][]string {
	out := make([][]string, len(phases))
	if len(phases) == 0 {
		return out
	}
	sets := map[string]map[string]bool{}
	for _, p := range phases {
		if p.Collection == "" || sets[p.Collection] != nil {
			continue
		}
		set := make(map[string]bool, len(collections[p.Collection]))
		for _, m := range collections[p.Collection] {
			set[m] = true
		}
		sets[p.Collection] = set
	}
	sorted := slices.Clone(members)
	slices.Sort(sorted)
	sorted = slices.Compact(sorted)
	for _, c := range sorted {
		i := PhaseOf(deployment, c, phases, func(coll string) bool { return sets[coll][c] })
		out[i] = append(out[i], c)
	}
	for i := range out {
		if out[i] == nil {
			out[i] = []string{}
		}
	}
	return out
}

// Phase states (PhaseStatus.State, and the state label of statepipe_pacing_phase_state).
const (
	PhaseWaiting  = "waiting"
	PhaseReleased = "released"
)

// PhaseObservation is what the site knows of one phase when it decides.
type PhaseObservation struct {
	Plan PhasePlan
	// Members is the number of clients in the phase's generated collection; Compliant those
	// of them compliant with the deployment's updates (every update Installed or Not
	// required), summed over the site and every site below it.
	Members   int64
	Compliant int64
	// ReleasedAt is when the phase was released (zero: not yet), Reason why.
	ReleasedAt time.Time
	Reason     string
}

// SiteWatermark is one contributing site's watermark: every report it accepted before it is
// counted (zero: it has not said yet).
type SiteWatermark struct {
	Site      string    `json:"site"`
	Watermark time.Time `json:"watermark"`
}

// PhaseInputs are what a release decision reads.
type PhaseInputs struct {
	Now        time.Time
	Start      time.Time // the deployment's start
	Phases     []PhaseObservation
	Watermarks []SiteWatermark // the site's own first, then each site below it
	// BacklogOK says the site's backlog (and the chain above it) is under target
	// (Status.BacklogOK).
	BacklogOK bool
}

// PhaseStatus is one phase's state after a decision: what the status endpoint and the CLI
// show.
type PhaseStatus struct {
	Phase      int      `json:"phase"` // from 1
	Name       string   `json:"name"`
	Share      *float64 `json:"share,omitempty"`
	Collection string   `json:"collection,omitempty"`
	// PhaseCollection is the generated collection holding the phase's members.
	PhaseCollection string  `json:"phase_collection"`
	Members         int64   `json:"members"`
	Compliant       int64   `json:"compliant"`
	SuccessPct      float64 `json:"success_pct"` // compliant / members × 100 (0 without members)
	Criterion       float64 `json:"criterion_pct"`
	Soak            string  `json:"soak"`
	State           string  `json:"state"` // waiting or released
	// ReleasedAt is when it was released; Release says it is released by this decision
	// (to be written).
	ReleasedAt *time.Time `json:"released_at,omitempty"`
	Release    bool       `json:"-"`
	// Reason says why it was released, or why it still waits.
	Reason string `json:"reason"`
}

// DecidePhases decides which phases are released at in.Now. A phase already released stays
// released. Phase 1 is released at the deployment's start (or now, when first seen after it).
// Phase k+1 is released once phase k is released and
//
//  1. it has soaked: now ≥ released_at(k) + soak(k);
//  2. the data is fresh: every contributing site's watermark is after released_at(k), so
//     every report its clients sent before the phase began is counted;
//  3. the criterion holds on that data: compliant(k) / members(k) × 100 ≥ success_pct(k)
//     (a phase without members holds it: there is nothing to wait for);
//  4. the site's backlog is under target.
//
// The reason of a waiting phase is the first of these that fails. Since a release needs every
// watermark after the phase before it began, at most one phase is released per decision.
func DecidePhases(in PhaseInputs) []PhaseStatus {
	out := make([]PhaseStatus, len(in.Phases))
	for i, ob := range in.Phases {
		p := ob.Plan
		st := PhaseStatus{Phase: i + 1, Name: p.Name, Collection: p.Collection, Members: ob.Members, Compliant: ob.Compliant,
			Criterion: p.SuccessPct, Soak: p.Soak.String(), State: PhaseWaiting}
		if p.Share > 0 {
			s := p.Share
			st.Share = &s
		}
		if ob.Members > 0 {
			st.SuccessPct = SharePct(ob.Compliant, ob.Members)
		}
		if !ob.ReleasedAt.IsZero() {
			at := ob.ReleasedAt.UTC()
			st.State, st.ReleasedAt, st.Reason = PhaseReleased, &at, ob.Reason
			out[i] = st
			continue
		}
		if i == 0 {
			if in.Now.Before(in.Start) {
				st.Reason = "waiting for the deployment's start at " + stamp(in.Start)
			} else {
				st.Reason = "the deployment's start (" + stamp(in.Start) + ")"
				if in.Now.Sub(in.Start) > time.Minute {
					st.Reason = "first seen after the deployment's start (" + stamp(in.Start) + ")"
				}
				release(&st, in.Now)
			}
			out[i] = st
			continue
		}
		prev := out[i-1]
		if prev.State != PhaseReleased || prev.Release {
			st.Reason = fmt.Sprintf("phase %d (%s) is not released yet", i, prev.Name)
			if prev.Release {
				st.Reason = fmt.Sprintf("phase %d (%s) is released only now", i, prev.Name)
			}
			out[i] = st
			continue
		}
		began := *prev.ReleasedAt
		pp := in.Phases[i-1]
		crit := fmt.Sprintf("phase %d (%s): %s", i, prev.Name, criterion(prev))
		switch until := began.Add(pp.Plan.Soak); {
		case in.Now.Before(until):
			st.Reason = fmt.Sprintf("soak of phase %d (%s) until %s (%s)", i, prev.Name, stamp(until), pp.Plan.Soak)
		case stale(in.Watermarks, began) != "":
			st.Reason = "data not fresh: " + stale(in.Watermarks, began)
		case prev.Members == 0:
			// A phase nobody is in proves nothing: a misspelt collection must not release
			// everyone after it.
			st.Reason = fmt.Sprintf("phase %d (%s) has no members: nothing proves the deployment yet (is its collection right?)", i, prev.Name)
		case !meets(prev.Compliant, prev.Members, pp.Plan.SuccessPct):
			st.Reason = fmt.Sprintf("criterion of phase %d (%s) %s %% < %s %% on fresh data (%d of %d members compliant)",
				i, prev.Name, short(prev.Compliant, prev.Members), pct(pp.Plan.SuccessPct), prev.Compliant, prev.Members)
		case !in.BacklogOK:
			st.Reason = "backlog over target (" + crit + " holds on fresh data)"
		default:
			st.Reason = crit + " held on fresh data, after a soak of " + pp.Plan.Soak.String()
			release(&st, in.Now)
		}
		out[i] = st
	}
	return out
}

// meets says whether compliant of members is at least want percent, compared exactly (not on
// the rounded SuccessPct shown: 18,999 of 20,000 is 94.995 %, shown as 95, and does not meet
// 95 %). compliant × 100 is an integer; want × members is one rounded product, so a tolerance
// of a millionth of a member absorbs the binary representation of a decimal criterion
// (99.9 % of 1,000 is 999) without admitting a member short.
func meets(compliant, members int64, want float64) bool {
	return float64(compliant)*100 >= want*float64(members)-1e-6
}

// SharePct is compliant / members × 100 truncated to two decimals, so a phase is never shown
// meeting a criterion it does not meet (18,999 of 20,000 is 94.99, not 95); 0 without members.
func SharePct(compliant, members int64) float64 {
	if members <= 0 {
		return 0
	}
	return math.Floor(float64(compliant)*1e4/float64(members)+1e-6) / 100
}

// short writes a share that falls short of the criterion, truncated (never rounded up to the
// criterion) to at most four decimals: 94.995, 33.3333, 80.
func short(compliant, members int64) string {
	v := math.Floor(float64(compliant)*1e6/float64(members)+1e-6) / 1e4
	s := fmt.Sprintf("%.4f", v)
	return strings.TrimSuffix(strings.TrimRight(s, "0"), ".")
}

func release(st *PhaseStatus, now time.Time) {
	at := now.UTC()
	st.State, st.ReleasedAt, st.Release = PhaseReleased, &at, true
}

// criterion says how a phase stands against its criterion.
func criterion(p PhaseStatus) string {
	return fmt.Sprintf("%s %% ≥ %s %% compliant (%d of %d)", pct(p.SuccessPct), pct(p.Criterion), p.Compliant, p.Members)
}

// stale names the first site whose watermark is not after since, "" when every one is.
func stale(wms []SiteWatermark, since time.Time) string {
	if len(wms) == 0 {
		return "no site's watermark is known"
	}
	for _, w := range wms {
		switch {
		case w.Watermark.IsZero():
			return fmt.Sprintf("%s has no watermark yet (the phase began %s)", w.Site, stamp(since))
		case !w.Watermark.After(since):
			return fmt.Sprintf("%s's watermark %s is before the phase's start %s", w.Site, stamp(w.Watermark), stamp(since))
		}
	}
	return ""
}

func stamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// pct writes a percentage with at most two decimals: 91.2, 95, 33.33.
func pct(v float64) string {
	s := fmt.Sprintf("%.2f", v)
	return strings.TrimSuffix(strings.TrimRight(s, "0"), ".")
}
