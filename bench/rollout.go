package bench

// The rollout wave (Scenario.EnrolWave): the clients enrol during the run, each at a uniformly
// random wall-clock moment within the wave's span, honouring the site's 429 and Retry-After as
// the SDK does (client.Enroll), and each sends its first full scan as soon as it is enrolled.
// With the site's closed-loop pacing on, the site admits enrolments at the rate its backlog
// allows; off, it admits them all at once and the backlog is the storm's. The run samples the
// enrolments and the pacing controller once a second beside the rest (sampleEnrolment,
// samplePacing) and summarises the wave (RolloutResult): how long it took against a capacity
// bound measured in the same run, and how far the backlog went past its target.

import (
	"bytes"
	"cmp"
	"container/heap"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/statepipe/statepipe/client"
)

// EnrolWave enrols every client during the run: each first tries to enrol at a uniformly
// random moment within Over of the run's start — wall clock, not simulated time — retries as
// the site's 429s and Retry-After say, and sends its first full scan once enrolled.
type EnrolWave struct {
	Over Duration `json:"over"`
}

// PacingMode is a scenario's pacing: "on", "off" or "" (the site's default). YAML reads a
// bare on or off as a boolean; both spellings are taken.
type PacingMode string

// UnmarshalJSON reads "on", "off", true or false.
func (p *PacingMode) UnmarshalJSON(b []byte) error {
	var on bool
	if err := json.Unmarshal(b, &on); err == nil {
		*p = map[bool]PacingMode{true: "on", false: "off"}[on]
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil || (s != "" && s != "on" && s != "off") {
		return fmt.Errorf("pacing is on or off, not %s", b)
	}
	*p = PacingMode(s)
	return nil
}

// Rollout-wave constants: the backlog the site aims to stay under (DESIGN §5's 30 s, unless
// the site's pacing exports another), the
// goal for a wave's completion against its capacity bound, and the window the projector's
// sustained fold rate is taken over.
const (
	rolloutTargetSecs = 30.0
	rolloutRatioGoal  = 1.25
	foldWindowSamples = 5                // samples (seconds) per window of the fold rate
	saturatedBy       = 2                // a saturated projector has at least twice an interval's records waiting
	waveEnrolConns    = 64               // connections the wave's enrolments share (loopback ports are finite)
	waveStream        = 0x726f6c6c6f7574 // the wave's random stream ("rollout"), apart from the world's
)

// validateRollout checks the rollout fields.
func (s *Scenario) validateRollout() error {
	fe := func(field, format string, a ...any) error {
		return fmt.Errorf("field %s: %s", field, fmt.Sprintf(format, a...))
	}
	switch s.Pacing {
	case "", "on", "off":
	default:
		return fe("pacing", "want on or off, got %q", s.Pacing)
	}
	w := s.EnrolWave
	if w == nil {
		return nil
	}
	switch {
	case w.Over <= 0:
		return fe("enrol_wave.over", "must be a positive wall-clock span, like \"1m\"")
	case s.Unsigned:
		return fe("enrol_wave", "unsigned clients do not enrol (remove unsigned)")
	case len(s.Waves) > 0:
		return fe("enrol_wave", "cannot be combined with waves: the enrol wave decides when each client starts")
	case s.Behaviour.Ramp > 0:
		return fe("enrol_wave", "cannot be combined with behaviour.ramp: each client's first scan follows its enrolment")
	}
	return nil
}

// waveRun is a run's rollout wave as it goes.
type waveRun struct {
	hc       *http.Client
	pending  atomic.Int64 // clients not enrolled yet
	attempts atomic.Int64 // POST /v1/enroll requests answered
	refused  atomic.Int64 // of them, answered 429
	firstTry atomic.Int64 // since the run began (ns) when the first client tried to enrol; -1: none yet
	lastDone atomic.Int64 // since the run began (ns) when the last client was enrolled
	err      atomic.Pointer[error]
	done     sync.WaitGroup
}

func newWaveRun(sc *Scenario) *waveRun {
	w := &waveRun{}
	w.pending.Store(int64(sc.Clients))
	w.firstTry.Store(-1)
	// Reports keep their Concurrency connections; enrolments have their own, so an
	// enrolment does not queue behind the full scans of the clients enrolled before it.
	reports := &http.Transport{MaxIdleConnsPerHost: sc.Concurrency, MaxConnsPerHost: sc.Concurrency}
	enrols := &http.Transport{MaxIdleConnsPerHost: waveEnrolConns, MaxConnsPerHost: waveEnrolConns}
	// A client waits for one of the enrolment connections inside its request's timeout: with a
	// wave of 100,000 that wait can be tens of seconds without pacing.
	w.hc = &http.Client{Timeout: 5 * time.Minute, Transport: &waveTransport{reports: reports, enrols: enrols, w: w}}
	return w
}

// waveTransport sends enrolments and reports on connections of their own, and counts the
// enrolment attempts and the 429s they were answered.
type waveTransport struct {
	reports, enrols http.RoundTripper
	w               *waveRun
}

func (t *waveTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Path != "/v1/enroll" {
		return t.reports.RoundTrip(r)
	}
	resp, err := t.enrols.RoundTrip(r)
	if err == nil {
		t.w.attempts.Add(1)
		if resp.StatusCode == http.StatusTooManyRequests {
			t.w.refused.Add(1)
		}
	}
	return resp, err
}

// enrolPending is the number of clients of the wave not enrolled yet (0 without a wave).
func (h *harness) enrolPending() int64 {
	if h.wave == nil {
		return 0
	}
	return h.wave.pending.Load()
}

// startWave starts the rollout wave: each client tries to enrol at its moment (drawn from the
// scenario's seed) and, once enrolled, joins the wakes at the simulated time it was enrolled,
// so the dispatcher hands its first full scan to a worker at once.
func (h *harness) startWave(ctx context.Context) {
	w := h.wave
	n := h.sc.Clients
	rng := rand.New(rand.NewPCG(h.sc.Seed, waveStream))
	at := make([]time.Duration, n)
	order := make([]int, n)
	for i := range n {
		at[i] = time.Duration(rng.Int64N(int64(h.sc.EnrolWave.Over)))
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(at[a], at[b]) })
	w.done.Go(func() {
		t := time.NewTimer(0)
		defer t.Stop()
		for _, i := range order {
			if d := time.Until(h.begin.Add(at[i])); d > 0 {
				t.Reset(d)
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
			}
			w.firstTry.CompareAndSwap(-1, int64(time.Since(h.begin)))
			w.done.Go(func() { h.enrolOne(ctx, i) })
		}
	})
}

