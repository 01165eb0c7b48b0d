package pacing

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"
	"time"
)

// Modes of Config.Mode.
const (
	ModeOn  = "on"
	ModeOff = "off"
)

// Decisions: what a step of the controller did to the enrolment rate (Status.Decision, and
// the kind label of statepipe_pacing_decisions_total).
const (
	DecisionIncrease = "increase"
	DecisionHold     = "hold"
	DecisionDecrease = "decrease"
	DecisionPause    = "pause"  // missing signals, or an administrator paused
	DecisionManual   = "manual" // an administrator set the rate
	DecisionOff      = "off"    // pacing is off: the static rate applies
)

// Decisions lists every decision kind (for metrics).
var Decisions = []string{DecisionIncrease, DecisionHold, DecisionDecrease, DecisionPause, DecisionManual, DecisionOff}

// Config tunes the controller. Every knob is a flag (RegisterFlags) with its default and why.
type Config struct {
	// Mode on closes the loop; off leaves the static --ingest.enroll-rate, the client's own
	// report interval and ungated phases (every phase still waits for its criterion).
	Mode string
	// Target is the backlog target: the age of the oldest accepted, unfolded report (and the
	// freshness of every link up to the top) the site keeps under. 30 s by default.
	Target time.Duration
	// Setpoint is where the controller steers the wait, as a fraction of Target (0.25: 7.5 s).
	// Below target, so that a transient overshoot stays under it, and above zero, so that the
	// projector always has work queued while clients wait: a pipeline that never idles
	// finishes a rollout in the time its capacity allows.
	Setpoint float64
	// Deadband is the band around the setpoint, as a fraction of Target, inside which the rate
	// is not changed: the lag signal moves by a second or two with every projector batch, and
	// a rate that answered each wiggle would change direction all the time.
	Deadband float64
	// Window is the span over which every signal is taken at its minimum (CoDel's interval):
	// a burst that drains within it does not move the rate. 5 s covers a projector batch and a
	// watermark step several times over, and shows a rising backlog no later than that.
	Window time.Duration
	// Interval is how often the controller steps.
	Interval time.Duration
	// MaxStaleness is how old the newest reading of a signal may be: past it the controller
	// pauses (missing data counts as bad data) until the signal is fresh again.
	MaxStaleness time.Duration
	// StartRate is the enrolment rate (new clients per second, per ingest node) at start and
	// never exceeded before the signals say more is safe; MinRate and MaxRate bound the rate.
	StartRate, MinRate, MaxRate float64
	// Gain is the integral gain on the shaped error, per second, in the log domain (the wait
	// at the target falls the rate by about 0.08 × 0.6 = 5 % a second, on top of the damping);
	// Damping is the proportional gain on changes of the error (it answers a rising backlog
	// before the integral has): see the package doc for the tuning.
	Gain, Damping float64
	// MaxGrowth caps how fast the rate rises, a share a second (0.05: +5 %/s, ×2 in 14 s);
	// it falls as fast as the law says.
	MaxGrowth float64
	// Curve shapes the error: beyond the dead band, an error smaller than Curve (a fraction
	// of the target) counts in proportion to its square, a larger one in proportion. Noise
	// near the setpoint then barely moves the rate while a backlog far from it moves it at
	// full gain (0.3: 9 s of lag either side of the band at a 30 s target; 0: linear).
	Curve float64
	// ReportInterval is the base interval clients batch their state messages for (ConfigMgr's
	// default state-message reporting cycle is 15 minutes); MaxStretch bounds how far it is
	// stretched under backlog (×4: an hour); RelaxTime is the time constant with which a
	// stretch relaxes once the backlog is gone (it rises at once).
	ReportInterval time.Duration
	MaxStretch     float64
	RelaxTime      time.Duration
	// InsertTarget is the store insert latency (mean over an interval) taken as "at target".
	InsertTarget time.Duration
	// ShedTarget is the share of report requests ingest sheds (503: overloaded, body memory)
	// taken as "at target".
	ShedTarget float64
	// LinkTarget is the freshness of a link up to the top taken as "at target" (default
	// Target): a parent that lags slows its children.
	LinkTarget time.Duration
}

