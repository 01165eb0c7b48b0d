package bench

// The rollout wave across a hierarchy (Scenario.EnrolWave with Primaries): the wave's clients
// are spread over the primaries (client i enrols at primary i mod n, as it reports), each
// enrolling at its primary, whose pacing controller admits it. Beside the single site's wave
// measures (rollout.go: completion against the capacity bound, the backlog) the link sampler
// reads, once a second, each site's pacing rate and lag (statepipe_pacing_enroll_rate and
// _lag_seconds{site}) and the central site's freshness of each primary — the backlog report at
// the root, GET /v1/reports/backlog?site=CEN, links[].freshness_seconds — and the wave is
// judged on the worst central freshness against the target, and on when every client's first
// scan was counted centrally.

import (
	"context"
	"fmt"
	"math"
	"net/url"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"gonum.org/v1/plot/plotter"

	"github.com/statepipe/statepipe/report"
)

// sitePacingGauges is site's pacing rate and lag in a process hosting several sites (nil: no
// pacing there).
func sitePacingGauges(mf map[string]*dto.MetricFamily, site string) (rate, lag *float64) {
	get := func(name string) *float64 {
		f := mf[name]
		if f == nil {
			return nil
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "site" && l.GetValue() == site {
					v := m.GetGauge().GetValue()
					return &v
				}
			}
		}
		return nil
	}
	return get("statepipe_pacing_enroll_rate"), get("statepipe_pacing_lag_seconds")
}

// centralFreshness reads the root's backlog report into s: each primary's link as the root
// sees it.
func (r *hierRun) centralFreshness(ctx context.Context, s *LinkSample) {
	var b report.Backlog
	if err := r.site.get(ctx, "/v1/reports/backlog?site="+url.QueryEscape(r.root), &b); err != nil {
		return
	}
	for _, bs := range b.Sites {
		for _, l := range bs.Links {
			from, to, ok := strings.Cut(l.Link, "->")
			if !ok || to != r.root || l.FreshnessSeconds == nil {
				continue
			}
			for p, code := range r.primaries {
				if code == from && p < len(s.Links) {
					f := *l.FreshnessSeconds
					s.Links[p].CentralFreshness = &f
				}
			}
		}
	}
}

// HierWave is a rollout wave across a hierarchy (HierarchyResult.Wave). Times are wall-clock
// seconds.
type HierWave struct {
	// TargetSecs is the freshness the central site is held to (the backlog target: the
	// pacing's link target defaults to it).
	TargetSecs float64 `json:"target_seconds"`
	// WorstCentralFreshness is the worst freshness of any primary at the root over the run
	// (links[].freshness_seconds of its backlog report), OverTargetSecs the seconds any link
	// spent over the target.
	WorstCentralFreshness float64 `json:"worst_central_freshness_seconds"`
	WorstLink             string  `json:"worst_link"`
	OverTargetSecs        float64 `json:"seconds_over_target"`
	// CentralCompletionSecs runs from the wave's first enrolment attempt until the root's
	// watermark of every primary passed the moment that primary answered its last first scan:
	// every client's first scan counted centrally (0: never seen).
	CentralCompletionSecs float64        `json:"central_completion_seconds"`
	Sites                 []HierWaveSite `json:"sites"`
}

// HierWaveSite is one site's part in the wave.
type HierWaveSite struct {
	Site    string `json:"site"`
	Clients int    `json:"clients"`
	// Its pacing controller: the peak and mean rate over the wave's samples (first attempt
	// → last client enrolled), the worst lag over the run.
	PeakRate  float64 `json:"peak_enroll_rate"`
	MeanRate  float64 `json:"mean_enroll_rate"`
	WorstLag  float64 `json:"worst_pacing_lag_seconds"`
	Enrolled  float64 `json:"enrolled"`
	LastAdmit float64 `json:"last_enrolled_seconds,omitempty"` // when its enrolments counter last rose
	// For a primary: its link as the root sees it, and when its last first scan was counted
	// there (since the run began; 0: never seen).
	WorstCentralFreshness float64 `json:"worst_central_freshness_seconds,omitempty"`
	OverTargetSecs        float64 `json:"seconds_over_target,omitempty"`
	CentralCompletion     float64 `json:"central_counted_seconds,omitempty"`
}