// enrolOne enrols client i (the SDK retries 429s as their Retry-After says) and puts it among
// the wakes. An enrolment that never succeeds stops the run.
func (h *harness) enrolOne(ctx context.Context, i int) {
	c := h.world.clients[i]
	sdk, err := client.Enroll(ctx, h.clientConfig(i, h.wave.hc))
	if err != nil {
		if ctx.Err() == nil {
			err = fmt.Errorf("client %s: %w", c.id, err)
			h.wave.err.CompareAndSwap(nil, &err)
			h.cancel()
		}
		return
	}
	h.sdk[i] = sdk // read by a worker only after the client has passed through h.mu
	h.stats.enrolled.Add(1)
	now := h.clock.now()
	if end := h.sc.Duration.D(); end > 0 {
		now = min(now, end) // enrolled after simulated time ended: its first scan still goes
	}
	h.mu.Lock()
	c.enrolNow(now)
	heap.Push(&h.wakes, c)
	h.mu.Unlock()
	storeMax(&h.wave.lastDone, int64(time.Since(h.begin)))
	h.wave.pending.Add(-1) // after the push: no pending client and no wake means none to come
}

// enrolNow moves c's first scan (and the rescans that follow it) to simulated time at, when it
// was enrolled.
func (c *simClient) enrolNow(at time.Duration) {
	if c.nextScan >= 0 {
		c.nextScan += at - c.enrolAt
	}
	c.enrolAt, c.wake = at, at
}

func storeMax(v *atomic.Int64, x int64) {
	for {
		old := v.Load()
		if x <= old || v.CompareAndSwap(old, x) {
			return
		}
	}
}