// DefaultConfig returns the defaults of every knob.
func DefaultConfig() Config {
	return Config{
		Mode: ModeOn, Target: 30 * time.Second, Setpoint: 0.25, Deadband: 0.05, Window: 5 * time.Second,
		Interval: time.Second, MaxStaleness: 10 * time.Second,
		StartRate: 50, MinRate: 1, MaxRate: 1000, Gain: 0.08, Damping: 3, Curve: 0.3, MaxGrowth: 0.05,
		ReportInterval: 15 * time.Minute, MaxStretch: 4, RelaxTime: 5 * time.Minute,
		InsertTarget: 10 * time.Second, ShedTarget: 0.01,
	}
}

// RegisterFlags registers the controller's flags under prefix ("pacing.").
func (c *Config) RegisterFlags(prefix string, fs *flag.FlagSet) {
	d := DefaultConfig()
	fs.StringVar(&c.Mode, prefix+"mode", d.Mode, "on: the site's backlog sets the enrolment rate, the report interval clients are told and gates deployment phases; off: the static --ingest.enroll-rate applies and the interval is not sent")
	fs.DurationVar(&c.Target, prefix+"target", d.Target, "backlog target: the age of the oldest accepted, unfolded report (and the freshness of every link up to the top) the site keeps under")
	fs.Float64Var(&c.Setpoint, prefix+"setpoint", d.Setpoint, "where the controller steers the backlog, as a fraction of the target: under it so an overshoot stays under target, above 0 so the projector never idles while clients wait")
	fs.Float64Var(&c.Deadband, prefix+"deadband", d.Deadband, "band around the setpoint (fraction of the target) in which the rate is left alone, so that batch-to-batch wiggles of the lag do not turn it")
	fs.DurationVar(&c.Window, prefix+"window", d.Window, "every signal is taken as its minimum over this window (CoDel-style): a burst that drains within it does not move the rate")
	fs.DurationVar(&c.Interval, prefix+"interval", d.Interval, "how often the controller steps")
	fs.DurationVar(&c.MaxStaleness, prefix+"max-staleness", d.MaxStaleness, "a signal not read for this long pauses the controller (missing data counts as bad data)")
	fs.Float64Var(&c.StartRate, prefix+"start-rate", d.StartRate, "new enrolments per second (per ingest node) admitted at start, before the signals say more is safe")
	fs.Float64Var(&c.MinRate, prefix+"min-rate", d.MinRate, "lowest enrolment rate the controller sets while not paused")
	fs.Float64Var(&c.MaxRate, prefix+"max-rate", d.MaxRate, "highest enrolment rate the controller sets (per ingest node)")
	fs.Float64Var(&c.Gain, prefix+"gain", d.Gain, "integral gain, per second, on the log of the rate: with no backlog and clients waiting the rate grows by exp(gain × setpoint) a second")
	fs.Float64Var(&c.Damping, prefix+"damping", d.Damping, "proportional gain on changes of the backlog error (log of the rate per unit of target): answers a rising backlog before the integral does")
	fs.Float64Var(&c.MaxGrowth, prefix+"max-growth", d.MaxGrowth, "fastest the rate rises, a share a second (0.05: +5 %/s); it falls as fast as the backlog asks (0: no cap)")
	fs.Float64Var(&c.Curve, prefix+"curve", d.Curve, "errors beyond the dead band smaller than this (fraction of the target) count by their square, so noise near the setpoint barely moves the rate (0: linear)")
	fs.DurationVar(&c.ReportInterval, prefix+"report-interval", d.ReportInterval, "base interval clients batch their state messages for (the answer to a report carries it, stretched under backlog)")
	fs.Float64Var(&c.MaxStretch, prefix+"max-stretch", d.MaxStretch, "most the report interval is stretched under backlog (×)")
	fs.DurationVar(&c.RelaxTime, prefix+"relax-time", d.RelaxTime, "time constant of the report interval's return to its base once the backlog is gone")
	fs.DurationVar(&c.InsertTarget, prefix+"insert-target", d.InsertTarget, "mean store insert latency taken as at target")
	fs.Float64Var(&c.ShedTarget, prefix+"shed-target", d.ShedTarget, "share of report requests ingest sheds (503) taken as at target")
	fs.DurationVar(&c.LinkTarget, prefix+"link-target", d.LinkTarget, "freshness of a link up to the top taken as at target (0: the backlog target)")
}