// summariseWave summarises the wave across the hierarchy once the run (and its rollout result)
// is over.
func (r *hierRun) summariseWave(h *harness) *HierWave {
	r.mu.Lock()
	defer r.mu.Unlock()
	hr := h.res.Hierarchy
	w := &HierWave{TargetSecs: rolloutTargetSecs}
	var first, lastEnrolled float64
	if ro := h.res.Rollout; ro != nil {
		w.TargetSecs, first, lastEnrolled = ro.TargetSecs, ro.FirstAttemptSecs, ro.LastEnrolledSecs
	}
	tl := hr.Timeline
	sites := append([]string{r.root}, r.primaries...)
	for i, code := range sites {
		ws := HierWaveSite{Site: code}
		rate := func(s LinkSample) *float64 { return s.CentralPacingRate }
		lag := func(s LinkSample) *float64 { return s.CentralPacingLag }
		if i > 0 {
			p := i - 1
			ws.Clients = len(r.parts[p].clients)
			rate = func(s LinkSample) *float64 { return s.Links[p].PacingRate }
			lag = func(s LinkSample) *float64 { return s.Links[p].PacingLag }
		}
		var sum float64
		var n int
		for j, s := range tl {
			at := s.At.Seconds()
			if v := lag(s); v != nil {
				ws.WorstLag = math.Max(ws.WorstLag, *v)
			}
			if v := rate(s); v != nil && at >= first && at <= lastEnrolled+1 {
				ws.PeakRate = math.Max(ws.PeakRate, *v)
				sum += *v
				n++
			}
			if i == 0 {
				continue
			}
			lp := s.Links[i-1]
			if lp.Enrolled > ws.Enrolled {
				ws.Enrolled, ws.LastAdmit = lp.Enrolled, at
			}
			if f := lp.CentralFreshness; f != nil {
				if *f > ws.WorstCentralFreshness {
					ws.WorstCentralFreshness = *f
				}
				if j > 0 && *f > w.TargetSecs {
					ws.OverTargetSecs += (s.At - tl[j-1].At).Seconds()
				}
			}
		}
		if n > 0 {
			ws.MeanRate = sum / float64(n)
		}
		if i > 0 {
			ws.CentralCompletion = r.centralCounted(i-1, h.begin)
			if ws.WorstCentralFreshness > w.WorstCentralFreshness {
				w.WorstCentralFreshness, w.WorstLink = ws.WorstCentralFreshness, code+"→"+r.root
			}
		}
		w.Sites = append(w.Sites, ws)
	}
	// Seconds any link was over target.
	for j := 1; j < len(tl); j++ {
		for _, lp := range tl[j].Links {
			if lp.CentralFreshness != nil && *lp.CentralFreshness > w.TargetSecs {
				w.OverTargetSecs += (tl[j].At - tl[j-1].At).Seconds()
				break
			}
		}
	}
	done := 0.0
	for _, ws := range w.Sites[1:] {
		if ws.CentralCompletion == 0 {
			done = -1
			break
		}
		done = math.Max(done, ws.CentralCompletion)
	}
	if done > 0 {
		w.CentralCompletionSecs = done - first
	}
	return w
}

// centralCounted is when (since begin) the root's watermark of primary p first passed the
// moment p answered its last first scan: the first watermark reading that shows it (0: none).
func (r *hierRun) centralCounted(p int, begin time.Time) float64 {
	last := r.firsts[p]
	if last.IsZero() {
		return 0
	}
	var readings []wmPoint
	for _, s := range r.wm {
		if s.wm[p] > 0 {
			readings = append(readings, wmPoint{at: s.at, wm: time.UnixMilli(s.wm[p])})
		}
	}
	delays, _ := visibilityDelays([]time.Time{last}, readings)
	if len(delays) == 0 {
		return 0
	}
	return last.Add(delays[0]).Sub(begin).Seconds()
}

// hierWaveGoals judge the wave across the hierarchy: the root's freshness of every primary
// within the target throughout.
func hierWaveGoals(w *HierWave) []Goal {
	return []Goal{{What: "rollout wave across the hierarchy: worst central freshness of a primary (the root's backlog report)",
		Want: fmt.Sprintf("≤ %.0f s", w.TargetSecs),
		Got:  fmt.Sprintf("%.1f s (%s; %.0f s over)", w.WorstCentralFreshness, w.WorstLink, w.OverTargetSecs),
		Met:  w.WorstCentralFreshness <= w.TargetSecs}}
}

