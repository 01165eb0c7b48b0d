package bench

// Plots of a run's phased deployments (phased.go), per deployment: each phase's members
// compliant over the wall clock — the oracle's truth as acknowledged, and the site's view as
// polled — against the criterion, with the site's release of each phase and the moment each
// criterion first held on the oracle marked; and the clients of each phase that learnt of its
// release and began enforcing it. Drawn as plots.go draws: what was measured, nothing smoothed.

import (
	"fmt"
	"image/color"
	"maps"
	"math"
	"path/filepath"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// phaseColours are the phases' colours, in order (then again).
var phaseColours = []color.RGBA{colBlue, colOrange, colGreen, colVermillion, colSky, colGrey}

func phaseColour(i int) color.RGBA { return phaseColours[i%len(phaseColours)] }

// writePhasedPlots writes each phased deployment's charts into dir and returns their names.
func writePhasedPlots(dir string, r *HarnessResult) ([]string, error) {
	var names []string
	for d := range r.Phased.Deployments {
		for _, c := range []struct {
			name string
			make func(string, *PhasedResult, int) (*chart, error)
		}{{"compliance", phasedComplianceChart}, {"enforcement", phasedEnforcementChart}} {
			ch, err := c.make(r.Scenario, r.Phased, d)
			if err != nil {
				return nil, fmt.Errorf("cannot build plot (phased %s): %w", c.name, err)
			}
			name := fmt.Sprintf("phased-%s-%s.png", r.Phased.Deployments[d].ID, c.name)
			if err := ch.save(filepath.Join(dir, name)); err != nil {
				return nil, err
			}
			names = append(names, name)
		}
	}
	return names, nil
}

// phasedComplianceChart draws deployment d's phases: % of members compliant (oracle solid, the
// site's view dashed), the criterion, each phase's release (a vertical line in its colour) and
// the moment its criterion first held on the oracle (a circle).
func phasedComplianceChart(title string, pr *PhasedResult, d int) (*chart, error) {
	dep := pr.Deployments[d]
	ch := newChart(title, dep.ID+": phases compliant", "wall clock (s)", "members compliant (%)")
	step := phasedMedianStep(pr.Samples)
	criteria := map[float64]bool{}
	n := 0
	for i, ph := range dep.Phases {
		col := phaseColour(i)
		oracle := phasedSeries(pr.Samples, d, i, func(p PhasePoint) float64 {
			if ph.Members == 0 {
				return math.NaN()
			}
			return 100 * float64(p.Compliant) / float64(ph.Members)
		})
		if err := ch.series(fmt.Sprintf("phase %d %s", ph.Phase, ph.Name), oracle, col, 5*step); err != nil {
			return nil, err
		}
		site := phasedSeries(pr.Samples, d, i, func(p PhasePoint) float64 {
			if p.SitePct < 0 {
				return math.NaN()
			}
			return p.SitePct
		})
		if len(site) > 1 {
			l, err := plotter.NewLine(site)
			if err != nil {
				return nil, err
			}
			l.LineStyle = draw.LineStyle{Color: col, Width: vg.Points(0.8), Dashes: []vg.Length{vg.Points(2), vg.Points(2)}}
			ch.p.Add(l)
		}
		n += len(oracle)
		criteria[ph.Criterion] = true
		if c := ph.CriterionHeld; c != nil {
			sc, err := plotter.NewScatter(plotter.XYs{{X: c.Secs, Y: c.Pct}})
			if err != nil {
				return nil, err
			}
			sc.GlyphStyle = draw.GlyphStyle{Color: col, Radius: vg.Points(4), Shape: draw.RingGlyph{}}
			ch.p.Add(sc)
		}
	}
	for _, c := range slices.Sorted(maps.Keys(criteria)) {
		tgt := targetLine(c)
		ch.p.Add(tgt)
		ch.legend(fmt.Sprintf("criterion %g %%", c), tgt)
	}
	ch.legend("site's view (polled)", &plotter.Line{LineStyle: draw.LineStyle{Color: colGrey, Width: vg.Points(0.8), Dashes: []vg.Length{vg.Points(2), vg.Points(2)}}})
	ring := &plotter.Scatter{GlyphStyle: draw.GlyphStyle{Color: colGrey, Radius: vg.Points(4), Shape: draw.RingGlyph{}}}
	ch.legend("criterion first held (oracle)", ring)
	addReleases(ch, dep)
	ch.finishWall(n)
	ch.p.Y.Min, ch.p.Y.Max = 0, 100
	return ch, nil
}

// phasedEnforcementChart draws deployment d's clients, per phase, that learnt of its release
// and began enforcing it, with the releases.
func phasedEnforcementChart(title string, pr *PhasedResult, d int) (*chart, error) {
	dep := pr.Deployments[d]
	ch := newChart(title, dep.ID+": enforcement started", "wall clock (s)", "clients enforcing")
	ch.p.Y.Tick.Marker = niceTicker{si: true, whole: true}
	step := phasedMedianStep(pr.Samples)
	n := 0
	for i, ph := range dep.Phases {
		xys := phasedSeries(pr.Samples, d, i, func(p PhasePoint) float64 { return float64(p.Enforced) })
		if err := ch.series(fmt.Sprintf("phase %d %s (%d members)", ph.Phase, ph.Name, ph.Members), xys, phaseColour(i), 5*step); err != nil {
			return nil, err
		}
		n += len(xys)
	}
	addReleases(ch, dep)
	ch.finishWall(n)
	return ch, nil
}

// addReleases marks each phase's release (its released_at) as a dashed vertical line in its
// colour; one released before the run began (at the import) is drawn at 0.
func addReleases(ch *chart, dep PhasedDeployment) {
	for i, ph := range dep.Phases {
		if ph.ReleasedSecs == nil {
			continue
		}
		v := &vLine{x: math.Max(*ph.ReleasedSecs, 0), style: draw.LineStyle{Color: phaseColour(i), Width: vg.Points(1.2), Dashes: []vg.Length{vg.Points(6), vg.Points(3)}}}
		ch.p.Add(v)
		label := fmt.Sprintf("phase %d released (%.1f s)", ph.Phase, *ph.ReleasedSecs)
		if *ph.ReleasedSecs < 0 {
			label = fmt.Sprintf("phase %d released (at the import)", ph.Phase)
		}
		ch.legend(label, v)
	}
}

// phasedSeries is one phase's values over the samples (NaN left out).
func phasedSeries(samples []PhasedSample, d, phase int, f func(PhasePoint) float64) plotter.XYs {
	var xys plotter.XYs
	for _, s := range samples {
		if d >= len(s.Deployments) || phase >= len(s.Deployments[d].Phases) {
			continue
		}
		if y := f(s.Deployments[d].Phases[phase]); !math.IsNaN(y) && !math.IsInf(y, 0) {
			xys = append(xys, plotter.XY{X: s.At.Seconds(), Y: y})
		}
	}
	return xys
}

func phasedMedianStep(samples []PhasedSample) float64 {
	tl := make(Timeline, len(samples))
	for i, s := range samples {
		tl[i].At = s.At
	}
	return medianStep(tl)
}

// vLine is a vertical line across the whole data area at x; its data range holds x only.
type vLine struct {
	x     float64
	style draw.LineStyle
}

func (v *vLine) Plot(c draw.Canvas, p *plot.Plot) {
	trX, _ := p.Transforms(&c)
	x := trX(v.x)
	if x < c.Min.X || x > c.Max.X {
		return
	}
	c.StrokeLine2(v.style, x, c.Min.Y, x, c.Max.Y)
}

func (v *vLine) DataRange() (xmin, xmax, ymin, ymax float64) {
	return v.x, v.x, math.Inf(1), math.Inf(-1)
}

func (v *vLine) Thumbnail(c *draw.Canvas) {
	x := c.Center().X
	c.StrokeLine2(v.style, x, c.Min.Y, x, c.Max.Y)
}