// enrolCounts returns the clients enrolled and the 429s they were answered so far.
func (h *harness) enrolCounts() (enrolled, refused int64) {
	if h.wave != nil {
		refused = h.wave.refused.Load()
	}
	return h.stats.enrolled.Load(), refused
}

// sampleEnrolment adds the harness's enrolment counts to s, and the rates since the sample
// before (from nothing, for a wave, at the first sample; a run that enrolled before it began
// has no rates).
func (h *harness) sampleEnrolment(s *Sample, prev *Sample, enrolled, refused int64) {
	s.Enrolled, s.Refused = enrolled, refused
	if h.wave != nil && prev == nil {
		prev = &Sample{}
	}
	if prev == nil {
		return
	}
	if dt := (s.At - prev.At).Seconds(); dt > 0 {
		s.EnrolPerS = float64(s.Enrolled-prev.Enrolled) / dt
		s.RefusedPerS = float64(s.Refused-prev.Refused) / dt
	}
}

// samplePacing reads the site's enrolment outcomes and its pacing controller's gauges (absent
// gauges — no pacing at this site — stay nil). A process hosting several sites (a hierarchy)
// labels them by site: the rate is summed over rateSites (every site when nil: the clients
// enrol there), the lag and the target are the worst site's.
func samplePacing(mf map[string]*dto.MetricFamily, s *Sample, rateSites []string) {
	s.SiteEnrolled = int64(sumWhere(mf, "statepipe_ingest_enrollments_total", "outcome", "enrolled"))
	s.SiteRefused = int64(sumWhere(mf, "statepipe_ingest_enrollments_total", "outcome", "enroll_rate"))
	s.PacingRate = gauge(mf, "statepipe_pacing_enroll_rate")
	if rateSites != nil && s.PacingRate != nil {
		var r float64
		for _, site := range rateSites {
			r += labelled(mf, "statepipe_pacing_enroll_rate", map[string]string{"site": site})
		}
		s.PacingRate = &r
	}
	s.PacingLag = gaugeMax(mf, "statepipe_pacing_lag_seconds")
	s.PacingTarget = gaugeMax(mf, "statepipe_pacing_target_seconds")
	if p := gauge(mf, "statepipe_pacing_paused"); p != nil && *p > 0 {
		s.PacingPaused = true
	}
}

