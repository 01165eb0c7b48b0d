package bench

import (
	"fmt"
	"image/color"
	"math"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// A hierarchy run's part of report.md and its plots: the freshness of each link, the central
// visibility delay over the run, and the bytes each link carried.

var linkColours = []color.Color{colBlue, colOrange, colGreen, colVermillion, colSky, colGrey}

// writeHierarchyPlots writes freshness.png, visibility.png and link-bytes.png into dir and
// returns the names written.
func writeHierarchyPlots(dir, title string, hr *HierarchyResult) ([]string, error) {
	if len(hr.Timeline) < 2 {
		return nil, nil
	}
	charts := []struct {
		name string
		make func(string, *HierarchyResult) (*chart, error)
	}{
		{"freshness.png", freshnessChart},
		{"visibility.png", visibilityChart},
		{"link-bytes.png", linkBytesChart},
	}
	if hr.Wave != nil {
		charts = append(charts, hierWaveCharts...)
	}
	var names []string
	for _, c := range charts {
		ch, err := c.make(title, hr)
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

// linkPauses is the link timeline as a Timeline of its pauses, for the shading.
func linkPauses(tl []LinkSample) Timeline {
	out := make(Timeline, len(tl))
	for i, s := range tl {
		out[i] = Sample{At: s.At, CheckpointPause: s.Paused}
	}
	return out
}

func freshnessChart(title string, hr *HierarchyResult) (*chart, error) {
	ch := newChart(title, "freshness per link (statepipe_replicator_freshness_seconds)", "wall clock (s)", "now − watermark at "+hr.Root+" (s)")
	ch.shadePauses(linkPauses(hr.Timeline))
	n := 0
	for p, code := range hr.Primaries {
		var xys plotter.XYs
		for _, s := range hr.Timeline {
			if y := s.Links[p].Freshness; y > 0 && !math.IsInf(y, 0) {
				xys = append(xys, plotter.XY{X: s.At.Seconds(), Y: y})
			}
		}
		n += len(xys)
		if err := ch.series(code+"→"+hr.Root, xys, linkColours[p%len(linkColours)], 5); err != nil {
			return nil, err
		}
	}
	ch.finishWall(n)
	return ch, nil
}

func visibilityChart(title string, hr *HierarchyResult) (*chart, error) {
	ch := newChart(title, "central visibility, p99 per 5 s of acceptance", "report accepted at (wall clock, s)", "accepted → counted at "+hr.Root+" (s)")
	ch.shadePauses(linkPauses(hr.Timeline))
	n := 0
	for p, code := range hr.Primaries {
		var xys plotter.XYs
		for _, b := range hr.VisibilityTimeline {
			if b.Site == code {
				xys = append(xys, plotter.XY{X: b.At, Y: b.P99})
			}
		}
		n += len(xys)
		if err := ch.series(code, xys, linkColours[p%len(linkColours)], 15); err != nil {
			return nil, err
		}
	}
	ch.p.Add(&hLine{y: 5, style: targetStyle()})
	ch.finishWall(n)
	return ch, nil
}

func linkBytesChart(title string, hr *HierarchyResult) (*chart, error) {
	ch := newChart(title, "bytes sent up per link (5 s average)", "wall clock (s)", "bytes / s")
	ch.shadePauses(linkPauses(hr.Timeline))
	tl := hr.Timeline
	n := 0
	for p, code := range hr.Primaries {
		var xys plotter.XYs
		for i := 1; i < len(tl); i++ {
			j := max(0, i-5)
			if dt := (tl[i].At - tl[j].At).Seconds(); dt > 0 {
				xys = append(xys, plotter.XY{X: tl[i].At.Seconds(), Y: (tl[i].Links[p].SentBytes - tl[j].Links[p].SentBytes) / dt})
			}
		}
		n += len(xys)
		if err := ch.series(code+"→"+hr.Root, xys, linkColours[p%len(linkColours)], 5); err != nil {
			return nil, err
		}
	}
	ch.finishWall(n)
	return ch, nil
}

func targetStyle() draw.LineStyle {
	return draw.LineStyle{Color: colGrey, Width: vg.Points(1.2), Dashes: []vg.Length{vg.Points(5), vg.Points(3)}}
}

// hierarchyMarkdown is a hierarchy run's section of report.md.
func hierarchyMarkdown(r *HarnessResult) string {
	hr := r.Hierarchy
	if hr == nil {
		return ""
	}
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p("## Site hierarchy\n\n")
	p("One site process hosts %s and %s below it (run --topology, one listener); %d clients report to each primary (the body's site field picks it). The catalog, the update lists, the collection and the deployments, and the Patch Tuesday drop are imported at %s and reach every primary through the replicator.\n\n",
		hr.Root, strings.Join(hr.Primaries, ", "), hr.ClientsPerPrimary, hr.Root)
	pace := fmt.Sprintf("paced to %.0f reports/s across the primaries (the scenario: %s)", hr.RateCap, r.Description)
	if hr.RateCap == 0 {
		pace = "paced by the rate sweep's steps across the primaries (see the rate sweep above)"
	}
	if hr.Wave == nil {
		p("The load: every client's first scan at once, then the reports %s. The steady phase (%.0f s → %.0f s of the run: from when every first scan was folded to the last report) ran at **%.0f reports/s, %.0f msgs/s**.\n\n",
			pace, hr.SteadyFrom, hr.SteadyTo, hr.SteadyReportsPerS, hr.SteadyMsgsPerS)
	} else {
		p("The load: a rollout wave — every client enrols during the run at its primary and sends its first full scan once enrolled (the rollout wave's section above, and below). There is no steady phase: the central visibility is of every report.\n\n")
	}
	p("### Central visibility: accepted at a primary → counted at %s\n\n", hr.Root)
	p("%s's watermark of each primary (v_hier_origins) was read every %.2f s (%d reads); a report answered 200 at t is visible centrally at the first read whose watermark for its primary is ≥ t. The delay is measured to the read's answer, so it is late by up to one read interval.\n\n", hr.Root, hr.WatermarkEvery, hr.WatermarkReads)
	p("| reports | count | p50 | p90 | p99 | max | never visible |\n|---|---|---|---|---|---|---|\n")
	row := func(what string, v VisibilityStats) {
		p("| %s | %d | %.2f s | %.2f s | %.2f s | %.2f s | %d |\n", what, v.Reports, v.P50, v.P90, v.P99, v.Max, v.Unseen)
	}
	if hr.Wave == nil {
		row(fmt.Sprintf("**steady phase (%s)**", steadyLabel(hr.RateCap)), hr.SteadyVisibility)
	}
	row("all, first-scan storm included", hr.Visibility)
	for _, l := range hr.Links {
		row("all, at "+l.Site, l.Visibility)
	}
	p("\n### Links\n\n")
	p("From each primary's replicator metrics (statepipe_replicator_sent_{bytes,records,cells}_total, labels site and parent). Steady: the unpaused seconds of the steady phase; bytes per folded message divides the bytes sent up by the state messages the primary's projector folded meanwhile.\n\n")
	p("| link | clients | messages acknowledged | bytes sent | records sent | cells sent (change / sweep) | steady: bytes/s | steady: bytes per folded message | steady: bytes per cell | cells held | while paused: bytes/s | worst freshness |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, l := range hr.Links {
		rate := 0.0
		if l.SteadySeconds > 0 {
			rate = l.SteadyBytes / l.SteadySeconds
		}
		p("| %s→%s | %d | %d | %s | %.0f | %.0f / %.0f | %s | **%.1f** | %.1f | %d | %s | %.1f s |\n", l.Site, l.Parent, l.Clients, l.Messages,
			byteSize(l.SentBytes), l.SentRecords, l.ChangeCells, l.SweepCells, byteSize(rate), l.BytesPerMessage, l.BytesPerCell, l.HeldCells, byteSize(l.PauseBytesPerS), l.MaxFreshness)
	}
	for _, l := range hr.Links {
		p("\n%s: %.0f cells sent in the steady phase at %.1f bytes a cell for %.0f state messages folded from %d clients; a full set of its %d cells is about %s.", l.Site,
			l.SteadyCells, l.BytesPerCell, l.SteadyMessages, l.Clients, l.HeldCells, byteSize(float64(l.HeldCells)*l.BytesPerCell))
	}
	p("\n\nA link carries the cells whose counts changed in the last interval (an absolute value each) and, every 5 minutes, a full sweep; its bytes follow the cells changed at a constant size per cell, not the clients behind them. While the run paused at checkpoints (nothing reported) a link carried heartbeats and any sweep that fell due.\n\n")
	p("### Checkpoints\n\nEach checkpoint waits until %s's watermark of every primary, and each primary's own, has passed the moment the last report was answered, then compares every primary's reports (?site=P0x) with its own clients' oracle, and %s's compliance (checked list, and the Patch Tuesday list once imported) with the sum of the primaries' and with the oracle over every client.\n\n", hr.Root, hr.Root)
	p("| checkpoint | watermarks passed after | first comparison after them | other central reports (not deciding) |\n|---|---|---|---|\n")
	for _, c := range hr.Checks {
		wm := "never"
		if c.WatermarkSecs >= 0 {
			wm = fmt.Sprintf("%.1f s", c.WatermarkSecs)
		}
		p("| %s | %s | %s | %s |\n", c.Label, wm, mdCell(c.FirstCompare), mdCell(strings.Join(c.Central, "; ")))
	}
	b.WriteString("\n" + hierWaveMarkdown(r))
	if len(hr.Findings) > 0 {
		p("\n### Findings (the product does not do what it documents)\n\n")
		for _, f := range hr.Findings {
			p("- %s (first at checkpoint %s, seen %d times)\n", f.What, f.First, f.Times)
		}
	}
	p("\n")
	return b.String()
}

// mdCell keeps a table cell on one line.
func mdCell(s string) string { return strings.ReplaceAll(strings.ReplaceAll(s, "|", "\\|"), "\n", " ") }

// byteSize writes a byte count for people: 512 B, 12.3 KiB, 4.5 MiB.
func byteSize(b float64) string {
	switch {
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", b/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1f KiB", b/(1<<10))
	}
	return fmt.Sprintf("%.0f B", b)
}

// steadyLabel names the steady phase of a run paced to rate reports/s (0: a rate sweep).
func steadyLabel(rate float64) string {
	if rate == 0 {
		return "the rate sweep"
	}
	return fmt.Sprintf("%.0f reports/s", rate)
}