// hierWaveMarkdown is report.md's section on a wave across a hierarchy (empty without one).
func hierWaveMarkdown(r *HarnessResult) string {
	if r.Hierarchy == nil || r.Hierarchy.Wave == nil {
		return ""
	}
	w, hr := r.Hierarchy.Wave, r.Hierarchy
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p("### The rollout wave across the hierarchy\n\n")
	p("%d clients per primary enrol within the wave at their primary (client i at primary i mod %d), each paced by its primary's controller. ", hr.ClientsPerPrimary, len(hr.Primaries))
	p("Central freshness is %s's backlog report (`GET /v1/reports/backlog?site=%s`, `links[].freshness_seconds`) read once a second; a primary's first scans are counted centrally once %s's watermark of it (v_hier_origins, read every %.2f s) passed the moment it answered its last one.\n\n", hr.Root, hr.Root, hr.Root, hr.WatermarkEvery)
	p("| measure | value |\n|---|---|\n")
	p("| worst central freshness (target %.0f s) | **%.1f s** (%s), %.0f s over target |\n", w.TargetSecs, w.WorstCentralFreshness, w.WorstLink, w.OverTargetSecs)
	if ro := r.Rollout; ro != nil {
		p("| completion: first attempt → every first scan visible at its primary | %.1f s |\n", ro.CompletionSecs)
		if ro.BoundSecs > 0 {
			p("| capacity bound (the process's messages / its sustained fold rate) | %.1f s (ratio %.2f) |\n", ro.BoundSecs, ro.Ratio)
		} else {
			p("| capacity bound | not measured: the primaries' projectors were never saturated |\n")
		}
	}
	if w.CentralCompletionSecs > 0 {
		p("| **central completion**: first attempt → every first scan counted at %s | **%.1f s** |\n", hr.Root, w.CentralCompletionSecs)
	} else {
		p("| central completion | not seen before the run ended |\n")
	}
	p("\n| site | clients | enrolled | last enrolment at | pacing rate: peak / mean over the wave | worst pacing lag | worst central freshness | over target | first scans counted at %s |\n|---|---|---|---|---|---|---|---|---|\n", hr.Root)
	for i, s := range w.Sites {
		central, over, counted := "—", "—", "—"
		if i > 0 {
			central, over = fmt.Sprintf("%.1f s", s.WorstCentralFreshness), fmt.Sprintf("%.0f s", s.OverTargetSecs)
			if s.CentralCompletion > 0 {
				counted = fmt.Sprintf("%.1f s", s.CentralCompletion)
			} else {
				counted = "never seen"
			}
		}
		p("| %s | %d | %.0f | %.1f s | %.0f / %.0f per s | %.1f s | %s | %s | %s |\n", s.Site, s.Clients, s.Enrolled, s.LastAdmit, s.PeakRate, s.MeanRate, s.WorstLag, central, over, counted)
	}
	p("\n")
	return b.String()
}

// hierWaveCharts are the plots of a wave across a hierarchy.
var hierWaveCharts = []struct {
	name string
	make func(string, *HierarchyResult) (*chart, error)
}{
	{"wave-central-freshness.png", centralFreshnessChart},
	{"wave-pacing-rate.png", sitePacingRateChart},
}

// centralFreshnessChart draws each primary's freshness at the root against the target.
func centralFreshnessChart(title string, hr *HierarchyResult) (*chart, error) {
	ch := newChart(title, "central freshness of each primary ("+hr.Root+"'s backlog report)", "wall clock (s)", "freshness at "+hr.Root+" (s)")
	n, err := primarySeries(ch, hr, func(code string) string { return code + "→" + hr.Root },
		func(l LinkPoint) *float64 { return l.CentralFreshness })
	if err != nil {
		return nil, err
	}
	tgt := targetLine(hr.Wave.TargetSecs)
	ch.p.Add(tgt)
	ch.legend(fmt.Sprintf("%.0f s target", hr.Wave.TargetSecs), tgt)
	ch.finishWall(n)
	return ch, nil
}

// sitePacingRateChart draws each primary's pacing rate (new enrolments admitted per second).
func sitePacingRateChart(title string, hr *HierarchyResult) (*chart, error) {
	ch := newChart(title, "pacing rate per site (statepipe_pacing_enroll_rate)", "wall clock (s)", "enrolments / s")
	n, err := primarySeries(ch, hr, func(code string) string { return code },
		func(l LinkPoint) *float64 { return l.PacingRate })
	if err != nil {
		return nil, err
	}
	ch.finishWall(n)
	return ch, nil
}

// primarySeries adds a series per primary of value over the run's link timeline (samples
// without a value left out), named by name, and returns the points drawn.
func primarySeries(ch *chart, hr *HierarchyResult, name func(code string) string, value func(LinkPoint) *float64) (int, error) {
	n := 0
	for p, code := range hr.Primaries {
		var xys plotter.XYs
		for _, s := range hr.Timeline {
			if v := value(s.Links[p]); v != nil {
				xys = append(xys, plotter.XY{X: s.At.Seconds(), Y: *v})
			}
		}
		n += len(xys)
		if err := ch.series(name(code), xys, linkColours[p%len(linkColours)], 5); err != nil {
			return 0, err
		}
	}
	return n, nil
}
