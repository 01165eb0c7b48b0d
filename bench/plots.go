package bench

// Plots: PNG charts of a run's Timeline and of a capacity sweep, written next to the run's
// results so a reader sees the shape of a run at a glance. They draw what the harness measured
// and nothing else: no smoothing, no interpolation across missing points, no extrapolation.

import (
	"cmp"
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	xfont "golang.org/x/image/font"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Plot geometry: 20 cm × 10 cm rendered at 150 dpi (about 1181 × 591 px), large enough to read
// in a README and small enough to commit.
const (
	plotWidth  = 20 * vg.Centimeter
	plotHeight = 10 * vg.Centimeter
	plotDPI    = 150
)

// Okabe–Ito colours: distinguishable with the common colour-vision deficiencies.
var (
	colBlue       = color.RGBA{R: 0x00, G: 0x72, B: 0xb2, A: 0xff}
	colOrange     = color.RGBA{R: 0xe6, G: 0x9f, B: 0x00, A: 0xff}
	colGreen      = color.RGBA{R: 0x00, G: 0x9e, B: 0x73, A: 0xff}
	colVermillion = color.RGBA{R: 0xd5, G: 0x5e, B: 0x00, A: 0xff}
	colSky        = color.RGBA{R: 0x56, G: 0xb4, B: 0xe9, A: 0xff}
	colGrey       = color.RGBA{R: 0x55, G: 0x55, B: 0x55, A: 0xff}
	colGrid       = color.RGBA{R: 0xe3, G: 0xe3, B: 0xe3, A: 0xff}
	colTrend      = color.RGBA{R: 0xc4, G: 0xc4, B: 0xc4, A: 0xff} // joins the capacity points
	colPause      = color.RGBA{R: 0xfb, G: 0xe7, B: 0xc6, A: 0xff} // pale orange, behind the data
)

// WritePlots writes the charts of a run into dir (created if missing) and returns the base names
// of the files written, in this order: throughput.png, backlog.png, latency.png, memory.png and,
// only when at least one sample read the compliance report, compliance.png. title prefixes every
// chart's title (e.g. "storm" gives "storm — throughput"). Checkpoint pauses are shaded on the
// wall-clock charts. The timeline needs at least two samples.
func WritePlots(dir, title string, tl Timeline) ([]string, error) {
	if len(tl) < 2 {
		return nil, fmt.Errorf("cannot plot timeline (%d samples): need at least 2", len(tl))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("cannot create plot directory (%s): %w", dir, err)
	}
	charts := []struct {
		name string
		make func(string, Timeline) (*chart, error)
	}{
		{"throughput.png", throughputChart},
		{"backlog.png", backlogChart},
		{"latency.png", latencyChart},
		{"memory.png", memoryChart},
		{"compliance.png", complianceChart},
	}
	var names []string
	for _, c := range charts {
		ch, err := c.make(title, tl)
		if err != nil {
			return nil, fmt.Errorf("cannot build plot (%s): %w", c.name, err)
		}
		if ch == nil { // nothing to draw, e.g. compliance never read
			continue
		}
		if err := ch.save(filepath.Join(dir, c.name)); err != nil {
			return nil, err
		}
		names = append(names, c.name)
	}
	return names, nil
}

// CapacityPoint is one run of a capacity sweep: the clients per site it simulated, the backlog
// it ended with (seconds of work behind), and whether the run met its criteria.
type CapacityPoint struct {
	Clients        int
	BacklogSeconds float64
	OK             bool
}

// WriteCapacityPlot writes a PNG to path plotting each point's backlog against its clients per
// site, OK and not-OK runs in different marks, with a dashed horizontal line at target seconds.
// Points with a non-finite backlog are left out; at least one must remain.
func WriteCapacityPlot(path, title string, target float64, pts []CapacityPoint) error {
	if math.IsNaN(target) || math.IsInf(target, 0) || target < 0 {
		return fmt.Errorf("cannot plot capacity (target %v): target must be a finite backlog >= 0", target)
	}
	sorted := slices.Clone(pts)
	slices.SortStableFunc(sorted, func(a, b CapacityPoint) int { return cmp.Compare(a.Clients, b.Clients) })
	var all, ok, notOK plotter.XYs
	for _, p := range sorted {
		if math.IsNaN(p.BacklogSeconds) || math.IsInf(p.BacklogSeconds, 0) {
			continue
		}
		xy := plotter.XY{X: float64(p.Clients), Y: p.BacklogSeconds}
		all = append(all, xy)
		if p.OK {
			ok = append(ok, xy)
		} else {
			notOK = append(notOK, xy)
		}
	}
	if len(all) == 0 {
		return fmt.Errorf("cannot plot capacity (%d points): no point has a finite backlog", len(pts))
	}

	ch := newChart(title, "capacity", "clients per site", "backlog (s)")
	ch.p.X.Tick.Marker = niceTicker{si: true, whole: true}
	if len(all) > 1 {
		trend, err := plotter.NewLine(all)
		if err != nil {
			return fmt.Errorf("cannot plot capacity: %w", err)
		}
		trend.LineStyle = draw.LineStyle{Color: colTrend, Width: vg.Points(1.2)}
		ch.p.Add(trend)
	}
	targetLine := &hLine{y: target, style: draw.LineStyle{
		Color:  colGrey,
		Width:  vg.Points(1.2),
		Dashes: []vg.Length{vg.Points(5), vg.Points(3)},
	}}
	ch.p.Add(targetLine)
	for _, s := range []struct {
		name  string
		xys   plotter.XYs
		glyph draw.GlyphStyle
	}{
		{"OK", ok, draw.GlyphStyle{Color: colBlue, Radius: vg.Points(3.5), Shape: draw.CircleGlyph{}}},
		{"not OK", notOK, draw.GlyphStyle{Color: colVermillion, Radius: vg.Points(4), Shape: crossGlyph{width: vg.Points(1.8)}}},
	} {
		if len(s.xys) == 0 {
			continue
		}
		sc, err := plotter.NewScatter(s.xys)
		if err != nil {
			return fmt.Errorf("cannot plot capacity: %w", err)
		}
		sc.GlyphStyle = s.glyph
		ch.p.Add(sc)
		ch.legend(s.name, sc)
	}
	ch.legend("target", targetLine)
	ch.p.X.Min = math.Min(ch.p.X.Min, 0)
	ch.p.Y.Min = 0
	roundUpY(ch.p)
	return ch.save(path)
}

func throughputChart(title string, tl Timeline) (*chart, error) {
	// Batches commit in steps: over a long run, a 5-sample average reads better than
	// per-second rates that jump between zero and a batch.
	window, what := 1, "throughput"
	if len(tl) > 60 {
		window, what = 5, "throughput (5 s average)"
	}
	acked, folded := throughputRatesOver(tl, window)
	ch := newChart(title, what, "wall clock (s)", "messages / s")
	ch.shadePauses(tl)
	if err := ch.series("acked by ingest", acked, colBlue, math.Inf(1)); err != nil {
		return nil, err
	}
	if err := ch.series("folded by projector", folded, colOrange, math.Inf(1)); err != nil {
		return nil, err
	}
	ch.finishWall(len(acked) + len(folded))
	return ch, nil
}

// throughputRates returns the acknowledged and folded messages per second of each interval
// between consecutive samples, at the interval's end; intervals without wall-clock time are
// skipped.
func throughputRates(tl Timeline) (acked, folded plotter.XYs) { return throughputRatesOver(tl, 1) }

// throughputRatesOver is throughputRates over the last window intervals (a trailing average).
func throughputRatesOver(tl Timeline, window int) (acked, folded plotter.XYs) {
	for i := 1; i < len(tl); i++ {
		j := max(0, i-window)
		dt := (tl[i].At - tl[j].At).Seconds()
		if dt <= 0 {
			continue
		}
		x := tl[i].At.Seconds()
		acked = append(acked, plotter.XY{X: x, Y: float64(tl[i].Acked-tl[j].Acked) / dt})
		folded = append(folded, plotter.XY{X: x, Y: float64(tl[i].Folded-tl[j].Folded) / dt})
	}
	return acked, folded
}

func backlogChart(title string, tl Timeline) (*chart, error) {
	xys := wallSeries(tl, func(s Sample) float64 { return float64(s.LagRecords) })
	ch := newChart(title, "backlog", "wall clock (s)", "consumer lag (records)")
	ch.p.Y.Tick.Marker = niceTicker{si: true, whole: true}
	ch.shadePauses(tl)
	if err := ch.series("", xys, colBlue, math.Inf(1)); err != nil {
		return nil, err
	}
	ch.finishWall(len(xys))
	return ch, nil
}

func latencyChart(title string, tl Timeline) (*chart, error) {
	ch := newChart(title, "latency", "wall clock (s)", "visible delay (s)")
	ch.shadePauses(tl)
	// A percentile is NaN for an interval in which nothing was committed. Neighbouring points
	// are joined, but not across a gap longer than a few sampling intervals: a straight line
	// over a stall would draw delays nobody measured.
	maxGap := 5 * medianStep(tl)
	n := 0
	for _, s := range []struct {
		name string
		f    func(Sample) float64
		col  color.Color
	}{
		{"p50", func(s Sample) float64 { return s.P50 }, colSky},
		{"p90", func(s Sample) float64 { return s.P90 }, colBlue},
		{"p99", func(s Sample) float64 { return s.P99 }, colVermillion},
	} {
		xys := wallSeries(tl, s.f)
		n += len(xys)
		if err := ch.series(s.name, xys, s.col, maxGap); err != nil {
			return nil, err
		}
	}
	ch.finishWall(n)
	return ch, nil
}

func memoryChart(title string, tl Timeline) (*chart, error) {
	const mib = 1 << 20
	ch := newChart(title, "memory", "wall clock (s)", "RSS (MiB)")
	ch.shadePauses(tl)
	type rss struct {
		name string
		f    func(Sample) float64
		col  color.Color
	}
	series := []rss{
		{"site", func(s Sample) float64 { return float64(s.SiteRSS) / mib }, colBlue},
		{"harness", func(s Sample) float64 { return float64(s.HarnessRSS) / mib }, colOrange},
	}
	if slices.ContainsFunc(tl, func(s Sample) bool { return s.BrokerRSS > 0 }) {
		series = append(series, rss{"broker", func(s Sample) float64 { return float64(s.BrokerRSS) / mib }, colGreen})
	}
	n := 0
	for _, s := range series {
		xys := wallSeries(tl, s.f)
		n += len(xys)
		if err := ch.series(s.name, xys, s.col, math.Inf(1)); err != nil {
			return nil, err
		}
	}
	ch.finishWall(n)
	return ch, nil
}

// complianceChart returns nil when no sample read the compliance report.
func complianceChart(title string, tl Timeline) (*chart, error) {
	var xys plotter.XYs
	for _, s := range tl {
		if math.IsNaN(s.CompliantPct) || math.IsInf(s.CompliantPct, 0) {
			continue
		}
		xys = append(xys, plotter.XY{X: s.SimTime.Hours(), Y: s.CompliantPct})
	}
	if len(xys) == 0 {
		return nil, nil
	}
	ch := newChart(title, "compliance", "simulated time (h)", "compliant (%)")
	// The report is usually read at checkpoints only, so points are sparse: join them all and
	// mark each one while there are few enough to tell apart.
	if err := ch.series("", xys, colGreen, math.Inf(1)); err != nil {
		return nil, err
	}
	if len(xys) <= 60 {
		sc, err := plotter.NewScatter(xys)
		if err != nil {
			return nil, err
		}
		sc.GlyphStyle = draw.GlyphStyle{Color: colGreen, Radius: vg.Points(2.5), Shape: draw.CircleGlyph{}}
		ch.p.Add(sc)
	}
	ch.p.X.Min = math.Min(ch.p.X.Min, 0)
	ch.p.Y.Min, ch.p.Y.Max = 0, 100
	ch.p.Y.Tick.Marker = plot.ConstantTicks{
		{Value: 0, Label: "0"}, {Value: 20, Label: "20"}, {Value: 40, Label: "40"},
		{Value: 60, Label: "60"}, {Value: 80, Label: "80"}, {Value: 100, Label: "100"},
	}
	return ch, nil
}

// wallSeries returns f of every sample against its wall-clock seconds, without non-finite values.
func wallSeries(tl Timeline, f func(Sample) float64) plotter.XYs {
	xys := make(plotter.XYs, 0, len(tl))
	for _, s := range tl {
		if y := f(s); !math.IsNaN(y) && !math.IsInf(y, 0) {
			xys = append(xys, plotter.XY{X: s.At.Seconds(), Y: y})
		}
	}
	return xys
}

// medianStep is the median wall-clock interval between samples, in seconds (1 when unknown).
func medianStep(tl Timeline) float64 {
	var steps []float64
	for i := 1; i < len(tl); i++ {
		if dt := (tl[i].At - tl[i-1].At).Seconds(); dt > 0 {
			steps = append(steps, dt)
		}
	}
	if len(steps) == 0 {
		return 1
	}
	slices.Sort(steps)
	return steps[len(steps)/2]
}

// pauseSpans returns the wall-clock spans (seconds) of consecutive checkpoint-paused samples,
// each reaching halfway to the neighbouring unpaused samples so a one-sample pause has width.
func pauseSpans(tl Timeline) [][2]float64 {
	var spans [][2]float64
	for i := 0; i < len(tl); i++ {
		if !tl[i].CheckpointPause {
			continue
		}
		j := i
		for j+1 < len(tl) && tl[j+1].CheckpointPause {
			j++
		}
		from, to := tl[i].At.Seconds(), tl[j].At.Seconds()
		if i > 0 {
			from = (tl[i-1].At.Seconds() + from) / 2
		}
		if j+1 < len(tl) {
			to = (to + tl[j+1].At.Seconds()) / 2
		}
		spans = append(spans, [2]float64{from, to})
		i = j
	}
	return spans
}

// chart is a plot with its legend kept apart, so the legend can be drawn to the right of the
// data instead of over it.
type chart struct {
	p       *plot.Plot
	leg     plot.Legend
	entries int
}

func newChart(title, what, xLabel, yLabel string) *chart {
	sans := font.Font{Typeface: "Liberation", Variant: "Sans"}
	p := plot.New()
	p.Title.Text = what
	if title != "" {
		p.Title.Text = title + " — " + what
	}
	bold := sans
	bold.Weight = xfont.WeightBold
	p.Title.TextStyle.Font = font.From(bold, 12)
	p.Title.Padding = vg.Points(8)
	for _, ax := range []*plot.Axis{&p.X, &p.Y} {
		ax.Label.TextStyle.Font = font.From(sans, 10)
		ax.Label.Padding = vg.Points(4)
		ax.Tick.Label.Font = font.From(sans, 9)
		ax.Tick.Label.Color = colGrey
		ax.Tick.Length = vg.Points(4)
		ax.Tick.LineStyle.Color = colGrey
		ax.LineStyle.Color = colGrey
		ax.Padding = vg.Points(2)
	}
	p.X.Label.Text = xLabel
	p.Y.Label.Text = yLabel
	p.X.Tick.Marker = niceTicker{}
	p.Y.Tick.Marker = niceTicker{si: true}
	grid := plotter.NewGrid()
	grid.Vertical = draw.LineStyle{Color: colGrid, Width: vg.Points(0.6)}
	grid.Horizontal = grid.Vertical
	p.Add(grid)

	leg := plot.NewLegend()
	leg.TextStyle.Font = font.From(sans, 10)
	leg.Top, leg.Left = true, true
	leg.Padding = vg.Points(3)
	leg.ThumbnailWidth = vg.Points(18)
	return &chart{p: p, leg: leg}
}

func (c *chart) legend(name string, thumbs ...plot.Thumbnailer) {
	c.leg.Add(name, thumbs...)
	c.entries++
}

// shadePauses shades the checkpoint pauses behind the data and gives them a legend entry.
func (c *chart) shadePauses(tl Timeline) {
	spans := pauseSpans(tl)
	if len(spans) == 0 {
		return
	}
	sh := spanShading{spans: spans, color: colPause}
	c.p.Add(sh)
	c.legend("checkpoint pause", sh)
}

// series adds xys as a line in col, broken where consecutive points are more than maxGap apart
// on x; a point with no neighbour within maxGap is drawn as a dot. An empty name adds no legend
// entry.
func (c *chart) series(name string, xys plotter.XYs, col color.Color, maxGap float64) error {
	// Once there are more points than about half the pixels across, a thick line turns noise
	// into a solid band; a thinner one keeps the spread readable.
	width := vg.Points(1.5)
	if len(xys) > 300 {
		width = vg.Points(0.8)
	}
	style := draw.LineStyle{Color: col, Width: width}
	var lone plotter.XYs
	start := 0
	for i := 1; i <= len(xys); i++ {
		if i < len(xys) && xys[i].X-xys[i-1].X <= maxGap {
			continue
		}
		seg := xys[start:i]
		start = i
		if len(seg) == 1 {
			lone = append(lone, seg[0])
			continue
		}
		l, err := plotter.NewLine(seg)
		if err != nil {
			return err
		}
		l.LineStyle = style
		c.p.Add(l)
	}
	if len(lone) > 0 {
		sc, err := plotter.NewScatter(lone)
		if err != nil {
			return err
		}
		sc.GlyphStyle = draw.GlyphStyle{Color: col, Radius: vg.Points(1.5), Shape: draw.CircleGlyph{}}
		c.p.Add(sc)
	}
	if name != "" {
		c.legend(name, &plotter.Line{LineStyle: style})
	}
	return nil
}

// finishWall sets the ranges of a chart against wall-clock time: both axes from zero, the y
// axis up to a round value. n is the number of points drawn; none marks the title "no data".
func (c *chart) finishWall(n int) {
	c.p.X.Min = math.Min(c.p.X.Min, 0)
	c.p.Y.Min = math.Min(c.p.Y.Min, 0)
	if n == 0 {
		c.p.Title.Text += " (no data)"
		return
	}
	roundUpY(c.p)
}

// roundUpY extends the y axis to the next tick, so the top of the frame carries a label; a
// maximum right on a tick goes one tick further, so a flat line does not hide in the frame.
func roundUpY(p *plot.Plot) {
	lo, hi := p.Y.Min, p.Y.Max
	if math.IsInf(lo, 0) || math.IsInf(hi, 0) {
		return
	}
	if hi <= lo { // a flat series: show it at the bottom, not centred in a negative range
		hi = lo + 10
	}
	t, _ := p.Y.Tick.Marker.(niceTicker)
	if step := t.step(lo, hi); step > 0 {
		p.Y.Max = math.Ceil((hi+(hi-lo)/100)/step) * step
	}
}

func (c *chart) save(path string) (err error) {
	img := vgimg.NewWith(vgimg.UseWH(plotWidth, plotHeight), vgimg.UseDPI(plotDPI))
	c.drawOn(draw.New(img))
	return savePNG(path, img)
}

// drawOn draws the chart, its legend to the right of the data, on dc (a whole image, or one
// tile of a grid).
func (c *chart) drawOn(dc draw.Canvas) { c.drawOnLegend(dc, 0) }

// legendWidth is the width the chart's legend takes on dc (0 without one).
func (c *chart) legendWidth(dc draw.Canvas) vg.Length {
	if c.entries == 0 {
		return 0
	}
	return c.leg.Rectangle(c.outer(dc)).Size().X
}

func (c *chart) outer(dc draw.Canvas) draw.Canvas {
	return draw.Crop(dc, vg.Points(6), -vg.Points(10), vg.Points(4), -vg.Points(6))
}

// drawOnLegend is drawOn with the legend's column at least legend wide, so the data areas of
// charts drawn in a column line up.
func (c *chart) drawOnLegend(dc draw.Canvas, legend vg.Length) {
	outer := c.outer(dc)
	if c.entries == 0 && legend == 0 {
		c.p.Draw(outer)
	} else {
		gap := vg.Points(10)
		w := max(c.legendWidth(dc), legend) + gap
		left := draw.Crop(outer, 0, -w, 0, 0)
		c.p.Draw(left)
		data := c.p.DataCanvas(left)
		c.leg.Draw(draw.Canvas{Canvas: dc.Canvas, Rectangle: vg.Rectangle{
			Min: vg.Point{X: left.Max.X + gap, Y: data.Min.Y},
			Max: vg.Point{X: outer.Max.X, Y: data.Max.Y},
		}})
	}
}

// savePNG writes img to path as a PNG.
func savePNG(path string, img *vgimg.Canvas) (err error) {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("cannot create plot file (%s): %w", path, err)
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("cannot close plot file (%s): %w", path, cerr)
		}
	}()
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		return fmt.Errorf("cannot write plot file (%s): %w", path, err)
	}
	return nil
}

