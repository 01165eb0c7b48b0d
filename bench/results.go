package bench

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// WriteResults writes a run's result.json, its plots and report.md into dir.
func WriteResults(dir string, r *HarnessResult) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if len(r.Timeline) > 0 {
		plots, err := WritePlots(dir, r.Scenario, r.Timeline)
		if err != nil {
			return fmt.Errorf("plots: %w", err)
		}
		r.Plots = plots
	}
	if r.Rollout != nil && len(r.Timeline) > 1 {
		plots, err := writeRolloutPlots(dir, r)
		if err != nil {
			return fmt.Errorf("plots: %w", err)
		}
		r.Plots = appendNew(r.Plots, plots...)
	}
	if r.Phased != nil && len(r.Phased.Samples) > 1 {
		plots, err := writePhasedPlots(dir, r)
		if err != nil {
			return fmt.Errorf("plots: %w", err)
		}
		r.Plots = appendNew(r.Plots, plots...)
	}
	if r.Hierarchy != nil {
		plots, err := writeHierarchyPlots(dir, r.Scenario, r.Hierarchy)
		if err != nil {
			return fmt.Errorf("plots: %w", err)
		}
		for _, pl := range plots {
			if !slices.Contains(r.Plots, pl) {
				r.Plots = append(r.Plots, pl)
			}
		}
	}
	b, err := json.MarshalIndent(nanFree(r), "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "result.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "report.md"), []byte(Markdown(r)), 0o644)
}

// nanFree returns r with NaN samples (no observation) as JSON-encodable values: NaN → -1.
func nanFree(r *HarnessResult) *HarnessResult {
	c := *r
	c.Timeline = make(Timeline, len(r.Timeline))
	fix := func(f float64) float64 {
		if math.IsNaN(f) {
			return -1
		}
		return f
	}
	for i, s := range r.Timeline {
		s.P50, s.P90, s.P99, s.CompliantPct = fix(s.P50), fix(s.P90), fix(s.P99), fix(s.CompliantPct)
		s.BacklogSecs = fix(s.BacklogSecs)
		c.Timeline[i] = s
	}
	for _, f := range []*float64{&c.P50Latency, &c.P90Latency, &c.P99Latency} {
		*f = fix(*f)
	}
	return &c
}