// Validate reports a configuration that cannot work, with the values.
func (c *Config) Validate() error {
	for name, v := range map[string]float64{"setpoint": c.Setpoint, "deadband": c.Deadband, "start-rate": c.StartRate, "min-rate": c.MinRate,
		"max-rate": c.MaxRate, "gain": c.Gain, "damping": c.Damping, "curve": c.Curve, "max-growth": c.MaxGrowth, "max-stretch": c.MaxStretch, "shed-target": c.ShedTarget} {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("pacing: %s must be a finite number, not %g", name, v)
		}
	}
	switch {
	case c.Mode != ModeOn && c.Mode != ModeOff:
		return fmt.Errorf("pacing: mode must be on or off, not %q", c.Mode)
	case c.Target <= 0:
		return fmt.Errorf("pacing: target must be positive (%s)", c.Target)
	case c.Setpoint <= 0 || c.Setpoint >= 1:
		return fmt.Errorf("pacing: setpoint must be between 0 and 1 (a fraction of the target), not %g", c.Setpoint)
	case c.Deadband < 0 || c.Deadband >= c.Setpoint:
		return fmt.Errorf("pacing: deadband (%g) must be at least 0 and under the setpoint (%g)", c.Deadband, c.Setpoint)
	case c.Window < 0 || c.Interval <= 0:
		return fmt.Errorf("pacing: window (%s) must not be negative and interval (%s) must be positive", c.Window, c.Interval)
	case c.MaxStaleness < c.Interval:
		return fmt.Errorf("pacing: max-staleness (%s) must be at least the interval (%s)", c.MaxStaleness, c.Interval)
	case c.MinRate <= 0 || c.MaxRate < c.MinRate || c.StartRate < c.MinRate || c.StartRate > c.MaxRate:
		return fmt.Errorf("pacing: want 0 < min-rate (%g) <= start-rate (%g) <= max-rate (%g)", c.MinRate, c.StartRate, c.MaxRate)
	case c.Gain <= 0 || c.Damping < 0 || c.Curve < 0 || c.MaxGrowth < 0:
		return fmt.Errorf("pacing: gain (%g) must be positive, damping (%g) and curve (%g) not negative", c.Gain, c.Damping, c.Curve)
	case c.ReportInterval < time.Second || c.ReportInterval > 24*time.Hour || c.MaxStretch < 1 || c.MaxStretch > 100 || c.RelaxTime < 0:
		return fmt.Errorf("pacing: want 1s <= report-interval <= 24h (%s), 1 <= max-stretch <= 100 (%g), relax-time >= 0 (%s)", c.ReportInterval, c.MaxStretch, c.RelaxTime)
	case c.MaxRate > 1e6:
		return fmt.Errorf("pacing: max-rate (%g) is over a million new enrolments a second per node", c.MaxRate)
	case c.InsertTarget <= 0 || c.ShedTarget <= 0 || c.LinkTarget < 0:
		return fmt.Errorf("pacing: insert-target (%s) and shed-target (%g) must be positive, link-target (%s) not negative", c.InsertTarget, c.ShedTarget, c.LinkTarget)
	}
	return nil
}

