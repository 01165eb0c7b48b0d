package bench

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"strings"
	"time"

	"github.com/statepipe/statepipe/schema"
)

// Checking and summing up: the checkpoints against the oracle, and what a run measured.

// checkpoint pauses simulated time, lets the reports in flight finish and waits until the
// site's reports equal the oracle (or CheckTimeout passes), and adds the outcome to the
// result's checkpoints.
func (h *harness) checkpoint(ctx context.Context, label string) Checkpoint {
	h.clock.pause()
	defer h.clock.resume()
	h.inFlight.Wait()
	cp := Checkpoint{SimTime: Duration(h.clock.now()), Acked: h.stats.messages()}
	compare := func() error {
		return h.world.check(ctx, h.site, h.stats.messages(), h.stats.dropDone.Load())
	}
	if h.hier != nil {
		compare = h.hier.checker(ctx, h, label)
	}
	h.awaitOracle(ctx, &cp, label, compare)
	sim := time.Duration(cp.SimTime).Truncate(time.Second)
	if cp.OK {
		h.out.logf("checkpoint %s (sim %s): reports equal the oracle %.1fs after the pause", label, sim, cp.CatchUpSecs)
	} else {
		h.out.logf("checkpoint %s (sim %s): NOT EQUAL to the oracle after %.0fs: %s", label, sim, cp.CatchUpSecs, cp.FirstDiffers)
	}
	h.res.Checkpoints = append(h.res.Checkpoints, cp)
	return cp
}

// awaitOracle calls compare every pollEvery until it returns nil, CheckTimeout has passed or
// ctx is done, and records in cp how long it took and whether the reports became equal (or
// the last difference). A wait past 10 s is reported every 30 s.
func (h *harness) awaitOracle(ctx context.Context, cp *Checkpoint, label string, compare func() error) {
	start := time.Now()
	deadline := start.Add(h.cfg.CheckTimeout)
	var lastSaid time.Time
	for {
		err := compare()
		if err == nil {
			cp.OK, cp.CatchUpSecs, cp.FirstDiffers = true, time.Since(start).Seconds(), ""
			return
		}
		if time.Since(start) > 10*time.Second && time.Since(lastSaid) > 30*time.Second {
			h.out.logf("checkpoint %s: not equal yet after %.0fs: %v", label, time.Since(start).Seconds(), err)
			lastSaid = time.Now()
		}
		cp.FirstDiffers = err.Error()
		if time.Now().After(deadline) || ctx.Err() != nil {
			cp.CatchUpSecs = time.Since(start).Seconds()
			return
		}
		time.Sleep(h.pollEvery)
	}
}

// summarise completes the result once the run is over: its totals, rates and peaks, the
// latencies and stage rates from the site's metrics, the raw ceilings when asked for, and
// the goals. checked is the time from the run's start to the end of the final checkpoint.
func (h *harness) summarise(ctx context.Context, checked time.Duration) error {
	r := h.res
	r.Messages = h.stats.messages()
	r.Reports = h.stats.reports.Load()
	r.summarise(checked)
	totals, err := h.site.projectorTotals(ctx)
	if err == nil {
		r.P50Latency, r.P90Latency, r.P99Latency = totals.visible.quantile(.5), totals.visible.quantile(.9), totals.visible.quantile(.99)
	}
	r.PeakRSS = ProcStatus(h.site.pid(), "VmHWM")
	r.HarnessPeakRSS = max(r.HarnessPeakRSS, ProcStatus(os.Getpid(), "VmHWM"))
	r.Stages = stageRates(r.Timeline, h.sc.Concurrency, totals)
	if h.cfg.Ceilings != nil && len(h.kept) > 0 {
		if err := h.ceilings(ctx); err != nil {
			return fmt.Errorf("ceilings: %w", err)
		}
	}
	r.Goals = goals(r)
	if h.phased != nil {
		h.phased.sample(ctx, time.Since(h.begin), h.clock.now()) // the releases the last sample missed
		r.Phased = h.phased.result()
		r.Goals = append(phasedGoals(r.Phased), r.Goals...)
	}
	if h.wave != nil {
		r.Rollout = h.rolloutResult(checked)
		r.EnrollSeconds = r.Rollout.LastEnrolledSecs - r.Rollout.FirstAttemptSecs
		r.Goals = append(rolloutGoals(r.Rollout), r.Goals...)
	}
	return nil
}

