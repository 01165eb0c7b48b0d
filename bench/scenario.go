package bench

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// Scenario is a capacity-planning scenario (bench/scenarios/*.yaml): an enterprise's clients,
// catalog and deployments, how the clients behave, and how fast simulated time runs. Every
// duration is simulated time, written as Go durations ("90s", "36h"); the run lasts Duration
// of simulated time, TimeScale times faster on the wall clock.
type Scenario struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	Seed        uint64 `json:"seed,omitempty"`
	// Clients per site (the harness drives one site, or with Primaries each primary).
	Clients int `json:"clients"`
	// Primaries, when set, runs a site hierarchy (hierarchy.go): a central site CEN with this
	// many primaries below it (P01, P02, …) in one site process, Clients at each primary. The
	// reference data is imported at CEN and flows down; every checkpoint compares each
	// primary's reports with its clients' oracle and CEN's compliance with the sum of theirs.
	Primaries int `json:"primaries,omitempty"`
	// Catalog is the number of updates synchronised before the run (default 30,000).
	Catalog int `json:"catalog,omitempty"`
	// Applicable is how many catalog updates apply to each client (uniform in [min, max]);
	// a client reports a 500 state for each, and the site infers Not required for the rest.
	Applicable Range `json:"applicable"`
	// List is the size of the update list the compliance report is checked and plotted for
	// (the first List catalog updates, default 100).
	List int `json:"list,omitempty"`
	// TimeScale is simulated seconds per wall-clock second (default 1).
	TimeScale float64 `json:"time_scale,omitempty"`
	// Duration is the simulated length of the run (0: until the initial scans are visible).
	Duration Duration `json:"duration,omitempty"`
	// Concurrency is the number of reports in flight at once (default 64).
	Concurrency int `json:"concurrency,omitempty"`
	// Unsigned sends reports without credentials (the site then runs with auth optional).
	Unsigned bool `json:"unsigned,omitempty"`
	// Checkpoints is how often (simulated) the run pauses, lets the site catch up and compares
	// every report with the oracle (0: only at the end).
	Checkpoints Duration `json:"checkpoints,omitempty"`

	Behaviour    Behaviour    `json:"behaviour"`
	Deployments  []Deployment `json:"deployments,omitempty"`
	PatchTuesday *PatchDrop   `json:"patch_tuesday,omitempty"`
	// Waves enrol clients over time: each wave's clients enrol and send their first scan at
	// its time. Empty: all clients at the start.
	Waves []Wave `json:"waves,omitempty"`
	// Rate, when set, paces the periodic reports to this many reports per wall-clock second
	// across the site (the steady and soak scenarios); Rates sweeps several in turn.
	Rate  float64   `json:"rate,omitempty"`
	Rates []float64 `json:"rates,omitempty"`
	// Step is how long (wall clock) each rate of a sweep is held (default 60s).
	Step Duration `json:"step,omitempty"`
	// EnrolWave, when set, enrols the clients during the run instead of before it: the
	// rollout wave (rollout.go), `enrol_wave: {over: 1m}` — each client first tries to enrol
	// at a random moment within that wall-clock span (not simulated time). Without it every
	// client is enrolled before the run starts.
	EnrolWave *EnrolWave `json:"enrol_wave,omitempty"`
	// Pacing runs the site with --pacing.mode on or off (empty: the site's default);
	// `statepipe bench run --pacing` overrides it, so one scenario runs both ways.
	Pacing PacingMode `json:"pacing,omitempty"`
}

// Behaviour is how simulated clients act.
type Behaviour struct {
	// Ramp spreads the first scans of a wave over this simulated span (0: all at once, the
	// storm of a client rollout or a site restore).
	Ramp Duration `json:"ramp,omitempty"`
	// ScanEvery is the period of a client's rescans (0: none): each sends a delta with the
	// 500 states that changed and a 501 scan result.
	ScanEvery Duration `json:"scan_every,omitempty"`
	// Change is the fraction of a client's applicable updates whose state changes at a rescan.
	Change float64 `json:"change,omitempty"`
	// Installed and Required are the fractions of applicable updates first reported
	// Installed and Required (the rest Not required).
	Installed float64 `json:"installed,omitempty"`
	Required  float64 `json:"required,omitempty"`
	// ScanFailure is the fraction of scans that fail (501 state 5 with an HRESULT).
	ScanFailure float64 `json:"scan_failure,omitempty"`
	// Offline is the fraction of clients that, at a rescan, go offline for OfflineFor instead
	// (their events wait; they come back with a rescan).
	Offline    float64  `json:"offline,omitempty"`
	OfflineFor Duration `json:"offline_for,omitempty"`
	// ReportEvery batches a client's state messages as ConfigMgr's client does (its default:
	// every 15 minutes): what happens between two of its report times goes in one report at
	// the next, each client on a phase of its own (0: a report per event, as soon as it
	// happens). A first scan is sent at once.
	ReportEvery Duration `json:"report_every,omitempty"`
}

