package pacing

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

// steps runs c for n seconds from t0 on a constant lag with clients waiting, and returns the
// last status.
func steps(c *Controller, t0 time.Time, n int, lag float64) Status {
	var st Status
	for i := range n {
		now := t0.Add(time.Duration(i) * time.Second)
		st = c.Step(now, []Reading{{Name: SignalWait, Value: lag, Target: 30, Unit: "s", At: now}}, Demand{Refused: 5})
	}
	return st
}

func TestAdministratorsPauseSetAndResume(t *testing.T) {
	c, err := New(DefaultConfig(), 0)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	st := steps(c, t0, 60, 7.5) // at the setpoint (0.25 of 30 s): holds the start rate
	if st.Decision != DecisionHold || st.EnrollRate != 50 || st.Mode != "auto" {
		t.Fatalf("at the setpoint: %s %s rate %g, want auto hold at the start rate 50", st.Mode, st.Decision, st.EnrollRate)
	}
	if err := c.Pause("alice"); err != nil {
		t.Fatal(err)
	}
	st = steps(c, t0.Add(time.Minute), 5, 7.5)
	if st.Mode != "paused" || st.EnrollRate != 0 || !strings.Contains(st.Reason, "alice") {
		t.Errorf("paused: %+v, want paused, rate 0, naming who", st)
	}
	if !st.BacklogOK {
		t.Errorf("an administrator's pause says nothing of the backlog: phases may still be released")
	}
	if err := c.SetRate(7); err != nil {
		t.Fatal(err)
	}
	st = steps(c, t0.Add(2*time.Minute), 5, 7.5)
	if st.Mode != "manual" || st.EnrollRate != 7 || st.Decision != DecisionManual {
		t.Errorf("set: %+v, want manual at 7/s", st)
	}
	for _, bad := range []float64{-1, 0, 1e-300, 1e308, math.NaN(), math.Inf(1)} {
		if err := c.SetRate(bad); !errors.Is(err, ErrRate) {
			t.Errorf("rate %g: %v, want ErrRate (outside min-rate … max-rate)", bad, err)
		}
	}
	if err := c.Resume(); err != nil {
		t.Fatal(err)
	}
	st = steps(c, t0.Add(3*time.Minute), 1, 7.5)
	if st.Mode != "auto" || st.EnrollRate != 7 || st.Decision != DecisionHold {
		t.Errorf("resumed at the setpoint: %s %s rate %g, want auto hold from the rate set (7)", st.Mode, st.Decision, st.EnrollRate)
	}
	// No backlog and clients waiting: the rate grows from there.
	st = steps(c, t0.Add(4*time.Minute), 30, 0)
	if st.EnrollRate <= 7 || st.Decision != DecisionIncrease {
		t.Errorf("no backlog, clients waiting: %s rate %g, want increasing above 7", st.Decision, st.EnrollRate)
	}
	counts := c.Decisions()
	if counts[DecisionPause] != 5 || counts[DecisionManual] != 5 {
		t.Errorf("decisions %v, want 5 pauses and 5 manual steps", counts)
	}
}

func TestOffKeepsTheStaticRate(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Mode = ModeOff
	c, err := New(cfg, 100)
	if err != nil {
		t.Fatal(err)
	}
	st := steps(c, time.Now(), 3, 300)
	if st.Mode != ModeOff || st.EnrollRate != 100 || st.ReportInterval != 0 || !st.BacklogOK {
		t.Errorf("off: %+v, want the static rate 100, no report interval, phases ungated by backlog", st)
	}
	if err := c.Pause(""); err != ErrOff {
		t.Errorf("pause while off: %v, want ErrOff", err)
	}
}

// The report interval stretches at once as the backlog passes the setpoint (fully at the
// target) and relaxes slowly once it is gone.
func TestReportIntervalStretchesAndRelaxes(t *testing.T) {
	c, _ := New(DefaultConfig(), 0)
	t0 := time.Now()
	if st := steps(c, t0, 5, 0); st.ReportInterval != 900 {
		t.Fatalf("no backlog: interval %g s, want the base 900", st.ReportInterval)
	}
	if st := steps(c, t0.Add(time.Minute), 15, 40); st.ReportInterval != 3600 {
		t.Fatalf("over target: interval %g s, want 4 × 900", st.ReportInterval)
	}
	st := steps(c, t0.Add(2*time.Minute), 60, 0)
	if st.ReportInterval >= 3600 || st.ReportInterval <= 900 {
		t.Errorf("a minute after the backlog went: %g s, want relaxing between 900 and 3600", st.ReportInterval)
	}
	st = steps(c, t0.Add(3*time.Minute), 3600, 0)
	if st.ReportInterval != 900 {
		t.Errorf("an hour later: %g s, want back at 900", st.ReportInterval)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, mod := range []func(*Config){
		func(c *Config) { c.Mode = "auto" },
		func(c *Config) { c.Setpoint = 1 },
		func(c *Config) { c.Deadband = 0.6 },
		func(c *Config) { c.StartRate = 0.5 },
		func(c *Config) { c.MaxRate = 10; c.StartRate = 20 },
		func(c *Config) { c.MaxStaleness = time.Millisecond },
		func(c *Config) { c.ReportInterval = 0 },
		func(c *Config) { c.MinRate = math.NaN() },
		func(c *Config) { c.MaxStretch = math.Inf(1) },
		func(c *Config) { c.MaxStretch = 1000 },
		func(c *Config) { c.Gain = math.NaN() },
	} {
		cfg := DefaultConfig()
		mod(&cfg)
		if err := cfg.Validate(); err == nil {
			t.Errorf("%+v was taken", cfg)
		}
	}
	d := DefaultConfig()
	if err := d.Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
}

// An idle site (nobody refused, nobody waiting) keeps its rate: a rate nobody uses says
// nothing about capacity, and would let the next wave in at once.
func TestIdleSiteKeepsItsRate(t *testing.T) {
	c, _ := New(DefaultConfig(), 0)
	t0 := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	var st Status
	for i := range 120 {
		now := t0.Add(time.Duration(i) * time.Second)
		st = c.Step(now, []Reading{{Name: SignalWait, Value: 0, Target: 30, Unit: "s", At: now}}, Demand{})
	}
	if st.EnrollRate != DefaultConfig().StartRate || st.Decision != DecisionHold {
		t.Errorf("two idle minutes: %s at %g/s, want hold at the start rate", st.Decision, st.EnrollRate)
	}
}
