package bench

// Plots and the comparison of rollout waves: each run's backlog in seconds against its target
// (backlogTarget), its admitted and refused enrolments per second and its enrolled clients
// (wall clock from the run's start; a wave's final check is not shaded: it is the catch-up)
// (writeRolloutPlots), and two runs side by side — pacing off | pacing on — on shared axes
// (CompareRollouts), drawn as plots.go draws: what was measured, nothing smoothed.

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// rolloutCharts are the rows of a rollout's plots: file name and builder.
var rolloutCharts = []struct {
	name string
	make func(title string, r *HarnessResult) (*chart, error)
}{
	{"rollout-backlog.png", func(title string, r *HarnessResult) (*chart, error) {
		return backlogSecondsChart(title, r.Timeline, r.Rollout.TargetSecs)
	}},
	{"rollout-enrolment.png", func(title string, r *HarnessResult) (*chart, error) {
		// With pacing off the controller's rate is the static limit, 0 for none: not drawn.
		return enrolRateChart(title, r.Timeline, r.Pacing != "off")
	}},
	{"rollout-refused.png", func(title string, r *HarnessResult) (*chart, error) { return refusedChart(title, r.Timeline) }},
	{"rollout-enrolled.png", func(title string, r *HarnessResult) (*chart, error) { return enrolledChart(title, r.Timeline) }},
}

// writeRolloutPlots writes a rollout run's charts into dir and returns their names.
func writeRolloutPlots(dir string, r *HarnessResult) ([]string, error) {
	var names []string
	for _, c := range rolloutCharts {
		ch, err := c.make(r.Scenario+" (pacing "+pacingLabel(r.Pacing)+")", r)
		if err != nil {
			return nil, fmt.Errorf("cannot build plot (%s): %w", c.name, err)
		}
		if err := ch.save(filepath.Join(dir, c.name)); err != nil {
			return nil, err
		}
		names = append(names, c.name)
	}
	return names, nil
}

// appendNew appends the names not in list already.
func appendNew(list []string, names ...string) []string {
	for _, n := range names {
		if !slices.Contains(list, n) {
			list = append(list, n)
		}
	}
	return list
}

// targetLine is the dashed horizontal line of a target.
func targetLine(y float64) *hLine {
	return &hLine{y: y, style: draw.LineStyle{Color: colGrey, Width: vg.Points(1.2), Dashes: []vg.Length{vg.Points(5), vg.Points(3)}}}
}

// backlogSecondsChart draws the backlog in seconds (backlogSeconds) against the target. A
// second without commits has no p99: the line breaks across a gap of a few seconds.
func backlogSecondsChart(title string, tl Timeline, target float64) (*chart, error) {
	ch := newChart(title, "backlog", "wall clock (s)", "backlog (s)")
	xys := wallSeries(tl, func(s Sample) float64 { return s.BacklogSecs })
	if err := ch.series("worst of pacing lag, p99 delay", xys, colVermillion, 5*medianStep(tl)); err != nil {
		return nil, err
	}
	tgt := targetLine(target)
	ch.p.Add(tgt)
	ch.legend(fmt.Sprintf("%.0f s target", target), tgt)
	ch.finishWall(len(xys))
	return ch, nil
}

// enrolRateChart draws the enrolments admitted per second and, with pacingRate, the pacing
// controller's rate when the site has one.
func enrolRateChart(title string, tl Timeline, pacingRate bool) (*chart, error) {
	ch := newChart(title, "admitted enrolments", "wall clock (s)", "enrolments / s")
	admitted := wallSeries(tl, func(s Sample) float64 { return s.EnrolPerS })
	if err := ch.series("admitted", admitted, colBlue, math.Inf(1)); err != nil {
		return nil, err
	}
	n := len(admitted)
	if pacingRate && slices.ContainsFunc(tl, func(s Sample) bool { return s.PacingRate != nil }) {
		rate := wallSeries(tl, func(s Sample) float64 {
			if s.PacingRate == nil {
				return math.NaN()
			}
			return *s.PacingRate
		})
		if err := ch.series("pacing rate", rate, colOrange, 5*medianStep(tl)); err != nil {
			return nil, err
		}
		n += len(rate)
	}
	ch.finishWall(n)
	return ch, nil
}

// refusedChart draws the enrolment attempts answered 429 per second: with pacing, every client
// waiting retries as its Retry-After says, so they run to many times the admitted rate.
func refusedChart(title string, tl Timeline) (*chart, error) {
	ch := newChart(title, "refused enrolments", "wall clock (s)", "429s / s")
	refused := wallSeries(tl, func(s Sample) float64 { return s.RefusedPerS })
	if err := ch.series("refused (429)", refused, colVermillion, math.Inf(1)); err != nil {
		return nil, err
	}
	ch.finishWall(len(refused))
	return ch, nil
}

// enrolledChart draws the clients enrolled so far.
func enrolledChart(title string, tl Timeline) (*chart, error) {
	ch := newChart(title, "enrolled clients", "wall clock (s)", "clients")
	ch.p.Y.Tick.Marker = niceTicker{si: true, whole: true}
	xys := wallSeries(tl, func(s Sample) float64 { return float64(s.Enrolled) })
	if err := ch.series("", xys, colGreen, math.Inf(1)); err != nil {
		return nil, err
	}
	ch.finishWall(len(xys))
	return ch, nil
}

// Geometry of a comparison: one tile per chart, two columns.
const (
	compareTileWidth  = 17 * vg.Centimeter
	compareTileHeight = 7 * vg.Centimeter
)

