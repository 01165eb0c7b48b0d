package bench

import (
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// syntheticTimeline is two minutes of a run: a rate ramping up to 2,000 messages/s, a projector
// that falls behind and catches up, a checkpoint pause from 60 s to 69 s (nothing acknowledged
// or committed, so the percentiles are NaN), and compliance read every 10 s.
func syntheticTimeline(tb testing.TB) Timeline {
	tb.Helper()
	var tl Timeline
	var acked, folded int64
	for i := range 120 {
		s := Sample{
			At:           time.Duration(i) * time.Second,
			SimTime:      time.Duration(i) * time.Minute,
			SiteRSS:      int64(200+i) << 20,
			HarnessRSS:   int64(80+i/4) << 20,
			BrokerRSS:    int64(400) << 20,
			CompliantPct: math.NaN(),
		}
		pause := i >= 60 && i < 70
		s.CheckpointPause = pause
		if i > 0 && !pause {
			acked += int64(min(i, 40) * 50)
			folded += int64(min(i, 40)*50) * 9 / 10
			if i > 90 {
				folded = min(folded+500, acked)
			}
		}
		s.Acked, s.Folded, s.LagRecords = acked, folded, acked-folded
		if pause || i%17 == 3 {
			s.P50, s.P90, s.P99 = math.NaN(), math.NaN(), math.NaN()
		} else {
			s.P50 = 0.05 + float64(i)/400
			s.P90 = 2 * s.P50
			s.P99 = 4 * s.P50
		}
		if i%10 == 0 {
			s.CompliantPct = math.Min(100, float64(i))
		}
		tl = append(tl, s)
	}
	return tl
}

func decodePNG(tb testing.TB, path string) image.Image {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer func() {
		if err := f.Close(); err != nil {
			tb.Error(err)
		}
	}()
	img, err := png.Decode(f)
	if err != nil {
		tb.Fatalf("%s: %v", path, err)
	}
	if b := img.Bounds(); b.Dx() <= 300 || b.Dy() <= 300 || b.Dx() <= b.Dy() {
		tb.Fatalf("%s: size %dx%d, want a landscape image over 300 px each way", path, b.Dx(), b.Dy())
	}
	return img
}

// countColor counts the pixels within tol (sum of channel differences) of c; lines need some
// tolerance as anti-aliasing blends their edges, fills do not.
func countColor(img image.Image, c color.RGBA, tol uint32) int {
	n := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			d := channelDiff(r>>8, uint32(c.R)) + channelDiff(g>>8, uint32(c.G)) + channelDiff(bl>>8, uint32(c.B))
			if d <= tol {
				n++
			}
		}
	}
	return n
}

func channelDiff(a, b uint32) uint32 {
	if a > b {
		return a - b
	}
	return b - a
}

func TestWritePlots(t *testing.T) {
	dir := t.TempDir()
	names, err := WritePlots(dir, "storm", syntheticTimeline(t))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"throughput.png", "backlog.png", "latency.png", "memory.png", "compliance.png"}
	if !slices.Equal(names, want) {
		t.Fatalf("names = %v, want %v", names, want)
	}
	imgs := map[string]image.Image{}
	for _, n := range names {
		imgs[n] = decodePNG(t, filepath.Join(dir, n))
	}
	// The data is drawn, not just the frame: each chart shows its series' colours, and the
	// pause is shaded on the wall-clock charts (10 s of 120: a band tens of pixels wide).
	for _, c := range []struct {
		name string
		col  color.RGBA
		tol  uint32
		min  int
		what string
	}{
		{"throughput.png", colBlue, 24, 200, "acked line"},
		{"throughput.png", colOrange, 24, 200, "folded line"},
		{"throughput.png", colPause, 0, 10000, "checkpoint shading"},
		{"backlog.png", colBlue, 24, 200, "lag line"},
		{"latency.png", colVermillion, 24, 200, "p99 line"},
		{"memory.png", colGreen, 24, 200, "broker line"},
		{"compliance.png", colGreen, 24, 200, "compliance line"},
	} {
		if n := countColor(imgs[c.name], c.col, c.tol); n < c.min {
			t.Errorf("%s: %d pixels of the %s colour, want a visible %s", c.name, n, c.what, c.what)
		}
	}
	if n := countColor(imgs["compliance.png"], colPause, 0); n != 0 {
		t.Errorf("compliance.png: %d pixels of shading; pauses are shaded on wall-clock charts only", n)
	}
}

func TestWritePlotsOptionalSeries(t *testing.T) {
	tl := syntheticTimeline(t)
	for i := range tl {
		tl[i].CompliantPct = math.NaN()
		tl[i].BrokerRSS = 0
		tl[i].CheckpointPause = false
	}
	dir := t.TempDir()
	names, err := WritePlots(dir, "", tl)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"throughput.png", "backlog.png", "latency.png", "memory.png"}; !slices.Equal(names, want) {
		t.Fatalf("names = %v, want %v", names, want)
	}
	if _, err := os.Stat(filepath.Join(dir, "compliance.png")); !os.IsNotExist(err) {
		t.Fatalf("compliance.png written without a compliance reading (stat: %v)", err)
	}
	if n := countColor(decodePNG(t, filepath.Join(dir, "memory.png")), colGreen, 24); n != 0 {
		t.Errorf("memory.png: %d pixels of the broker colour, but the broker was not measured", n)
	}
	if n := countColor(decodePNG(t, filepath.Join(dir, "throughput.png")), colPause, 0); n != 0 {
		t.Errorf("throughput.png: %d pixels of shading without a checkpoint pause", n)
	}
}