// spanShading fills x spans over the full height of the data area. It has no data range, so it
// never moves the axes; add it before the data so the data is drawn over it.
type spanShading struct {
	spans [][2]float64
	color color.Color
}

func (s spanShading) Plot(c draw.Canvas, p *plot.Plot) {
	trX, _ := p.Transforms(&c)
	c.SetColor(s.color)
	for _, sp := range s.spans {
		x0, x1 := max(trX(sp[0]), c.Min.X), min(trX(sp[1]), c.Max.X)
		if x1-x0 < vg.Points(1) { // keep a pause visible at any zoom
			mid := (x0 + x1) / 2
			x0, x1 = mid-vg.Points(0.5), mid+vg.Points(0.5)
		}
		if x1 < c.Min.X || x0 > c.Max.X {
			continue
		}
		r := vg.Rectangle{Min: vg.Point{X: x0, Y: c.Min.Y}, Max: vg.Point{X: x1, Y: c.Max.Y}}
		c.Fill(r.Path())
	}
}

func (s spanShading) Thumbnail(c *draw.Canvas) {
	c.SetColor(s.color)
	c.Fill(c.Rectangle.Path())
}

// hLine is a horizontal line across the whole data area at y; its data range holds y only, so
// the line is always in view without widening the x axis.
type hLine struct {
	y     float64
	style draw.LineStyle
}