// Markdown renders a run as report.md.
func Markdown(r *HarnessResult) string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	verdict := "**every report equalled the oracle**"
	if !r.OracleOK {
		verdict = "**the reports DIFFERED from the oracle**: " + r.OracleError
	}
	p("# %s — %s\n\n", r.Scenario, r.Started.Format("2006-01-02"))
	if r.Description != "" {
		p("%s\n\n", r.Description)
	}
	p("- machine: %s\n- Kafka: %s\n- world: %s\n- result: %s\n", r.Machine, r.Kafka, r.World, verdict)
	if r.Pacing != "" || len(r.SiteArgs) > 0 {
		extra := "none"
		if len(r.SiteArgs) > 0 {
			extra = "`" + strings.Join(r.SiteArgs, " ") + "`"
		}
		p("- pacing: %s; the site's extra flags: %s\n", pacingLabel(r.Pacing), extra)
	}
	p("\n")
	p("| measure | value |\n|---|---|\n")
	p("| state messages | %d in %d reports |\n", r.Messages, r.Reports)
	if r.Rollout != nil {
		p("| enrolment (during the run: the rollout wave) | first attempt → last enrolled %.1f s |\n", r.Rollout.LastEnrolledSecs-r.Rollout.FirstAttemptSecs)
	} else {
		p("| enrolment (not timed) | %.1f s |\n", r.EnrollSeconds)
	}
	p("| first report sent → last acknowledged | %.1f s (%.0f msgs/s) |\n", r.SendSeconds, r.IngestMsgsPerS)
	p("| first report sent → all visible | %.1f s (**%.0f msgs/s end to end**) |\n", r.DurationSeconds, r.E2EMsgsPerS)
	p("| ingest acceptance → visible, all records | p50 %.2f s, p90 %.2f s, p99 %.2f s |\n", r.P50Latency, r.P90Latency, r.P99Latency)
	p("| worst second's p99 (backlog) | %.1f s |\n", r.MaxBacklogSecs)
	p("| simulated events sent late, at most | %s (simulated) |\n", time.Duration(r.MaxSimLag).Truncate(time.Second))
	p("| peak RSS | site %.2f GiB, harness %.2f GiB", gib(r.PeakRSS), gib(r.HarnessPeakRSS))
	if r.BrokerPeakRSS > 0 {
		p(", broker %.2f GiB", gib(r.BrokerPeakRSS))
	}
	p(" |\n\n")
	if len(r.Goals) > 0 {
		p("## Goals (the capacity goals in docs/architecture.md)\n\n| goal | want | got | |\n|---|---|---|---|\n")
		for _, g := range r.Goals {
			mark := "met"
			if !g.Met {
				mark = "**missed**"
			}
			p("| %s | %s | %s | %s |\n", g.What, g.Want, g.Got, mark)
		}
		p("\n")
	}
	if c := r.Ceilings; c != nil {
		p("## Raw ceilings, same data, same machine, same run\n\n")
		p("%d records (%d state messages) as the harness sent them:\n\n", c.Records, c.Messages)
		p("| part | alone | statepipe's stage | ratio |\n|---|---|---|---|\n")
		for _, row := range ceilingRows {
			stage, ratio := "not measured in this run: "+row.unmeasured, "—"
			if st, ok := r.Stages[row.stage]; ok {
				stage = fmt.Sprintf("%.0f msgs/s %s (%.1f s of the run)", st.MsgsPerS, row.how, st.Seconds)
				if v, ok := r.StageRatios[row.ratio]; ok {
					ratio = percent(v)
				}
			}
			p("| %s | %.0f msgs/s | %s | %s |\n", row.part, row.ceiling(c), stage, ratio)
		}
		p("\nA stage's rate is taken only over the seconds in which that stage held the run back, so that it compares with what the bare tool does; a paced run's overall rates are the load it offered. Overall: ingest %.0f msgs/s, end to end %.0f msgs/s. On two cores the stages share the CPU with each other and with the harness, so each ratio is the stage's share of a machine the whole pipeline competes for.\n\n",
			r.IngestMsgsPerS, r.E2EMsgsPerS)
	}
	if len(r.Steps) > 0 {
		p("## Rate sweep\n\nA step is kept up with when ingest acknowledged at least 90 %% of the offered reports and the lag grew by less than two seconds of them.\n\n")
		p("| reports/s offered | reports/s acknowledged | messages/s acknowledged | lag (records) at start → end | worst p99 | kept up |\n|---|---|---|---|---|---|\n")
		for _, s := range r.Steps {
			p("| %.0f | %.0f | %.0f | %d → %d | %.2f s | %v |\n", s.Rate, s.AckedReportsPerS, s.AckedMsgsPerS, s.LagStart, s.LagEnd, s.P99, s.Sustained)
		}
		p("\n")
	}
	if len(r.Checkpoints) > 0 {
		p("## Oracle checkpoints\n\n| simulated time | messages | equal after | |\n|---|---|---|---|\n")
		for _, c := range r.Checkpoints {
			ok := "equal"
			if !c.OK {
				ok = "**differs**: " + c.FirstDiffers
			}
			p("| %s | %d | %.1f s | %s |\n", time.Duration(c.SimTime).Truncate(time.Second), c.Acked, c.CatchUpSecs, ok)
		}
		p("\n")
	}
	b.WriteString(phasedMarkdown(r))
	b.WriteString(rolloutMarkdown(r))
	b.WriteString(hierarchyMarkdown(r))
	for _, pl := range r.Plots {
		p("![%s](%s)\n\n", strings.TrimSuffix(pl, ".png"), pl)
	}
	return b.String()
}

func gib(b int64) float64 { return float64(b) / (1 << 30) }

// percent writes a share with the digits it needs to be more than a rounded 0 (0.43 %, 2.9 %,
// 66 %).
func percent(v float64) string {
	switch pct := 100 * v; {
	case pct >= 10:
		return fmt.Sprintf("%.0f %%", pct)
	case pct >= 1:
		return fmt.Sprintf("%.1f %%", pct)
	default:
		return fmt.Sprintf("%.2f %%", pct)
	}
}

// ReadResult reads a result.json back (no-observation values, written as -1, become NaN), so
// plots and report.md can be rendered again.
func ReadResult(path string) (*HarnessResult, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r HarnessResult
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", path, err)
	}
	nan := func(f float64) float64 {
		if f < 0 {
			return math.NaN()
		}
		return f
	}
	for i := range r.Timeline {
		s := &r.Timeline[i]
		s.P50, s.P90, s.P99, s.CompliantPct = nan(s.P50), nan(s.P90), nan(s.P99), nan(s.CompliantPct)
		s.BacklogSecs = nan(s.BacklogSecs)
	}
	return &r, nil
}
