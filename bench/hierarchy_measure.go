package bench

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// What a hierarchy run measures: the delay from a report's acceptance at its primary to its
// being counted at CEN, and the links' traffic, freshness and state.

// wmSample is one reading of CEN's watermarks of the primaries (v_hier_origins).
type wmSample struct {
	at    time.Time // when the answer came back: the watermark was there by then
	wm    []int64   // by primary, Unix ms; 0 before any heartbeat
	cells []int64   // by primary: the cells the origin holds, as it last said
}

// sampleWatermarks reads CEN's watermark of every primary every period until ctx is done.
// The delay measured is from the report's 200 to the answer of the first reading that shows
// it: at most the period plus one query late.
func (r *hierRun) sampleWatermarks(ctx context.Context, period time.Duration) {
	q := "SELECT origin, toUnixTimestamp64Milli(watermark), cells FROM " + schemaDB(r.root) + ".v_hier_origins"
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		res, err := r.site.sqlAt(ctx, q, r.root)
		if err == nil {
			s := wmSample{at: time.Now(), wm: make([]int64, len(r.primaries)), cells: make([]int64, len(r.primaries))}
			for _, row := range res.Rows {
				if len(row) < 3 {
					continue
				}
				origin, _ := row[0].(string)
				if p := slices.Index(r.primaries, origin); p >= 0 {
					s.wm[p], s.cells[p] = jsonInt(row[1]), jsonInt(row[2])
				}
			}
			r.mu.Lock()
			r.wm = append(r.wm, s)
			r.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// jsonInt reads an integer of a /v1/sql answer (a JSON number, or a string for 64-bit ones).
func jsonInt(v any) int64 {
	switch x := v.(type) {
	case float64:
		return int64(x)
	case string:
		n, _ := strconv.ParseInt(x, 10, 64)
		return n
	}
	return 0
}

// LinkSample is the links' metrics at one moment (one a second).
type LinkSample struct {
	At     time.Duration `json:"at"` // wall clock since the run began
	Paused bool          `json:"checkpoint,omitempty"`
	// CentralFolded is the replicator records CEN folded so far.
	CentralFolded float64     `json:"central_folded_records"`
	Links         []LinkPoint `json:"links"` // by primary
	// CentralPacingRate and CentralPacingLag are the root's own pacing controller's
	// (statepipe_pacing_enroll_rate and _lag_seconds{site=root}); nil where it has none.
	CentralPacingRate *float64 `json:"central_pacing_enroll_rate,omitempty"`
	CentralPacingLag  *float64 `json:"central_pacing_lag_seconds,omitempty"`
	when              time.Time
}

// LinkPoint is one primary's link to CEN at a moment: its replicator's counters and gauges,
// and what its projector had folded.
type LinkPoint struct {
	SentBytes      float64 `json:"sent_bytes"`
	SentRecords    float64 `json:"sent_records"`
	ChangeCells    float64 `json:"change_cells"`
	SweepCells     float64 `json:"sweep_cells"`
	Freshness      float64 `json:"freshness_seconds"`
	BacklogRecords float64 `json:"backlog_records"`
	State          string  `json:"state"`
	Folded         float64 `json:"folded_messages"` // state messages the primary's projector folded
	// The primary's pacing controller (statepipe_pacing_enroll_rate, _lag_seconds{site}),
	// its enrolments admitted so far, and — with a rollout wave — the freshness of its link as
	// the root's backlog report shows it (GET /v1/reports/backlog?site=root,
	// links[].freshness_seconds); nil where not read.
	PacingRate       *float64 `json:"pacing_enroll_rate,omitempty"`
	PacingLag        *float64 `json:"pacing_lag_seconds,omitempty"`
	Enrolled         float64  `json:"enrolled,omitempty"`
	CentralFreshness *float64 `json:"central_freshness_seconds,omitempty"`
}

// sampleLinks reads the links' metrics once a second until ctx is done.
func (r *hierRun) sampleLinks(ctx context.Context, h *harness) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		if mf, err := r.site.metrics(ctx); err == nil {
			s := LinkSample{when: time.Now(), Paused: h.clock.isPaused(),
				CentralFolded: labelled(mf, "statepipe_hierarchy_folded_records_total", map[string]string{"site": r.root})}
			for _, p := range r.primaries {
				l := map[string]string{"site": p}
				lp := LinkPoint{
					SentBytes:      labelled(mf, "statepipe_replicator_sent_bytes_total", l),
					SentRecords:    labelled(mf, "statepipe_replicator_sent_records_total", l),
					ChangeCells:    labelled(mf, "statepipe_replicator_sent_cells_total", map[string]string{"site": p, "reason": "change"}),
					SweepCells:     labelled(mf, "statepipe_replicator_sent_cells_total", map[string]string{"site": p, "reason": "sweep"}),
					Freshness:      labelled(mf, "statepipe_replicator_freshness_seconds", l),
					BacklogRecords: labelled(mf, "statepipe_replicator_backlog_records", l),
					Folded:         labelled(mf, "statepipe_projector_messages_total", l),
				}
				for _, st := range []string{"active", "degraded", "failed"} {
					if labelled(mf, "statepipe_replicator_link_state", map[string]string{"site": p, "state": st}) == 1 {
						lp.State = st
					}
				}
				lp.PacingRate, lp.PacingLag = sitePacingGauges(mf, p)
				lp.Enrolled = labelled(mf, "statepipe_ingest_enrollments_total", map[string]string{"site": p, "outcome": "enrolled"})
				s.Links = append(s.Links, lp)
			}
			s.CentralPacingRate, s.CentralPacingLag = sitePacingGauges(mf, r.root)
			if h.wave != nil {
				r.centralFreshness(ctx, &s)
			}
			r.mu.Lock()
			r.links = append(r.links, s)
			r.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// labelled adds the samples of a counter or gauge family whose labels include want.
func labelled(mf map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	f := mf[name]
	if f == nil {
		return 0
	}
	var s float64
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, lp := range m.GetLabel() {
			have[lp.GetName()] = lp.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			s += m.GetCounter().GetValue()
		case m.Gauge != nil:
			s += m.GetGauge().GetValue()
		}
	}
	return s
}

// wmPoint is one reading of one primary's watermark at CEN.
type wmPoint struct{ at, wm time.Time }

// visibilityDelays returns, for each acceptance time, the delay until the first reading taken
// at or after it whose watermark is at or after it (in the order of the sorted acceptances),
// and how many no reading showed. The readings are in the order taken; a watermark need not
// only grow. For sorted acceptances the first reading that shows one can only move forward:
// a reading showing a later acceptance shows every earlier one too.
func visibilityDelays(accepts []time.Time, readings []wmPoint) (delays []time.Duration, unseen int) {
	acc := slices.Clone(accepts)
	slices.SortFunc(acc, func(a, b time.Time) int { return a.Compare(b) })
	j := 0
	for _, t := range acc {
		for j < len(readings) && (readings[j].at.Before(t) || readings[j].wm.Before(t)) {
			j++
		}
		if j == len(readings) {
			unseen++
			continue
		}
		delays = append(delays, readings[j].at.Sub(t))
	}
	return delays, unseen
}

// VisibilityStats summarises central visibility delays.
type VisibilityStats struct {
	Reports int     `json:"reports"`
	Unseen  int     `json:"unseen"` // accepted, never shown by a reading before the run ended
	P50     float64 `json:"p50_seconds"`
	P90     float64 `json:"p90_seconds"`
	P99     float64 `json:"p99_seconds"`
	Max     float64 `json:"max_seconds"`
}

// visibilityStats takes exact (nearest-rank) quantiles of delays.
func visibilityStats(delays []time.Duration, unseen int) VisibilityStats {
	v := VisibilityStats{Reports: len(delays) + unseen, Unseen: unseen}
	if len(delays) == 0 {
		return v
	}
	d := slices.Clone(delays)
	slices.Sort(d)
	q := func(p float64) float64 {
		i := max(int(math.Ceil(p*float64(len(d))))-1, 0)
		return d[min(i, len(d)-1)].Seconds()
	}
	v.P50, v.P90, v.P99, v.Max = q(.5), q(.9), q(.99), d[len(d)-1].Seconds()
	return v
}

// HierarchyResult is what a hierarchy run measured beyond a single site's result.
type HierarchyResult struct {
	Root              string   `json:"root"`
	Primaries         []string `json:"primaries"`
	ClientsPerPrimary int      `json:"clients_per_primary"`
	// RateCap is the scenario's report rate (reports/s across the primaries), the load the
	// steady phase is held to; SteadyFrom/To bound the steady phase (wall clock since the
	// run began): from the pacing's start (every first scan folded) to the last report sent.
	// Its rates are over its seconds outside the checkpoint pauses.
	RateCap           float64 `json:"rate_cap_reports_per_second"`
	SteadyFrom        float64 `json:"steady_from_seconds"`
	SteadyTo          float64 `json:"steady_to_seconds"`
	SteadyReportsPerS float64 `json:"steady_reports_per_second"`
	SteadyMsgsPerS    float64 `json:"steady_msgs_per_second"`
	// Visibility is ingest acceptance at a primary → counted at CEN, every report;
	// SteadyVisibility those accepted in the steady phase.
	Visibility       VisibilityStats `json:"central_visibility"`
	SteadyVisibility VisibilityStats `json:"central_visibility_steady"`
	WatermarkReads   int             `json:"watermark_reads"`
	WatermarkEvery   float64         `json:"watermark_read_every_seconds"` // mean interval between reads
	Links            []LinkSummary   `json:"links"`
	Checks           []HierCheck     `json:"checks"`
	Findings         []Finding       `json:"findings,omitempty"`
	Timeline         []LinkSample    `json:"link_timeline"`
	// VisibilityTimeline is, per 5 s of acceptance and primary, the p99 delay to CEN.
	VisibilityTimeline []VisibilityBucket `json:"visibility_timeline"`
	// Wave is a rollout wave across the hierarchy (hierarchy_wave.go); nil without one.
	Wave *HierWave `json:"wave,omitempty"`
}

// LinkSummary is one primary's link to CEN over the run.
type LinkSummary struct {
	Site     string `json:"site"`
	Parent   string `json:"parent"`
	Clients  int    `json:"clients"`
	Reports  int    `json:"reports"`
	Messages int64  `json:"messages"` // state messages acknowledged at the primary, resyncs included
	// The replicator's totals over the run.
	SentBytes   float64 `json:"sent_bytes"`
	SentRecords float64 `json:"sent_records"`
	ChangeCells float64 `json:"change_cells"`
	SweepCells  float64 `json:"sweep_cells"`
	// Over the steady phase's unpaused seconds: what it sent and what its projector folded.
	SteadySeconds   float64 `json:"steady_seconds"`
	SteadyBytes     float64 `json:"steady_bytes"`
	SteadyRecords   float64 `json:"steady_records"`
	SteadyCells     float64 `json:"steady_change_cells"`
	SteadyMessages  float64 `json:"steady_folded_messages"`
	BytesPerMessage float64 `json:"bytes_per_folded_message"`
	BytesPerCell    float64 `json:"bytes_per_cell"`
	// PauseBytesPerS is what the link carried per second while the run paused at checkpoints
	// (nothing reported: heartbeats, and the last changes).
	PauseBytesPerS float64         `json:"pause_bytes_per_second"`
	HeldCells      int64           `json:"held_cells"` // the cells the primary holds, as it last said
	MaxFreshness   float64         `json:"max_freshness_seconds"`
	Visibility     VisibilityStats `json:"central_visibility"`
}

// VisibilityBucket is the central visibility of one primary's reports accepted in one 5 s span.
type VisibilityBucket struct {
	Site    string  `json:"site"`
	At      float64 `json:"at_seconds"` // the span's start, wall clock since the run began
	Reports int     `json:"reports"`
	P99     float64 `json:"p99_seconds"`
}

// summarise completes the hierarchy's result once the run is over; per is the scenario as
// written (clients per primary).
func (r *hierRun) summarise(h *harness, per Scenario) *HierarchyResult {
	r.mu.Lock()
	defer r.mu.Unlock()
	begin := h.begin
	res := &HierarchyResult{Root: r.root, Primaries: r.primaries, ClientsPerPrimary: per.Clients, RateCap: per.Rate,
		Checks: r.checks, WatermarkReads: len(r.wm)}
	if n := len(r.wm); n > 1 {
		res.WatermarkEvery = r.wm[n-1].at.Sub(r.wm[0].at).Seconds() / float64(n-1)
	}
	for _, k := range r.order {
		res.Findings = append(res.Findings, *r.finds[k])
	}
	for _, s := range r.links {
		s.At = s.when.Sub(begin)
		res.Timeline = append(res.Timeline, s)
	}
	// The steady phase: from when the pacing began (the sampler marks it) to the last send.
	from, to := time.Duration(-1), h.lastSend.Sub(begin)
	for _, s := range h.res.Timeline {
		if s.Rate > 0 {
			from = s.At
			break
		}
	}
	if from < 0 { // no pacing: after the last first scan was acknowledged
		from = to
	}
	res.SteadyFrom, res.SteadyTo = from.Seconds(), to.Seconds()
	var steadyReports int
	var all, steady []time.Duration
	var unseenAll, unseenSteady int
	for p, code := range r.primaries {
		var readings []wmPoint
		for _, s := range r.wm {
			if s.wm[p] > 0 {
				readings = append(readings, wmPoint{at: s.at, wm: time.UnixMilli(s.wm[p])})
			}
		}
		acc := slices.Clone(r.accepts[p])
		slices.SortFunc(acc, func(a, b time.Time) int { return a.Compare(b) })
		delays, unseen := visibilityDelays(acc, readings)
		// delays are in acc's order, the unseen ones the last.
		var st []time.Duration
		stUnseen := 0
		for i, t := range acc {
			in := t.Sub(begin) >= from && t.Sub(begin) <= to
			if in {
				steadyReports++
			}
			if i >= len(delays) {
				if in {
					stUnseen++
				}
				continue
			}
			if in {
				st = append(st, delays[i])
			}
		}
		all, steady = append(all, delays...), append(steady, st...)
		unseenAll, unseenSteady = unseenAll+unseen, unseenSteady+stUnseen
		res.VisibilityTimeline = append(res.VisibilityTimeline, visibilityBuckets(code, acc, delays, begin, 5*time.Second)...)
		ls := LinkSummary{Site: code, Parent: r.root, Clients: len(r.parts[p].clients), Reports: len(acc), Messages: r.acked[p].Load(),
			Visibility: visibilityStats(delays, unseen)}
		if n := len(r.wm); n > 0 {
			ls.HeldCells = r.wm[n-1].cells[p]
		}
		ls.linkTotals(res.Timeline, p, from, to)
		res.Links = append(res.Links, ls)
	}
	res.Visibility = visibilityStats(all, unseenAll)
	res.SteadyVisibility = visibilityStats(steady, unseenSteady)
	if secs := unpausedSeconds(h.res.Timeline, from, to); secs > 0 {
		res.SteadyReportsPerS = float64(steadyReports) / secs
		var msgs float64
		for _, l := range res.Links {
			msgs += l.SteadyMessages
		}
		res.SteadyMsgsPerS = msgs / secs
	}
	return res
}

// unpausedSeconds is the wall-clock seconds within [from, to] between consecutive samples
// neither of which was taken in a checkpoint pause.
func unpausedSeconds(tl Timeline, from, to time.Duration) float64 {
	var secs float64
	for i := 1; i < len(tl); i++ {
		a, b := tl[i-1], tl[i]
		if !a.CheckpointPause && !b.CheckpointPause && a.At >= from && b.At <= to {
			secs += (b.At - a.At).Seconds()
		}
	}
	return secs
}

// linkTotals fills l's totals from the link timeline (primary p): the run's, and the steady
// phase's over the intervals between unpaused samples within [from, to].
func (l *LinkSummary) linkTotals(tl []LinkSample, p int, from, to time.Duration) {
	if len(tl) == 0 {
		return
	}
	last := tl[len(tl)-1].Links[p]
	l.SentBytes, l.SentRecords, l.ChangeCells, l.SweepCells = last.SentBytes, last.SentRecords, last.ChangeCells, last.SweepCells
	var pauseBytes, pauseSecs float64
	for i := 1; i < len(tl); i++ {
		a, b := tl[i-1], tl[i]
		la, lb := a.Links[p], b.Links[p]
		l.MaxFreshness = math.Max(l.MaxFreshness, lb.Freshness)
		secs := (b.At - a.At).Seconds()
		if a.Paused && b.Paused {
			pauseBytes += lb.SentBytes - la.SentBytes
			pauseSecs += secs
			continue
		}
		if a.Paused || b.Paused || a.At < from || b.At > to {
			continue
		}
		l.SteadySeconds += secs
		l.SteadyBytes += lb.SentBytes - la.SentBytes
		l.SteadyRecords += lb.SentRecords - la.SentRecords
		l.SteadyCells += (lb.ChangeCells - la.ChangeCells) + (lb.SweepCells - la.SweepCells)
		l.SteadyMessages += lb.Folded - la.Folded
	}
	if l.SteadyMessages > 0 {
		l.BytesPerMessage = l.SteadyBytes / l.SteadyMessages
	}
	if l.SteadyCells > 0 {
		l.BytesPerCell = l.SteadyBytes / l.SteadyCells
	}
	if pauseSecs > 0 {
		l.PauseBytesPerS = pauseBytes / pauseSecs
	}
}

// visibilityBuckets groups the delays of acc (sorted, delays[i] of acc[i]; the unseen last,
// without a delay) by span of acceptance.
func visibilityBuckets(site string, acc []time.Time, delays []time.Duration, begin time.Time, span time.Duration) []VisibilityBucket {
	var out []VisibilityBucket
	for i := 0; i < len(delays); {
		start := acc[i].Sub(begin).Truncate(span)
		j := i
		for j < len(delays) && acc[j].Sub(begin).Truncate(span) == start {
			j++
		}
		v := visibilityStats(delays[i:j], 0)
		out = append(out, VisibilityBucket{Site: site, At: start.Seconds(), Reports: j - i, P99: v.P99})
		i = j
	}
	return out
}

// goals judges the hierarchy's goal: central visibility p99 ≤ 5 s at half the knee (the
// steady phase, held to the scenario's rate).
func (r *hierRun) goals(res *HierarchyResult) []Goal {
	v := res.SteadyVisibility
	met := v.Reports > 0 && v.Unseen == 0 && v.P99 <= 5
	got := fmt.Sprintf("%.2f s (p50 %.2f s, p90 %.2f s; %d reports at %.0f reports/s, %.0f msgs/s)", v.P99, v.P50, v.P90, v.Reports, res.SteadyReportsPerS, res.SteadyMsgsPerS)
	if v.Unseen > 0 {
		got += fmt.Sprintf(", %d never visible", v.Unseen)
	}
	return []Goal{{What: fmt.Sprintf("central visibility (accepted at a primary → counted at %s) p99 in the steady phase (%s; the goal is read at half the knee)", res.Root, steadyLabel(res.RateCap)),
		Want: "≤ 5 s", Got: got, Met: met}}
}

// schemaDB is the database of site code.
func schemaDB(code string) string { return siteAt{code: code}.database() }