func (h *hLine) Plot(c draw.Canvas, p *plot.Plot) {
	_, trY := p.Transforms(&c)
	y := trY(h.y)
	if y < c.Min.Y || y > c.Max.Y {
		return
	}
	c.StrokeLine2(h.style, c.Min.X, y, c.Max.X, y)
}

func (h *hLine) DataRange() (xmin, xmax, ymin, ymax float64) {
	return math.Inf(1), math.Inf(-1), h.y, h.y
}

func (h *hLine) Thumbnail(c *draw.Canvas) {
	y := c.Center().Y
	c.StrokeLine2(h.style, c.Min.X, y, c.Max.X, y)
}

// crossGlyph is an × with a stroke width of its own (draw.CrossGlyph strokes hairlines).
type crossGlyph struct{ width vg.Length }

func (g crossGlyph) DrawGlyph(c *draw.Canvas, sty draw.GlyphStyle, pt vg.Point) {
	ls := draw.LineStyle{Color: sty.Color, Width: g.width}
	r := sty.Radius
	c.StrokeLine2(ls, pt.X-r, pt.Y-r, pt.X+r, pt.Y+r)
	c.StrokeLine2(ls, pt.X-r, pt.Y+r, pt.X+r, pt.Y-r)
}

// niceTicker labels about six major ticks at 1, 2, 2.5 or 5 × 10ⁿ; with si, axes reaching
// 10,000 are labelled with k, M or G ("250k", "1.5M") instead of gonum's exponent form; with
// whole, ticks are whole numbers (counts of records or clients).
type niceTicker struct{ si, whole bool }