// Reading is one signal as read at At (zero: never read): its value in its unit, and the
// value taken as at target. Its pressure is Value/Target, and at least Floor (a link that is
// failed counts as over target, whatever its freshness says yet).
type Reading struct {
	Name   string // "lag", "insert", "shedding", "link S01->P01", "above P01"
	Value  float64
	Target float64
	Unit   string // "s", "share", "×"
	Floor  float64
	// Guard marks a signal that only counts once over its target: it bounds the backlog but
	// does not steer (the age of the oldest unfolded record trails the queue by as long as the
	// queue is, and a loop steering on it oscillates; the predicted wait steers instead).
	Guard bool
	At    time.Time
}

// Demand is what enrolment saw since the previous step.
type Demand struct {
	Admitted int64 // new clients admitted
	Refused  int64 // new clients refused by the rate (429)
	Waiting  int64 // refused clients told to come back later: waiting now
}

// Status is the controller's state after a step: the pacing part of the backlog report, the
// answer of GET /v1/pacing, and what a site publishes for the sites below it.
type Status struct {
	At       time.Time `json:"at"`
	Mode     string    `json:"mode"` // auto, paused (missing data or an administrator), manual, off
	Decision string    `json:"decision"`
	Reason   string    `json:"reason"`
	// EnrollRate is the rate of new enrolments admitted, per second per ingest node (0 while
	// paused; the static rate when off, 0 meaning unlimited there).
	EnrollRate float64 `json:"enroll_rate"`
	// ReportInterval is the interval clients are told to batch their messages for, seconds
	// (0 when off: clients keep their own).
	ReportInterval float64 `json:"report_interval_seconds"`
	// Pressure is the worst signal over its target (1: at target), Limiting its name.
	Pressure      float64  `json:"pressure"`
	Limiting      string   `json:"limiting,omitempty"`
	LagSeconds    float64  `json:"lag_seconds"` // the site's own lag as last read: age of the oldest unfolded report
	TargetSeconds float64  `json:"target_seconds"`
	Signals       []Signal `json:"signals"`
	// BacklogOK says the backlog is under target with fresh signals: deployment phases may be
	// released.
	BacklogOK bool `json:"backlog_ok"`
}

// Signal is one signal in a Status.
type Signal struct {
	Name     string  `json:"name"`
	Value    float64 `json:"value"`
	Target   float64 `json:"target"`
	Unit     string  `json:"unit"`
	Pressure float64 `json:"pressure"` // over the window
	// AgeSeconds is how long ago it was read (null: never).
	AgeSeconds *float64 `json:"age_seconds"`
}

// Controller is the closed loop of one site: Step takes the signals and what enrolment saw,
// and sets the enrolment rate, the report interval and whether phases may be released.
// Administrators pause, resume and set the rate. It is safe for concurrent use.
type Controller struct {
	cfg Config

	mu      sync.Mutex
	logRate float64   // ln of the automatic rate, as the control law wants it
	lowered time.Time // when the rate was last lowered (the stabilisation window runs from it)
	ePrev   float64
	last    time.Time
	windows map[string]*minWindow
	missing bool // paused for missing signals (resumes at half the rate)
	// slowStart: no backlog has shown since the start (or a resume)
	slowStart bool
	seen      bool      // a step had every signal fresh: a pause for missing data since is bad news, not a start
	first     time.Time // the first step: a signal never read is missing only MaxStaleness after it
	paused    string
	manual    float64 // > 0: an administrator's rate
	stretch   float64
	static    float64 // the rate when off
	status    Status
	counts    map[string]int64
}

// New returns a controller; static is the enrolment rate used when the mode is off.
func New(cfg Config, static float64) (*Controller, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.LinkTarget == 0 {
		cfg.LinkTarget = cfg.Target
	}
	c := &Controller{cfg: cfg, logRate: math.Log(cfg.StartRate), windows: map[string]*minWindow{}, stretch: 1, static: static, slowStart: true, counts: map[string]int64{}}
	c.status = Status{Mode: "auto", Decision: DecisionPause, Reason: "starting: no signal read yet", TargetSeconds: cfg.Target.Seconds(), Signals: []Signal{}}
	if cfg.Mode == ModeOff {
		c.status = Status{Mode: ModeOff, Decision: DecisionOff, Reason: "pacing is off (--pacing.mode off): the static enrolment rate applies",
			EnrollRate: static, TargetSeconds: cfg.Target.Seconds(), Signals: []Signal{}, BacklogOK: true}
	}
	return c, nil
}