// Deployment is a software-update deployment the scenario creates.
type Deployment struct {
	ID string `json:"id"`
	// Updates is how many updates it deploys: the first of the catalog, or of the Patch
	// Tuesday drop with FromDrop.
	Updates  int  `json:"updates"`
	FromDrop bool `json:"from_drop,omitempty"`
	// Target is the fraction of clients in its collection (default 1).
	Target float64 `json:"target,omitempty"`
	// Start and Deadline are simulated times from the run's start.
	Start    Duration `json:"start"`
	Deadline Duration `json:"deadline"`
	// Optional deployments are not enforced at the deadline (Mandatory by default).
	Optional bool `json:"optional,omitempty"`
	// Window is the fraction of targeted clients that wait for a maintenance window.
	Window float64 `json:"window,omitempty"`
	// Failure is the fraction of installations that fail with a realistic HRESULT.
	Failure float64 `json:"failure,omitempty"`
	// Restart is the fraction of successful installations that wait for a restart.
	Restart float64 `json:"restart,omitempty"`
	// Phases, when set, make it a phased deployment (phased.go): the site releases it to its
	// collection a phase at a time, and a targeted client starts enforcing it only once an
	// answer to its reports lists it as released to it.
	Phases []DeploymentPhase `json:"phases,omitempty"`
	// Poll is how often (simulated) a client of a phased deployment that is not released to
	// it yet asks the site: a scan report, whose answer lists what is released (default 30m).
	Poll Duration `json:"poll,omitempty"`
}

// PatchDrop is a Patch Tuesday: Updates new updates synchronised at At; every client rescans
// within Spread afterwards and reports them (most Required).
type PatchDrop struct {
	At      Duration `json:"at"`
	Updates int      `json:"updates"`
	Spread  Duration `json:"spread,omitempty"`
}

// Wave enrols Clients at At (simulated).
type Wave struct {
	At      Duration `json:"at"`
	Clients int      `json:"clients"`
}

// Range is an inclusive integer range.
type Range struct {
	Min int `json:"min"`
	Max int `json:"max"`
}

// Duration is a time.Duration written as "90s" or "36h" in scenario files.
type Duration time.Duration

// UnmarshalJSON reads a Go duration string (or 0).
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n float64
		if json.Unmarshal(b, &n) == nil && n == 0 {
			*d = 0
			return nil
		}
		return fmt.Errorf("a duration is a string like \"90s\" or \"36h\", not %s", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration (like \"90s\" or \"36h\")", s)
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes the duration as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// LoadScenario reads a scenario file strictly: an unknown field is an error naming it.
func LoadScenario(path string) (*Scenario, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseScenario(b, path)
}

// ParseScenario parses a scenario (YAML or JSON), applies defaults and validates it.
func ParseScenario(b []byte, name string) (*Scenario, error) {
	var s Scenario
	if err := yaml.UnmarshalStrict(b, &s); err != nil {
		return nil, fmt.Errorf("scenario %s: %w", name, err)
	}
	s.defaults()
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("scenario %s: %w", name, err)
	}
	return &s, nil
}

func (s *Scenario) defaults() {
	if s.Catalog == 0 {
		s.Catalog = 30000
	}
	if s.List == 0 {
		s.List = min(100, s.Catalog)
	}
	if s.TimeScale == 0 {
		s.TimeScale = 1
	}
	if s.Concurrency == 0 {
		s.Concurrency = 64
	}
	if s.Seed == 0 {
		s.Seed = 1
	}
	if s.Step == 0 {
		s.Step = Duration(time.Minute)
	}
	for i := range s.Deployments {
		if s.Deployments[i].Target == 0 {
			s.Deployments[i].Target = 1
		}
		if len(s.Deployments[i].Phases) > 0 && s.Deployments[i].Poll == 0 {
			s.Deployments[i].Poll = Duration(defaultPoll)
		}
	}
	if s.PatchTuesday != nil && s.PatchTuesday.Spread == 0 {
		s.PatchTuesday.Spread = Duration(time.Hour)
	}
}

