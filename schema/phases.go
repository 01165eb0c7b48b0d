package schema

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Phased deployments. A deployment may list phases: it is then released to its target
// collection a phase at a time, each phase once the one before it met its success criterion
// on fresh data (pacing.DecidePhases). A client of the collection belongs to the first phase
// that claims it (pacing.AssignPhases): a collection phase claims its collection's members, a
// share phase a stable share of the collection by a hash of (deployment, client), and the last
// phase every member no phase claimed.
//
// The site that decides a deployment (where it was imported) materialises it as ordinary
// reference data, so that every aggregate and the hierarchy count the phases: a collection per
// phase, PhaseCollectionID (its members), and an update list, PhaseListID (the deployment's
// updates); list compliance per scope (agg_lists) is then the phase's success. It writes each
// release as a record of kind RefPhases. Ids holding ReservedIDSep are reserved for these:
// imports of lists and collections refuse them.

// Phase is one phase of a deployment.
type Phase struct {
	Name string `json:"name"`
	// Share, when set, claims that share (0 < share <= 1) of the target collection.
	Share *float64 `json:"share,omitempty"`
	// Collection, when set, claims the members of that collection (that are in the target).
	Collection string `json:"collection,omitempty"`
	// SuccessPct is the share of the phase's members, in percent, that must be compliant with
	// the deployment's updates before the next phase is released (default 95).
	SuccessPct *float64 `json:"success_pct,omitempty"`
	// Soak is the least time the phase runs before the next may be released: a Go duration
	// ("24h", default "0s").
	Soak string `json:"soak,omitempty"`
}

// SoakDuration returns the phase's soak (0 when unset or unreadable: validated phases always
// read).
func (p Phase) SoakDuration() time.Duration {
	d, err := time.ParseDuration(p.Soak)
	if err != nil || d < 0 {
		return 0
	}
	return d
}

// Success returns the phase's success criterion in percent (DefaultSuccessPct when unset).
func (p Phase) Success() float64 {
	if p.SuccessPct == nil {
		return DefaultSuccessPct
	}
	return *p.SuccessPct
}

// ShareOf returns the phase's share (0: not a share phase).
func (p Phase) ShareOf() float64 {
	if p.Share == nil {
		return 0
	}
	return *p.Share
}

// PhaseRelease is a record of kind RefPhases: phase Phase (from 1) of a deployment released.
// Its id is PhaseReleaseID(Deployment, Phase).
type PhaseRelease struct {
	Deployment string    `json:"deployment"`
	Phase      int       `json:"phase"`
	Name       string    `json:"name"`
	ReleasedAt time.Time `json:"released_at"`
	Reason     string    `json:"reason"`
}

// Phase defaults and bounds.
const (
	DefaultSuccessPct = 95
	MaxPhases         = 64
	// ReservedIDSep marks the ids generated for phased deployments; imported lists and
	// collections may not hold it.
	ReservedIDSep = "~"
)

// PhaseCollectionID is the id of the collection generated for phase n (from 1) of deployment d:
// "d~phase-n".
func PhaseCollectionID(d string, n int) string { return d + "~phase-" + strconv.Itoa(n) }

// PhaseListID is the id of the update list generated for deployment d: "d~updates".
func PhaseListID(d string) string { return d + "~updates" }

// PhaseReleaseID is the id of the release of phase n of deployment d: "d~n" (key "phases/d~n").
func PhaseReleaseID(d string, n int) string { return d + "~" + strconv.Itoa(n) }

// ParsePhaseCollectionID returns the deployment and phase of a generated phase collection id,
// ok false for any other id.
func ParsePhaseCollectionID(id string) (deployment string, n int, ok bool) {
	i := strings.LastIndex(id, "~phase-")
	if i <= 0 {
		return "", 0, false
	}
	n, err := strconv.Atoi(id[i+len("~phase-"):])
	if err != nil || n < 1 || strconv.Itoa(n) != id[i+len("~phase-"):] {
		return "", 0, false
	}
	return id[:i], n, true
}