// Config returns the controller's configuration.
func (c *Controller) Config() Config { return c.cfg }

// Status returns the state after the last step.
func (c *Controller) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.status
	s.Signals = append([]Signal(nil), s.Signals...)
	return s
}

// Decisions returns how many steps took each decision.
func (c *Controller) Decisions() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := make(map[string]int64, len(c.counts))
	for k, v := range c.counts {
		m[k] = v
	}
	return m
}

// ErrOff is returned by administrative changes while pacing is off.
var ErrOff = errors.New("pacing is off at this site (--pacing.mode off): there is no controller to pause, resume or set")

// Pause stops new enrolments until Resume; who says who asked (for the reason shown).
func (c *Controller) Pause(who string) error {
	if c.cfg.Mode == ModeOff {
		return ErrOff
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if who == "" {
		who = "an administrator"
	}
	c.paused = who
	return nil
}

// Resume returns to automatic control from an administrator's pause or rate; the automatic
// rate starts from the rate set, if one was.
func (c *Controller) Resume() error {
	if c.cfg.Mode == ModeOff {
		return ErrOff
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.manual > 0 {
		c.logRate = math.Log(min(max(c.manual, c.cfg.MinRate), c.cfg.MaxRate))
	}
	c.paused, c.manual = "", 0
	c.slowStart = true
	return nil
}

// ErrRate is returned for a rate an administrator may not set.
var ErrRate = errors.New("rate out of bounds")

// CheckRate says whether an administrator may set rate: from --pacing.min-rate to
// --pacing.max-rate (pause to admit none).
func (c Config) CheckRate(rate float64) error {
	if !(rate >= c.MinRate && rate <= c.MaxRate) {
		return fmt.Errorf("%w: cannot set the enrolment rate to %g: want %g to %g new enrolments a second (--pacing.min-rate, --pacing.max-rate; pause to admit none)",
			ErrRate, rate, c.MinRate, c.MaxRate)
	}
	return nil
}

// SetRate fixes the enrolment rate until Resume (within CheckRate's bounds).
func (c *Controller) SetRate(rate float64) error {
	if c.cfg.Mode == ModeOff {
		return ErrOff
	}
	if err := c.cfg.CheckRate(rate); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.manual, c.paused = rate, ""
	return nil
}

// Step runs the controller once at now with the signals read and what enrolment saw since
// the previous step.
func (c *Controller) Step(now time.Time, readings []Reading, d Demand) Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	dt := c.cfg.Interval.Seconds()
	if !c.last.IsZero() {
		dt = min(max(now.Sub(c.last).Seconds(), 0), 10*c.cfg.Interval.Seconds())
	}
	c.last = now
	if c.first.IsZero() {
		c.first = now
	}
	s := Status{At: now.UTC(), TargetSeconds: c.cfg.Target.Seconds(), Signals: make([]Signal, 0, len(readings))}
	if c.cfg.Mode == ModeOff {
		s.Mode, s.Decision, s.EnrollRate, s.BacklogOK = ModeOff, DecisionOff, c.static, true
		s.Reason = "pacing is off (--pacing.mode off): the static enrolment rate applies"
	}
	// Every signal through its window; the stale ones are missing (one never read only once
	// the controller has run MaxStaleness: the first readings take a moment).
	var missing, starting []string
	raw := 0.0 // the worst steering signal as read now, before its window
	for _, r := range readings {
		sig := Signal{Name: r.Name, Value: r.Value, Target: r.Target, Unit: r.Unit}
		w := c.windows[r.Name]
		if w == nil {
			w = &minWindow{span: c.cfg.Window}
			c.windows[r.Name] = w
		}
		if r.At.IsZero() {
			if now.Sub(c.first) > c.cfg.MaxStaleness || c.seen {
				missing = append(missing, r.Name+" (never read)")
			} else {
				starting = append(starting, r.Name)
			}
			w.reset()
		} else {
			age := max(now.Sub(r.At).Seconds(), 0)
			sig.AgeSeconds = &age
			if now.Sub(r.At) > c.cfg.MaxStaleness {
				missing = append(missing, fmt.Sprintf("%s (last read %s ago)", r.Name, now.Sub(r.At).Round(time.Second)))
				w.reset()
			} else {
				p := 0.0
				if r.Target > 0 {
					p = r.Value / r.Target
				}
				sig.Pressure = max(w.add(now, max(p, 0)), r.Floor)
				if !r.Guard {
					raw = max(raw, p, r.Floor)
				}
			}
		}
		if r.Name == SignalLag && sig.AgeSeconds != nil {
			s.LagSeconds = r.Value // as read: what the target bounds (the window is the controller's)
		}
		if r.Guard && sig.Pressure < 1 {
			s.Signals = append(s.Signals, sig)
			continue
		}
		if sig.Pressure > s.Pressure || s.Limiting == "" {
			s.Pressure, s.Limiting = sig.Pressure, r.Name
		}
		s.Signals = append(s.Signals, sig)
	}
	if len(missing) > 0 {
		s.Pressure, s.Limiting = math.Max(s.Pressure, 1), strings.Join(missing, ", ")
	}
	s.BacklogOK = len(missing) == 0 && len(starting) == 0 && s.Pressure < 1
	if c.cfg.Mode == ModeOff {
		s.BacklogOK = true
		return c.finish(s)
	}
	s.Mode = "auto"
	if len(missing) == 0 && len(starting) == 0 {
		defer func() { c.seen = true }()
	}
	switch {
	case c.paused != "":
		s.Mode, s.Decision, s.Reason = "paused", DecisionPause, "paused by "+c.paused+" (statepipe pacing resume)"
		c.ePrev = c.shape(s.Pressure)
	case len(missing) > 0:
		c.missing = c.seen
		s.Mode, s.Decision = "paused", DecisionPause
		s.Reason = "no fresh " + strings.Join(missing, ", ") + ": paused rather than assume all is well"
	case len(starting) > 0:
		s.Decision, s.EnrollRate = DecisionHold, math.Round(math.Exp(c.logRate)*1000)/1000
		s.Reason = fmt.Sprintf("starting: first reading of %s due (missing after %s)", strings.Join(starting, ", "), c.cfg.MaxStaleness)
		s.BacklogOK = false
	case c.manual > 0:
		s.Mode, s.Decision, s.EnrollRate = "manual", DecisionManual, c.manual
		s.Reason = fmt.Sprintf("rate set by an administrator to %g/s (statepipe pacing resume returns to automatic)", c.manual)
		c.ePrev = c.shape(s.Pressure)
	default:
		s.Decision, s.Reason = c.control(&s, raw, d, dt)
		s.EnrollRate = math.Round(math.Exp(c.logRate)*1000) / 1000
	}
	return c.finish(s)
}

// control is the control law (see the package doc): PI on the log of the rate, on the error
// between the setpoint and the pressure, with a dead band, no growth without demand, and a
// resume at half the rate after missing data.
func (c *Controller) control(s *Status, raw float64, d Demand, dt float64) (decision, reason string) {
	lo, hi := math.Log(c.cfg.MinRate), math.Log(c.cfg.MaxRate)
	if c.missing {
		c.missing = false
		c.logRate = max(c.logRate-math.Ln2, lo)
		c.ePrev = c.shape(s.Pressure)
		return DecisionDecrease, fmt.Sprintf("signals fresh again: resuming at half the rate before the pause (%s at %.2f of target)", s.Limiting, s.Pressure)
	}
	e := c.shape(s.Pressure)
	du := c.cfg.Gain*e*dt + c.cfg.Damping*(e-c.ePrev)
	c.ePrev = e
	starved := false
	if du > 0 && d.Refused == 0 && d.Waiting == 0 {
		du, starved = 0, true // nobody waits: a rate nobody uses says nothing about capacity
	}
	// Up slowly, down at once: a rise is capped at MaxGrowth a second (the damping term would
	// otherwise multiply the rate many times over the moment a backlog drains, and a queue
	// shows an overshoot only a window later); a fall is never held back.
	if c.cfg.MaxGrowth > 0 {
		cap := math.Log1p(c.cfg.MaxGrowth) * dt
		if raw <= c.cfg.Deadband/2 && (d.Refused > 0 || d.Waiting > 0) {
			// Slow start: from a start (or a resume) until a backlog first shows there is
			// nothing to steer by, so the rate grows at the cap rather than by the small
			// error's square. It ends on the signal as read, not its window's minimum: a
			// rising backlog shows there a window sooner.
			du = max(du, cap)
		} else {
			c.slowStart = false
		}
		du = min(du, cap)
	}
	before := c.logRate
	c.logRate = min(max(c.logRate+du, lo), hi)
	what := fmt.Sprintf("%s at %.2f of target (setpoint %.2f)", s.Limiting, s.Pressure, c.cfg.Setpoint)
	switch change := c.logRate - before; {
	case change > 1e-3:
		return DecisionIncrease, what + fmt.Sprintf(": raising; %d enrolments refused since the last step, %d told to come back", d.Refused, d.Waiting)
	case change < -1e-3:
		return DecisionDecrease, what + ": lowering"
	case starved:
		return DecisionHold, what + ": room to grow, but nobody waits (no enrolment refused since the last step, none told to come back)"
	case du > 0 && c.logRate >= hi:
		return DecisionHold, what + ": at --pacing.max-rate"
	case du < 0 && c.logRate <= lo:
		return DecisionHold, what + ": at --pacing.min-rate"
	}
	return DecisionHold, what + ": within the dead band"
}

// shape is the error the law acts on for a pressure: setpoint − pressure (at most −1 far over
// target), zero within the dead band, and beyond it counted by its square while under Curve.
func (c *Controller) shape(pressure float64) float64 {
	e := c.cfg.Setpoint - min(pressure, 1+c.cfg.Setpoint)
	switch {
	case e > c.cfg.Deadband:
		e -= c.cfg.Deadband
	case e < -c.cfg.Deadband:
		e += c.cfg.Deadband
	default:
		return 0
	}
	if c.cfg.Curve > 0 {
		e *= min(math.Abs(e)/c.cfg.Curve, 1)
	}
	return e
}

// finish sets the report interval and counts the decision.
func (c *Controller) finish(s Status) Status {
	if c.cfg.Mode == ModeOn {
		// Stretched at once as the pressure passes the setpoint (fully at the target, or when
		// paused), relaxed with RelaxTime as it falls.
		want := 1.0
		if s.Decision == DecisionPause && c.paused == "" {
			want = c.cfg.MaxStretch
		} else if s.Pressure > c.cfg.Setpoint {
			want = 1 + (c.cfg.MaxStretch-1)*min((s.Pressure-c.cfg.Setpoint)/(1-c.cfg.Setpoint), 1)
		}
		if want >= c.stretch || c.cfg.RelaxTime == 0 {
			c.stretch = want
		} else {
			k := 1 - math.Exp(-c.cfg.Interval.Seconds()/c.cfg.RelaxTime.Seconds())
			c.stretch += (want - c.stretch) * k
			if c.stretch-want < 0.01 {
				c.stretch = want
			}
		}
		s.ReportInterval = math.Round(c.cfg.ReportInterval.Seconds() * c.stretch)
	}
	sort.SliceStable(s.Signals, func(i, j int) bool { return s.Signals[i].Name < s.Signals[j].Name })
	c.counts[s.Decision]++
	c.status = s
	return s
}

// Signal names the site's own signals are read under (links are "link A->B", the chain
// above "above P").
const (
	SignalLag      = "lag"
	SignalInsert   = "insert"
	SignalShedding = "shedding"
	SignalWait     = "wait"
)