// CompareRollouts compares two rollout runs (result.json read back, the directories they were
// read from in from) into dir: compare.png, the runs' charts side by side on shared axes —
// the run without pacing on the left, with pacing on the right — and report.md, a table of the
// two. It returns the files' names.
func CompareRollouts(dir string, a, b *HarnessResult, from [2]string) ([]string, error) {
	for i, r := range []*HarnessResult{a, b} {
		if r.Rollout == nil {
			return nil, fmt.Errorf("%s is not a rollout wave's run (its result.json has no rollout)", from[i])
		}
		if len(r.Timeline) < 2 {
			return nil, fmt.Errorf("%s: cannot plot a timeline of %d samples", from[i], len(r.Timeline))
		}
	}
	if a.Pacing == "on" && b.Pacing != "on" {
		a, b, from = b, a, [2]string{from[1], from[0]}
	}
	runs := [2]*HarnessResult{a, b}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	img := vgimg.NewWith(vgimg.UseWH(2*compareTileWidth, vg.Length(len(rolloutCharts))*compareTileHeight), vgimg.UseDPI(plotDPI))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: len(rolloutCharts), Cols: 2, PadX: vg.Points(4), PadY: vg.Points(4)}
	charts := make([][2]*chart, len(rolloutCharts))
	var xMax float64
	var legend vg.Length
	for row, c := range rolloutCharts {
		for col, r := range runs {
			ch, err := c.make(columnTitle(r, from[col]), r)
			if err != nil {
				return nil, fmt.Errorf("cannot build plot (%s): %w", c.name, err)
			}
			charts[row][col] = ch
			xMax = math.Max(xMax, ch.p.X.Max)
			legend = max(legend, ch.legendWidth(tiles.At(dc, col, row)))
		}
	}
	// Shared axes — one time axis for every chart, one y axis per row — and one legend width,
	// so the two columns read against each other and the rows line up.
	for row, pair := range charts {
		yMax := math.Max(pair[0].p.Y.Max, pair[1].p.Y.Max)
		for col, ch := range pair {
			ch.p.X.Min, ch.p.X.Max = 0, xMax
			ch.p.Y.Min, ch.p.Y.Max = math.Min(ch.p.Y.Min, 0), yMax
			ch.drawOnLegend(tiles.At(dc, col, row), legend)
		}
	}
	if err := savePNG(filepath.Join(dir, "compare.png"), img); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "report.md"), []byte(compareMarkdown(dir, runs, from)), 0o644); err != nil {
		return nil, err
	}
	return []string{"compare.png", "report.md"}, nil
}

// columnTitle names a run's column: its pacing, and its directory when the two runs share one.
func columnTitle(r *HarnessResult, from string) string {
	return fmt.Sprintf("pacing %s (%s)", pacingLabel(r.Pacing), filepath.Base(filepath.Clean(from)))
}

// compareMarkdown is the comparison's report.md.
func compareMarkdown(dir string, runs [2]*HarnessResult, from [2]string) string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	a := runs[0]
	p("# Rollout wave: pacing %s | pacing %s — %s\n\n", pacingLabel(runs[0].Pacing), pacingLabel(runs[1].Pacing), a.Scenario)
	if a.Description != "" {
		p("%s\n\n", a.Description)
	}
	p("- machine: %s\n", a.Machine)
	for i, r := range runs {
		link := from[i]
		if rel, err := filepath.Rel(dir, from[i]); err == nil {
			link = rel
		}
		extra := ""
		if len(r.SiteArgs) > 0 {
			extra = ", site flags `" + strings.Join(r.SiteArgs, " ") + "`"
		}
		p("- pacing %s: [%s](%s/report.md), started %s; Kafka: %s%s\n", pacingLabel(r.Pacing), filepath.Base(filepath.Clean(from[i])), link, r.Started.Format("2006-01-02 15:04 UTC"), r.Kafka, extra)
	}
	p("\n| measure | pacing %s | pacing %s |\n|---|---|---|\n", pacingLabel(runs[0].Pacing), pacingLabel(runs[1].Pacing))
	for _, row := range rolloutRows {
		p("| %s | %s | %s |\n", row.what, row.value(runs[0]), row.value(runs[1]))
	}
	// Each run's bound is its own; a pacing that keeps the projector below saturation has a
	// lower rate of its own, or none: the faster of the two is the stricter test of both.
	if best := math.Max(runs[0].Rollout.FoldMsgsPerS, runs[1].Rollout.FoldMsgsPerS); best > 0 {
		cell := func(r *HarnessResult) string {
			bound := float64(r.Messages) / best
			return fmt.Sprintf("%.2f (bound %.1f s)", r.Rollout.CompletionSecs/bound, bound)
		}
		p("| completion / bound at the faster of the two fold rates (%.0f msgs/s) | %s | %s |\n", best, cell(runs[0]), cell(runs[1]))
	}
	p("\n%s The last row divides each run's completion by the bound at the faster of the two runs' fold rates: a pacing that keeps the projector below saturation measures a lower rate of its own, or none.\n\n", foldRule)
	p("Rows of the plot: the backlog in seconds against the backlog target (dashed); the enrolments admitted per second, with the pacing controller's rate when pacing is on; the enrolment attempts refused (429) per second; the clients enrolled. Each row shares its axes across the two columns, and every chart the time axis.\n\n")
	p("![rollout wave: pacing %s | pacing %s](compare.png)\n", pacingLabel(runs[0].Pacing), pacingLabel(runs[1].Pacing))
	return b.String()
}