func TestWritePlotsShortTimeline(t *testing.T) {
	for _, tl := range []Timeline{nil, {}, {{At: time.Second}}} {
		dir := t.TempDir()
		names, err := WritePlots(dir, "x", tl)
		if err == nil || !strings.Contains(err.Error(), "need at least 2") {
			t.Errorf("%d samples: err = %v, want a 'need at least 2' error", len(tl), err)
		}
		if names != nil {
			t.Errorf("%d samples: names = %v, want none", len(tl), names)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Errorf("%d samples: wrote %d files", len(tl), len(ents))
		}
	}
}

func TestWritePlotsAllNaNLatency(t *testing.T) {
	tl := syntheticTimeline(t)
	for i := range tl {
		tl[i].P50, tl[i].P90, tl[i].P99 = math.NaN(), math.NaN(), math.NaN()
	}
	dir := t.TempDir()
	if _, err := WritePlots(dir, "idle", tl); err != nil {
		t.Fatal(err)
	}
	decodePNG(t, filepath.Join(dir, "latency.png"))
}

func TestPlotRates(t *testing.T) {
	tl := Timeline{
		{At: 0, Acked: 0, Folded: 0},
		{At: 2 * time.Second, Acked: 100, Folded: 40},
		{At: 2 * time.Second, Acked: 150, Folded: 40}, // no wall-clock time: skipped
		{At: 3 * time.Second, Acked: 450, Folded: 90},
	}
	acked, folded := throughputRates(tl)
	if len(acked) != 2 || len(folded) != 2 {
		t.Fatalf("got %d and %d points, want 2 each", len(acked), len(folded))
	}
	for i, w := range []struct{ x, acked, folded float64 }{{2, 50, 20}, {3, 300, 50}} {
		if acked[i].X != w.x || acked[i].Y != w.acked || folded[i].Y != w.folded {
			t.Errorf("point %d: acked %v folded %v, want x=%v acked=%v folded=%v", i, acked[i], folded[i], w.x, w.acked, w.folded)
		}
	}
}

func TestPlotPauseSpans(t *testing.T) {
	tl := make(Timeline, 10)
	for i := range tl {
		tl[i].At = time.Duration(i) * time.Second
		tl[i].CheckpointPause = i == 0 || (i >= 4 && i <= 5) || i == 9
	}
	got := pauseSpans(tl)
	want := [][2]float64{{0, 0.5}, {3.5, 5.5}, {8.5, 9}}
	if !slices.Equal(got, want) {
		t.Fatalf("pauseSpans = %v, want %v", got, want)
	}
}

func TestPlotTicks(t *testing.T) {
	for _, c := range []struct {
		lo, hi    float64
		si, whole bool
		want      []string
	}{
		{0, 1234, true, false, []string{"0", "250", "500", "750", "1000"}},
		{0, 120000, true, false, []string{"0", "20k", "40k", "60k", "80k", "100k", "120k"}},
		{0, 2.5e6, true, false, []string{"0", "0.5M", "1.0M", "1.5M", "2.0M", "2.5M"}},
		{0, 0.3, false, false, []string{"0", "0.05", "0.10", "0.15", "0.20", "0.25", "0.30"}},
		{-1, 1, false, false, []string{"-1.0", "-0.5", "0", "0.5", "1.0"}},
		{3, 17, false, false, []string{"5.0", "7.5", "10.0", "12.5", "15.0"}},
		{3, 17, false, true, []string{"4", "6", "8", "10", "12", "14", "16"}}, // whole: 2, not 2.5
		{0, 3, false, true, []string{"0", "1", "2", "3"}},                     // whole: 1, not 0.5
	} {
		var got []string
		for _, tk := range (niceTicker{si: c.si, whole: c.whole}).Ticks(c.lo, c.hi) {
			got = append(got, tk.Label)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("ticks(%v, %v, si=%v, whole=%v) = %v, want %v", c.lo, c.hi, c.si, c.whole, got, c.want)
		}
	}
}

func TestWriteCapacityPlot(t *testing.T) {
	path := filepath.Join(t.TempDir(), "capacity.png")
	pts := []CapacityPoint{
		{Clients: 40000, BacklogSeconds: 95, OK: false},
		{Clients: 10000, BacklogSeconds: 2, OK: true},
		{Clients: 20000, BacklogSeconds: 8, OK: true},
		{Clients: 30000, BacklogSeconds: 31, OK: false},
		{Clients: 25000, BacklogSeconds: math.NaN(), OK: false}, // run failed to report: left out
	}
	if err := WriteCapacityPlot(path, "sweep", 30, pts); err != nil {
		t.Fatal(err)
	}
	img := decodePNG(t, path)
	if n := countColor(img, colBlue, 24); n < 50 {
		t.Errorf("%d pixels of the OK marker colour, want visible OK markers", n)
	}
	if n := countColor(img, colVermillion, 24); n < 50 {
		t.Errorf("%d pixels of the not-OK marker colour, want visible not-OK markers", n)
	}

	for _, c := range []struct {
		name   string
		target float64
		pts    []CapacityPoint
	}{
		{"no points", 30, nil},
		{"only NaN", 30, []CapacityPoint{{Clients: 1, BacklogSeconds: math.NaN()}}},
		{"NaN target", math.NaN(), pts},
		{"negative target", -1, pts},
	} {
		p := filepath.Join(t.TempDir(), "c.png")
		if err := WriteCapacityPlot(p, "x", c.target, c.pts); err == nil {
			t.Errorf("%s: no error", c.name)
		}
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s: file written (stat: %v)", c.name, err)
		}
	}
}