// summarise derives what follows from the recorded counters, checkpoints and timeline: the
// time until every message was visible, the oracle's verdict, the ingest and end-to-end rates,
// the worst backlog and the peaks of memory. checked is the time from the run's start to the
// end of the final checkpoint.
func (r *HarnessResult) summarise(checked time.Duration) {
	// Visible: the first sample whose folded count reached every acknowledged message (the
	// oracle check's own queries are not part of the run); the check's end otherwise.
	r.DurationSeconds = checked.Seconds()
	for _, s := range r.Timeline {
		if s.Folded >= r.Messages {
			r.DurationSeconds = s.At.Seconds()
			break
		}
	}
	r.OracleOK, r.OracleError = true, ""
	for _, cp := range r.Checkpoints {
		if !cp.OK {
			r.OracleOK, r.OracleError = false, cp.FirstDiffers
			break
		}
	}
	if r.SendSeconds > 0 {
		r.IngestMsgsPerS = float64(r.Messages) / r.SendSeconds
	}
	if r.DurationSeconds > 0 {
		r.E2EMsgsPerS = float64(r.Messages) / r.DurationSeconds
	}
	for _, s := range r.Timeline {
		if !math.IsNaN(s.P99) {
			r.MaxBacklogSecs = math.Max(r.MaxBacklogSecs, s.P99)
		}
		r.HarnessPeakRSS = max(r.HarnessPeakRSS, s.HarnessRSS)
		r.BrokerPeakRSS = max(r.BrokerPeakRSS, s.BrokerRSS)
	}
}

// Stages of HarnessResult.Stages.
const (
	stageIngest    = "ingest"           // ingest → Kafka: acknowledging reports
	stageProjector = "projector"        // Kafka → projector: folding
	stageInsert    = "projector_insert" // projector → engine: its inserts alone
)

// ceilingRows pairs each raw ceiling with statepipe's stage that does the same work: the rows
// of report.md's ceilings table and the stage ratios.
var ceilingRows = []struct {
	part       string // the ceiling, and where it stands in the pipeline
	ratio      string // its key in HarnessResult.StageRatios
	stage      string // statepipe's stage, its key in HarnessResult.Stages
	how        string // how the stage's rate was taken
	unmeasured string // why the stage's rate may be missing
	ceiling    func(*Ceilings) float64
}{
	{"kafka-go produce, acks=all (ingest → Kafka)", "ingest_vs_kafka_produce", stageIngest,
		"acknowledged by ingest while every sender was busy", "ingest was never kept busy for a whole second",
		func(c *Ceilings) float64 { return c.ProduceMsgsPerS }},
	{"kafka-go consume (Kafka → projector)", "projector_vs_kafka_consume", stageProjector,
		"folded by the projector while it had a backlog", "the projector was never a second behind",
		func(c *Ceilings) float64 { return c.ConsumeMsgsPerS }},
	{"bulk insert of the folded rows (projector → engine)", "projector_vs_engine_insert", stageInsert,
		"folded per second inside the projector's inserts", "the site's insert metrics could not be read",
		func(c *Ceilings) float64 { return c.InsertMsgsPerS }},
	{"bulk insert of the current state alone: the least any design writes (the engine's cost)", "projector_vs_min_insert", stageInsert,
		"folded per second inside the projector's inserts", "the site's insert metrics could not be read",
		func(c *Ceilings) float64 { return c.MinInsertMsgsPerS }},
}

// projectorTotals are the site's projector counters at the end of a run.
type projectorTotals struct {
	visible       histogram // ingest acceptance → committed, every record
	messages      float64   // state messages folded and committed
	insertSeconds float64   // time spent inside its inserts (every table)
}