// sumWhere adds the samples of a family whose label has value (0 when absent).
func sumWhere(mf map[string]*dto.MetricFamily, name, label, value string) float64 {
	f := mf[name]
	if f == nil {
		return 0
	}
	var s float64
	for _, m := range f.GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == label && l.GetValue() == value {
				s += m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	return s
}

// gauge returns the sum of a family's samples, nil when the site does not export it.
func gauge(mf map[string]*dto.MetricFamily, name string) *float64 {
	if mf[name] == nil || len(mf[name].GetMetric()) == 0 {
		return nil
	}
	v := sum(mf, name)
	return &v
}

// gaugeMax returns the largest sample of a family, nil when the site does not export it.
func gaugeMax(mf map[string]*dto.MetricFamily, name string) *float64 {
	if mf[name] == nil || len(mf[name].GetMetric()) == 0 {
		return nil
	}
	v := math.Inf(-1)
	for _, m := range mf[name].GetMetric() {
		v = math.Max(v, m.GetGauge().GetValue()+m.GetCounter().GetValue())
	}
	return &v
}

// backlogSeconds is how far behind the site is at a sample: the worst of the pacing
// controller's lag (when the site has one) and the p99 visible delay of the records committed
// in the second before it; NaN when neither was measured.
func backlogSeconds(s Sample) float64 {
	b := s.P99
	if s.PacingLag != nil && (math.IsNaN(b) || *s.PacingLag > b) {
		b = *s.PacingLag
	}
	return b
}

// RolloutResult is what a rollout wave measured (HarnessResult.Rollout).
type RolloutResult struct {
	EnrolOverSecs    float64 `json:"enrol_over_seconds"`    // the wave's span: every client first tries within it
	FirstAttemptSecs float64 `json:"first_attempt_seconds"` // since the run began
	LastEnrolledSecs float64 `json:"last_enrolled_seconds"` // since the run began
	Attempts         int64   `json:"enrol_attempts"`        // POST /v1/enroll requests, retries included
	Refused          int64   `json:"enrol_refused"`         // of them answered 429 (paced)
	// CompletionSecs is the wave's length: from the first enrolment attempt until every
	// client's first scan was visible (the reports' equality with the oracle is OracleOK).
	CompletionSecs  float64 `json:"completion_seconds"`
	TargetSecs      float64 `json:"target_backlog_seconds"`
	PeakBacklogSecs float64 `json:"peak_backlog_seconds"`
	OverTargetSecs  float64 `json:"seconds_over_target"`
	// FoldMsgsPerS is the projector's sustained fold rate in this run (sustainedFoldRate),
	// over FoldWindows windows; BoundSecs = Messages / FoldMsgsPerS is the least the wave
	// could take at that rate, and Ratio = CompletionSecs / BoundSecs (all 0: not measured,
	// the projector was never saturated in this run).
	FoldMsgsPerS float64 `json:"sustained_fold_msgs_per_second"`
	FoldWindows  int     `json:"fold_windows"`
	FoldMean     bool    `json:"fold_rate_is_mean,omitempty"` // no whole window: the mean over the backlogged seconds
	BoundSecs    float64 `json:"bound_seconds"`
	Ratio        float64 `json:"completion_over_bound"`
}

// rolloutResult summarises the wave once the run is over; checked is the time from the run's
// start to the end of the final checkpoint.
func (h *harness) rolloutResult(checked time.Duration) *RolloutResult {
	w := h.wave
	first := time.Duration(max(w.firstTry.Load(), 0))
	ro := summariseRollout(h.res.Timeline, h.res.Messages, h.stats.firstsMsgs.Load(), first, checked, siteArgTarget(h.res.SiteArgs))
	ro.EnrolOverSecs = h.sc.EnrolWave.Over.D().Seconds()
	ro.LastEnrolledSecs = time.Duration(w.lastDone.Load()).Seconds()
	ro.Attempts, ro.Refused = w.attempts.Load(), w.refused.Load()
	return ro
}

// summariseRollout derives a wave's completion, backlog and capacity bound from the timeline:
// messages is every message of the run, firsts the messages acknowledged when the last
// client's first scan was, first the wave's first attempt and checked the end of the final
// checkpoint (since the run began); target is the backlog target when the site exported none
// (0: 30 s).
func summariseRollout(tl Timeline, messages, firsts int64, first, checked time.Duration, target float64) *RolloutResult {
	ro := &RolloutResult{TargetSecs: backlogTarget(tl, target), FirstAttemptSecs: first.Seconds()}
	visible := checked
	if firsts > 0 {
		for _, s := range tl {
			if s.Folded >= firsts {
				visible = s.At
				break
			}
		}
	}
	ro.CompletionSecs = (visible - first).Seconds()
	ro.PeakBacklogSecs, ro.OverTargetSecs = backlogOverTarget(tl, ro.TargetSecs)
	ro.FoldMsgsPerS, ro.FoldWindows, ro.FoldMean = sustainedFoldRate(tl)
	if ro.FoldMsgsPerS > 0 {
		ro.BoundSecs = float64(messages) / ro.FoldMsgsPerS
		ro.Ratio = ro.CompletionSecs / ro.BoundSecs
	}
	return ro
}

// backlogTarget is the backlog a run is held to: the site's pacing target as it last
// exported it (statepipe_pacing_target_seconds), else target (the --pacing.target the site
// was given), else 30 s.
func backlogTarget(tl Timeline, target float64) float64 {
	for i := len(tl) - 1; i >= 0; i-- {
		if t := tl[i].PacingTarget; t != nil && *t > 0 {
			return *t
		}
	}
	if target > 0 {
		return target
	}
	return rolloutTargetSecs
}

// siteArgTarget is the --pacing.target among the site's flags, in seconds (0: none).
func siteArgTarget(args []string) float64 {
	if v, ok := flagValue(args, "pacing.target"); ok {
		if d, err := time.ParseDuration(v); err == nil && d > 0 {
			return d.Seconds()
		}
	}
	return 0
}

// backlogOverTarget returns the worst backlog of the timeline and the wall-clock seconds it
// spent over target. A second in which nothing was committed has no p99: while records are
// still waiting (lag > 0) the backlog last measured is taken to hold; with none waiting it is 0.
func backlogOverTarget(tl Timeline, target float64) (peak, over float64) {
	last := 0.0
	for i, s := range tl {
		b := s.BacklogSecs
		switch {
		case !math.IsNaN(b):
			peak = math.Max(peak, b)
		case s.LagRecords > 0:
			b = last
		default:
			b = 0
		}
		last = b
		if i > 0 && b > target {
			over += (s.At - tl[i-1].At).Seconds()
		}
	}
	return peak, over
}

// sustainedFoldRate is the projector's fold rate while it was what held the run back: the
// median, over every window of foldWindowSamples consecutive sampling intervals each of which
// kept it saturated (saturated), of the messages it folded per second in that window. Windows,
// not single seconds: the projector commits in batches, so one second's increase jumps between
// zero and a batch. Without such a window it is the mean over the saturated intervals (mean
// true); without those, 0: the projector always kept up, so this run cannot show its rate.
func sustainedFoldRate(tl Timeline) (rate float64, windows int, mean bool) {
	var rates []float64
	for i := 0; i+foldWindowSamples < len(tl); i++ {
		j := i + foldWindowSamples
		busy := true
		for k := i + 1; k <= j && busy; k++ {
			busy = saturated(tl[k-1], tl[k])
		}
		if dt := (tl[j].At - tl[i].At).Seconds(); busy && dt > 0 {
			rates = append(rates, float64(tl[j].Folded-tl[i].Folded)/dt)
		}
	}
	if len(rates) > 0 {
		slices.Sort(rates)
		m := len(rates) / 2
		if len(rates)%2 == 0 {
			return (rates[m-1] + rates[m]) / 2, len(rates), false
		}
		return rates[m], len(rates), false
	}
	var msgs int64
	var secs float64
	for i := 1; i < len(tl); i++ {
		if saturated(tl[i-1], tl[i]) {
			msgs += tl[i].Folded - tl[i-1].Folded
			secs += (tl[i].At - tl[i-1].At).Seconds()
		}
	}
	if secs > 0 && msgs > 0 {
		return float64(msgs) / secs, 0, true
	}
	return 0, 0, false
}

// saturated says whether the projector had more work waiting than it could fold between
// samples a and b: at a, at least saturatedBy times the records it folded by b waited (its
// lag), and some still waited at b. A lag above zero alone is not enough: a projector that
// keeps up always has up to a commit cycle's records in flight (a second's, or more at a low
// rate), and its rate is then the load it was offered, not what it can do.
func saturated(a, b Sample) bool {
	return b.At > a.At && a.LagRecords > 0 && a.LagRecords >= saturatedBy*(b.FoldedRecords-a.FoldedRecords) && b.LagRecords > 0
}

// rolloutGoals are a wave's goals: the backlog within its target, and the wave within 1.25×
// the capacity bound.
func rolloutGoals(ro *RolloutResult) []Goal {
	g := []Goal{{What: "rollout wave: worst backlog", Want: fmt.Sprintf("≤ %.0f s", ro.TargetSecs),
		Got: fmt.Sprintf("%.1f s (%.0f s over)", ro.PeakBacklogSecs, ro.OverTargetSecs), Met: ro.PeakBacklogSecs <= ro.TargetSecs}}
	got, met := "not measured: the projector was never saturated", false
	if ro.BoundSecs > 0 {
		got, met = fmt.Sprintf("%.2f (%.0f s of a %.0f s bound)", ro.Ratio, ro.CompletionSecs, ro.BoundSecs), ro.Ratio <= rolloutRatioGoal
	}
	return append(g, Goal{What: "rollout wave: completion / capacity bound", Want: fmt.Sprintf("≤ %.2f", rolloutRatioGoal), Got: got, Met: met})
}

// foldRule explains the fold rate, the bound and the backlog, for report.md.
const foldRule = "The **capacity bound** is the run's messages divided by the projector's sustained fold rate in the same run. " +
	"That rate is the median, over every window of 5 consecutive one-second sampling intervals in which the projector was saturated, of the messages it folded per second in " +
	"the window (statepipe_projector_messages_total). An interval saturates it when at its start at least twice as many records waited (statepipe_projector_lag_records) as it folded " +
	"in it — two seconds' work — and some still waited at its end: a lag above zero alone is not enough, since a projector that keeps up always has a commit cycle's records in flight " +
	"and its rate is then the load it was offered — a pacing that admitted too few clients would measure its own slowness as the capacity. Windows, not single seconds, because the projector " +
	"commits in batches and one second's increase jumps between zero and a batch; the median, so that the slow seconds of a start or a stall do not pull it down. When no whole window " +
	"qualifies, the mean over the saturated intervals is used; with none, the run never saturated the projector and has no bound. The bound is the least time the wave could take " +
	"if the projector folded at that rate from the first message; **completion** runs from the first enrolment attempt until every client's first scan was visible (the folded count " +
	"reached every message acknowledged by then), and the goal is completion ≤ 1.25 × bound. **Backlog seconds** at a sample are the worst of the pacing controller's lag " +
	"(statepipe_pacing_lag_seconds, when the site exports it) and the p99 visible delay of the records committed in the second before it; **time over target** adds the seconds " +
	"whose backlog exceeded the target (the site's pacing target as statepipe_pacing_target_seconds exports it, else its --pacing.target flag, else 30 s), a second without commits keeping " +
	"the last backlog while records still wait. The fold rate is a median, and the projector shares two cores with ingest and the harness: once ingest has nothing left " +
	"to accept it folds faster, so a ratio below 1 is possible. A pacing that spreads ingest over the whole wave keeps the projector sharing the CPU throughout, which " +
	"lowers its own fold rate and so its own bound."

// rolloutMarkdown is report.md's section on a rollout wave (empty without one).
func rolloutMarkdown(r *HarnessResult) string {
	ro := r.Rollout
	if ro == nil {
		return ""
	}
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p("## Rollout wave (pacing %s)\n\n| measure | value |\n|---|---|\n", pacingLabel(r.Pacing))
	for _, row := range rolloutRows {
		p("| %s | %s |\n", row.what, row.value(r))
	}
	p("\n%s\n\n", foldRule)
	return b.String()
}

// rolloutRows are the measures of a wave, in report.md and in a comparison of two.
var rolloutRows = []struct {
	what  string
	value func(r *HarnessResult) string
}{
	{"clients × applicable updates", func(r *HarnessResult) string { return r.World }},
	{"state messages", func(r *HarnessResult) string { return fmt.Sprint(r.Messages) }},
	{"wave: every client first tries to enrol within", func(r *HarnessResult) string { return fmt.Sprintf("%.0f s", r.Rollout.EnrolOverSecs) }},
	{"first attempt → last client enrolled", func(r *HarnessResult) string {
		return fmt.Sprintf("%.1f s", r.Rollout.LastEnrolledSecs-r.Rollout.FirstAttemptSecs)
	}},
	{"enrolment attempts (429s)", func(r *HarnessResult) string {
		return fmt.Sprintf("%d (%d)", r.Rollout.Attempts, r.Rollout.Refused)
	}},
	{"**completion**: first attempt → every first scan visible", func(r *HarnessResult) string {
		return fmt.Sprintf("**%.1f s**", r.Rollout.CompletionSecs)
	}},
	{"worst backlog", func(r *HarnessResult) string { return fmt.Sprintf("%.1f s", r.Rollout.PeakBacklogSecs) }},
	{"time over the backlog target", func(r *HarnessResult) string {
		return fmt.Sprintf("%.0f s (target %.0f s)", r.Rollout.OverTargetSecs, r.Rollout.TargetSecs)
	}},
	{"projector's sustained fold rate", func(r *HarnessResult) string {
		ro := r.Rollout
		switch {
		case ro.FoldMsgsPerS == 0:
			return "not measured (never saturated)"
		case ro.FoldMean:
			return fmt.Sprintf("%.0f msgs/s (mean of the saturated seconds: no whole 5 s window)", ro.FoldMsgsPerS)
		}
		return fmt.Sprintf("%.0f msgs/s (median of %d windows)", ro.FoldMsgsPerS, ro.FoldWindows)
	}},
	{"capacity bound (messages / fold rate)", func(r *HarnessResult) string {
		if r.Rollout.BoundSecs == 0 {
			return "—"
		}
		return fmt.Sprintf("%.1f s", r.Rollout.BoundSecs)
	}},
	{"**completion / bound** (goal ≤ 1.25)", func(r *HarnessResult) string {
		if r.Rollout.BoundSecs == 0 {
			return "—"
		}
		mark := "met"
		if r.Rollout.Ratio > rolloutRatioGoal {
			mark = "missed"
		}
		return fmt.Sprintf("**%.2f** (%s)", r.Rollout.Ratio, mark)
	}},
	{"every report equals the oracle", func(r *HarnessResult) string {
		if r.OracleOK {
			return "yes"
		}
		return "**no**: " + r.OracleError
	}},
	{"peak RSS (site, harness)", func(r *HarnessResult) string {
		return fmt.Sprintf("%.2f GiB, %.2f GiB", gib(r.PeakRSS), gib(r.HarnessPeakRSS))
	}},
}

// pacingLabel names a run's pacing ("site default" when the run did not say).
func pacingLabel(p string) string {
	if p == "" {
		return "site default"
	}
	return p
}

// siteOptions resolves the site's extra flags for a run: the pacing asked for (HarnessConfig's,
// else the scenario's) as --pacing.mode when the binary has that flag, then SiteArgs as given.
// A scenario without an enrol wave that asks for none runs with pacing off, as before the site
// had any: its clients enrol before the run, unpaced, and the run measures what follows. A
// binary without pacing runs "off" as it is (it has none) and refuses "on". It returns the
// flags and the pacing the run is recorded with: the one asked for, else the site's default
// (empty when it has no pacing); SiteArgs setting --pacing.mode win, as they do in the site.
func siteOptions(cfg HarnessConfig) (args []string, pacing string, err error) {
	pacing = cfg.Pacing
	if pacing == "" {
		pacing = string(cfg.Scenario.Pacing)
	}
	switch pacing {
	case "", "on", "off":
	default:
		return nil, "", fmt.Errorf("pacing is on or off, not %q", pacing)
	}
	has, def := sitePacing(cfg.Bin)
	if pacing == "" && has && cfg.Scenario.EnrolWave == nil {
		pacing = "off"
	}
	switch {
	case pacing != "" && has:
		args = append(args, "--pacing.mode="+pacing)
	case pacing == "on":
		return nil, "", fmt.Errorf("pacing on: %s has no --pacing.mode flag (a statepipe without closed-loop pacing)", cfg.Bin)
	case pacing == "":
		pacing = def
	}
	if v, ok := flagValue(cfg.SiteArgs, "pacing.mode"); ok {
		pacing = v
	}
	return append(args, cfg.SiteArgs...), pacing, nil
}

// flagValue returns the value of the last flag name among args (as -name=v, --name=v or
// --name v), as the site's flag parsing would take it.
func flagValue(args []string, name string) (value string, ok bool) {
	for i, a := range args {
		n, v, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if n != name || !strings.HasPrefix(a, "-") {
			continue
		}
		if !hasValue && i+1 < len(args) {
			v = args[i+1]
		}
		value, ok = v, true
	}
	return value, ok
}

var pacingDefault = regexp.MustCompile(`-pacing\.mode string\s[^\n]*\n?[^\n]*\(default "([a-z]+)"\)`)

// sitePacing says whether the statepipe binary bin has closed-loop pacing (run --pacing.mode),
// and its default mode.
func sitePacing(bin string) (has bool, def string) {
	out, _ := exec.Command(bin, "run", "-h").CombinedOutput()
	if !bytes.Contains(out, []byte("-pacing.mode")) {
		return false, ""
	}
	if m := pacingDefault.FindSubmatch(out); m != nil {
		return true, string(m[1])
	}
	return true, ""
}

// SiteHasPacing says whether the statepipe binary bin has closed-loop pacing (run --pacing.mode).
func SiteHasPacing(bin string) bool {
	has, _ := sitePacing(bin)
	return has
}

// errWaveEnrol wraps an enrolment that never succeeded.
var errWaveEnrol = errors.New("a client never enrolled")