// notReserved refuses an imported list or collection id holding ReservedIDSep.
func notReserved(id string) *LineError {
	if strings.Contains(id, ReservedIDSep) {
		return &LineError{Field: "id", Reason: fmt.Sprintf("%q holds %q, which is reserved for the collections and lists generated for phased deployments (D~phase-N, D~updates)", id, ReservedIDSep)}
	}
	return nil
}

// checkPhases validates a deployment's phases and fills in their defaults (success_pct 95, soak
// "0s", written as Go prints durations), so that the stored record says every value.
func checkPhases(d *Deployment) *LineError {
	ps := d.Phases
	if len(ps) == 0 {
		d.Phases = nil
		return nil
	}
	switch {
	case len(ps) == 1:
		return &LineError{Field: "phases", Reason: "a phased deployment has at least 2 phases (leave phases out to release it to the whole collection at once)"}
	case len(ps) > MaxPhases:
		return &LineError{Field: "phases", Reason: fmt.Sprintf("at most %d phases", MaxPhases)}
	}
	names := map[string]int{}
	sum := 0.0
	for i := range ps {
		p := &ps[i]
		f := func(name string) string { return fmt.Sprintf("phases[%d].%s", i, name) }
		switch {
		case strings.TrimSpace(p.Name) == "":
			return &LineError{Field: f("name"), Reason: "required"}
		case len(p.Name) > DefaultLimits.MaxIDBytes:
			return &LineError{Field: f("name"), Reason: fmt.Sprintf("longer than %d bytes", DefaultLimits.MaxIDBytes)}
		}
		if fe := checkText(f("name"), p.Name, 0); fe != nil {
			return &LineError{Field: fe.Field, Reason: fe.Reason}
		}
		if j, dup := names[p.Name]; dup {
			return &LineError{Field: f("name"), Reason: fmt.Sprintf("%q is also the name of phases[%d]: names are unique", p.Name, j)}
		}
		names[p.Name] = i
		if p.Share != nil && p.Collection != "" {
			return &LineError{Field: f("collection"), Reason: "a phase claims clients by share or by collection, not both"}
		}
		if p.Share != nil {
			s := *p.Share
			if !(s > 0 && s <= 1) {
				return &LineError{Field: f("share"), Reason: fmt.Sprintf("%g is not a share: want 0 < share <= 1 (of the target collection)", s)}
			}
			sum += s
			if sum > 1+1e-9 {
				return &LineError{Field: f("share"), Reason: fmt.Sprintf("the shares of phases[0..%d] add up to %g, more than 1", i, math.Round(sum*1e6)/1e6)}
			}
		}
		if p.Collection != "" && (len(p.Collection) > DefaultLimits.MaxIDBytes || !PrintableID(p.Collection)) {
			return &LineError{Field: f("collection"), Reason: "must be a collection id of at most 128 bytes, without control characters"}
		}
		if strings.Contains(p.Collection, "~") {
			return &LineError{Field: f("collection"), Reason: "a generated collection (an id with ~) cannot be a phase's: its members are themselves a phase's"}
		}
		if p.Share == nil && p.Collection == "" && i != len(ps)-1 {
			return &LineError{Field: f("share"), Reason: "the phase claims no client: give share or collection (only the last phase may have neither: it takes every member no phase before claimed)"}
		}
		pct := float64(DefaultSuccessPct)
		if p.SuccessPct != nil {
			pct = *p.SuccessPct
		}
		if !(pct >= 0 && pct <= 100) {
			return &LineError{Field: f("success_pct"), Reason: fmt.Sprintf("%g is not a percentage: want 0 to 100", pct)}
		}
		p.SuccessPct = &pct
		soak := time.Duration(0)
		if p.Soak != "" {
			var err error
			if soak, err = time.ParseDuration(p.Soak); err != nil || soak < 0 {
				return &LineError{Field: f("soak"), Reason: fmt.Sprintf("%q is not a duration of at least 0 (Go syntax: 30m, 24h, 1h30m)", p.Soak)}
			}
		}
		p.Soak = soak.String()
	}
	return nil
}