// Validate reports the first field that cannot work, by name.
func (s *Scenario) Validate() error {
	fe := func(field, format string, a ...any) error {
		return fmt.Errorf("field %s: %s", field, fmt.Sprintf(format, a...))
	}
	frac := func(field string, v float64) error {
		if v < 0 || v > 1 {
			return fe(field, "%v is not a fraction between 0 and 1", v)
		}
		return nil
	}
	b := &s.Behaviour
	switch {
	case s.Name == "":
		return fe("name", "required")
	case s.Clients < 1:
		return fe("clients", "must be at least 1, got %d", s.Clients)
	case s.Catalog < 1:
		return fe("catalog", "must be at least 1, got %d", s.Catalog)
	case s.Applicable.Min < 0 || s.Applicable.Max < s.Applicable.Min || s.Applicable.Max > s.Catalog:
		return fe("applicable", "want 0 <= min <= max <= catalog (%d), got %d..%d", s.Catalog, s.Applicable.Min, s.Applicable.Max)
	case s.List > s.Catalog:
		return fe("list", "%d exceeds the catalog (%d)", s.List, s.Catalog)
	case s.TimeScale <= 0:
		return fe("time_scale", "must be positive")
	case s.Concurrency < 1:
		return fe("concurrency", "must be at least 1")
	case b.Installed+b.Required > 1:
		return fe("behaviour.installed", "installed + required must not exceed 1")
	case b.Offline > 0 && b.OfflineFor <= 0:
		return fe("behaviour.offline_for", "required with behaviour.offline")
	case b.ReportEvery < 0:
		return fe("behaviour.report_every", "must not be negative")
	case s.Rate < 0:
		return fe("rate", "must not be negative")
	case s.Primaries < 0 || s.Primaries > 99:
		return fe("primaries", "want 0 (one site) to 99, got %d", s.Primaries)
	}
	for field, v := range map[string]float64{"behaviour.installed": b.Installed, "behaviour.required": b.Required,
		"behaviour.change": b.Change, "behaviour.scan_failure": b.ScanFailure, "behaviour.offline": b.Offline} {
		if err := frac(field, v); err != nil {
			return err
		}
	}
	waveClients := 0
	for i, w := range s.Waves {
		if w.Clients < 1 || w.At < 0 {
			return fe(fmt.Sprintf("waves[%d]", i), "want clients >= 1 and at >= 0")
		}
		waveClients += w.Clients
	}
	if len(s.Waves) > 0 && waveClients != s.Clients {
		return fe("waves", "enrol %d clients in all, but clients is %d", waveClients, s.Clients)
	}
	ids := map[string]bool{}
	pools := map[bool]int{} // catalog or drop → the deployment that takes it
	for i, d := range s.Deployments {
		f := fmt.Sprintf("deployments[%d]", i)
		pool := s.Catalog
		if d.FromDrop {
			if s.PatchTuesday == nil {
				return fe(f+".from_drop", "needs patch_tuesday")
			}
			pool = s.PatchTuesday.Updates
		}
		switch {
		case d.ID == "" || strings.ContainsAny(d.ID, " ,"):
			return fe(f+".id", "required, without spaces or commas")
		case ids[d.ID]:
			return fe(f+".id", "%q repeats another deployment's id", d.ID)
		case d.Updates < 1 || d.Updates > pool:
			return fe(f+".updates", "want 1..%d, got %d", pool, d.Updates)
		case d.Deadline < d.Start:
			return fe(f+".deadline", "before its start")
		case d.FromDrop && d.Start < s.PatchTuesday.At:
			return fe(f+".start", "before the Patch Tuesday drop it deploys")
		}
		if j, taken := pools[d.FromDrop]; taken {
			return fe(f+".updates", "overlaps deployments[%d]: both deploy the first updates of the same pool (one deployment per pool: the catalog, and the Patch Tuesday drop)", j)
		}
		pools[d.FromDrop] = i
		ids[d.ID] = true
		if err := s.validatePhases(f, &s.Deployments[i]); err != nil {
			return err
		}
		for field, v := range map[string]float64{".target": d.Target, ".window": d.Window, ".failure": d.Failure, ".restart": d.Restart} {
			if err := frac(f+field, v); err != nil {
				return err
			}
		}
	}
	if p := s.PatchTuesday; p != nil && (p.Updates < 1 || p.At < 0) {
		return fe("patch_tuesday", "want updates >= 1 and at >= 0")
	}
	if err := s.validateRollout(); err != nil {
		return err
	}
	if s.Duration == 0 && (b.ScanEvery > 0 || len(s.Deployments) > 0 || s.PatchTuesday != nil || len(s.Waves) > 1 || s.Rate > 0 || len(s.Rates) > 0) {
		return errors.New("field duration: required when clients do more than their first scan")
	}
	return nil
}