// stageRates measures statepipe's own rate at each stage while that stage was what held the
// run back, so that it compares with the stage's raw ceiling (a paced run's overall rates are
// the load it offered, not what a stage can do):
//
//   - ingest: messages acknowledged over the seconds that began and ended with every one of
//     the harness's concurrency senders busy (that many reports handed over and unanswered);
//   - projector: messages folded over the seconds that began with at least as many records
//     waiting (its lag, as the site last read it) as it folded in them, and ended with some
//     still waiting: it never waited for work;
//   - projector_insert: messages folded per second spent inside the projector's inserts.
//
// A stage never held at capacity is left out: not measured in this run.
func stageRates(tl Timeline, concurrency int, t projectorTotals) map[string]StageRate {
	var ingestMsgs, foldMsgs int64
	var ingestSecs, foldSecs float64
	for i := 1; i < len(tl); i++ {
		a, b := tl[i-1], tl[i]
		secs := (b.At - a.At).Seconds()
		if secs <= 0 {
			continue
		}
		if concurrency > 0 && a.InFlight >= int64(concurrency) && b.InFlight >= int64(concurrency) {
			ingestMsgs += b.Acked - a.Acked
			ingestSecs += secs
		}
		if records := b.FoldedRecords - a.FoldedRecords; records > 0 && a.LagRecords >= records && b.LagRecords > 0 {
			foldMsgs += b.Folded - a.Folded
			foldSecs += secs
		}
	}
	out := map[string]StageRate{}
	add := func(stage string, msgs, secs float64) {
		if msgs > 0 && secs > 0 {
			out[stage] = StageRate{MsgsPerS: msgs / secs, Seconds: secs}
		}
	}
	add(stageIngest, float64(ingestMsgs), ingestSecs)
	add(stageProjector, float64(foldMsgs), foldSecs)
	add(stageInsert, t.messages, t.insertSeconds)
	return out
}

// ceilings measures the raw ceilings with the reports kept as they were sent, on what
// HarnessConfig.Ceilings opens against the site's brokers, and sets the stage ratios.
func (h *harness) ceilings(ctx context.Context) (err error) {
	h.out.logf("raw ceilings with the first %d reports (%d messages) as sent", len(h.kept), min(h.stats.kept.Load(), h.cfg.SampleMessages))
	deps, err := h.cfg.Ceilings(ctx, strings.Split(h.site.brokers, ","))
	if err != nil {
		return err
	}
	if deps.Close != nil {
		defer func() {
			if cerr := deps.Close(); cerr != nil && err == nil {
				err = cerr
			}
		}()
	}
	cfg := CeilingsConfig{Kafka: deps.Kafka, Store: deps.Store, Progress: h.out}
	for _, r := range h.kept {
		var b bytes.Buffer
		if err := schema.EncodeReport(&b, r); err != nil {
			return err
		}
		cfg.Values = append(cfg.Values, b.Bytes())
		cfg.Keys = append(cfg.Keys, []byte(r.Client))
	}
	c, err := MeasureCeilings(ctx, cfg)
	if err != nil {
		return err
	}
	h.res.Ceilings = c
	h.res.stageRatios()
	return nil
}

// stageRatios sets each stage's rate as a share of its raw ceiling where both were measured,
// and the end-to-end rate's share of the slowest ceiling.
func (r *HarnessResult) stageRatios() {
	c := r.Ceilings
	if r.StageRatios == nil {
		r.StageRatios = map[string]float64{}
	}
	for _, row := range ceilingRows {
		if st, ok := r.Stages[row.stage]; ok && row.ceiling(c) > 0 {
			r.StageRatios[row.ratio] = st.MsgsPerS / row.ceiling(c)
		}
	}
	if slowest := min(c.ProduceMsgsPerS, c.ConsumeMsgsPerS, c.InsertMsgsPerS); slowest > 0 {
		r.StageRatios["e2e_vs_slowest_ceiling"] = r.E2EMsgsPerS / slowest
	}
}