func (t niceTicker) step(lo, hi float64) float64 {
	step := tickStep(lo, hi)
	if t.whole && step > 0 {
		step = math.Floor(math.Max(step, 1)) // only 2.5 changes, to 2
	}
	return step
}

func (t niceTicker) Ticks(lo, hi float64) []plot.Tick {
	step := t.step(lo, hi)
	if step <= 0 {
		return plot.DefaultTicks{}.Ticks(lo, hi)
	}
	div, suffix := 1.0, ""
	if t.si {
		switch m := math.Max(math.Abs(lo), math.Abs(hi)); {
		case m >= 1e9:
			div, suffix = 1e9, "G"
		case m >= 1e6:
			div, suffix = 1e6, "M"
		case m >= 1e4:
			div, suffix = 1e3, "k"
		}
	}
	prec := tickDecimals(step / div)
	var ticks []plot.Tick
	first := math.Ceil(lo/step - 1e-9)
	for i := first; i*step <= hi+step*1e-9; i++ {
		v := i * step
		label := "0" // not "-0" nor "0.0M"
		if v != 0 {
			label = strconv.FormatFloat(v/div, 'f', prec, 64) + suffix
		}
		ticks = append(ticks, plot.Tick{Value: v, Label: label})
	}
	return ticks
}

// tickStep returns a step of 1, 2, 2.5 or 5 × 10ⁿ giving about six ticks over [lo, hi], or 0.
func tickStep(lo, hi float64) float64 {
	span := hi - lo
	if !(span > 0) || math.IsInf(span, 0) {
		return 0
	}
	raw := span / 6
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*mag >= raw*(1-1e-9) {
			return m * mag
		}
	}
	return 10 * mag
}

// tickDecimals is the number of decimals that writes every multiple of step exactly.
func tickDecimals(step float64) int {
	for d := 0; d < 9; d++ {
		scaled := step * math.Pow10(d)
		if math.Abs(scaled-math.Round(scaled)) < 1e-6*scaled {
			return d
		}
	}
	return 9
}