// goals compares a run with DESIGN §5. Throughput and stage efficiency are judged on the
// storm (all load at once: what the site can do) and the knee of a sweep; a scenario paced by
// simulated time offers far less, and its throughput is only shown.
func goals(r *HarnessResult) []Goal {
	var g []Goal
	add := func(what, want, got string, met bool) { g = append(g, Goal{what, want, got, met}) }
	switch {
	case r.Scenario == "storm":
		add("initial-scan storm visible in the compliance report", "≤ 3 min", fmt.Sprintf("%.0f s", r.DurationSeconds), r.DurationSeconds <= 180)
		add("peak RSS of the site", "≤ 6 GiB", fmt.Sprintf("%.2f GiB", float64(r.PeakRSS)/(1<<30)), r.PeakRSS <= 6<<30)
		add("end-to-end state messages/s", "≥ 200,000", fmt.Sprintf("%.0f", r.E2EMsgsPerS), r.E2EMsgsPerS >= 200000)
		for _, k := range []string{"ingest_vs_kafka_produce", "projector_vs_kafka_consume", "projector_vs_engine_insert"} {
			if v, ok := r.StageRatios[k]; ok {
				add("stage efficiency "+k, "≥ 50 % of its raw ceiling", percent(v), v >= .5)
			}
		}
	case len(r.Steps) > 0:
		// The knee in reports/s: a report's size is the scenario's, and the steady sweep's
		// goal is 2,000 reports/s of 31-message deltas (about ingest's own ceiling of signed
		// reports on two cores).
		knee, half := kneeOf(r.Steps)
		got := "no step kept up with"
		if knee != nil {
			got = fmt.Sprintf("%.0f reports/s (%.0f msgs/s)", knee.AckedReportsPerS, knee.AckedMsgsPerS)
		}
		add("sustained reports/s (the knee)", "≥ 2,000", got, knee != nil && knee.AckedReportsPerS >= 2000)
		if half != nil {
			add(fmt.Sprintf("p99 ingest → visible at about half the knee (%.0f reports/s)", half.Rate), "≤ 2 s", fmt.Sprintf("%.2f s", half.P99), half.P99 <= 2)
		}
	}
	add("every report equals the oracle", "yes", fmt.Sprint(r.OracleOK), r.OracleOK)
	return g
}

// kneeOf returns the last step of the sweep the site kept up with (nil: none), and the kept
// step nearest half of it in reports/s.
func kneeOf(steps []RateStep) (knee, half *RateStep) {
	for i := range steps {
		if !steps[i].Sustained {
			break
		}
		knee = &steps[i]
	}
	if knee == nil {
		return nil, nil
	}
	for i := range steps {
		if steps[i].Sustained && (half == nil || math.Abs(steps[i].AckedReportsPerS-knee.AckedReportsPerS/2) < math.Abs(half.AckedReportsPerS-knee.AckedReportsPerS/2)) {
			half = &steps[i]
		}
	}
	return knee, half
}

// sweepStep summarises the samples of the last step of a rate sweep. A step is kept up with
// when ingest acknowledged at least 90 % of the offered reports and the lag grew by less than
// two seconds of them.
func sweepStep(tl Timeline, r float64, lagStart int64) RateStep {
	st := RateStep{Rate: r, LagStart: lagStart}
	var first, last *Sample
	for i := len(tl) - 1; i >= 0 && tl[i].Rate == r; i-- {
		if last == nil {
			last = &tl[i]
		}
		first = &tl[i]
		if !math.IsNaN(tl[i].P99) {
			st.P99 = math.Max(st.P99, tl[i].P99)
		}
	}
	if first != nil && last != nil && last.At > first.At {
		secs := (last.At - first.At).Seconds()
		st.AckedMsgsPerS = float64(last.Acked-first.Acked) / secs
		st.AckedReportsPerS = float64(last.Reports-first.Reports) / secs
		st.LagEnd = last.LagRecords
	}
	st.Sustained = st.AckedReportsPerS >= .9*r && st.LagEnd-lagStart <= int64(2*r)
	return st
}

func nanZero(f float64) float64 {
	if math.IsNaN(f) {
		return 0
	}
	return f
}
