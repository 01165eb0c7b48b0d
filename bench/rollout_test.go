package bench

import (
	"context"
	"image/color"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestRolloutScenarioFields(t *testing.T) {
	base, err := os.ReadFile("scenarios/rollout-wave-small.yaml")
	if err != nil {
		t.Fatal(err)
	}
	sc, err := ParseScenario(base, "small")
	if err != nil || sc.EnrolWave == nil || sc.EnrolWave.Over.D() != 10*time.Second || sc.Pacing != "" {
		t.Fatalf("rollout-wave-small: %+v, %v", sc, err)
	}
	// YAML reads a bare on/off as a boolean: both spellings are the pacing.
	for text, want := range map[string]PacingMode{"pacing: on": "on", "pacing: off": "off", `pacing: "on"`: "on", `pacing: "off"`: "off"} {
		sc, err := ParseScenario(append(slices.Clone(base), []byte("\n"+text+"\n")...), "edited")
		if err != nil || sc.Pacing != want {
			t.Errorf("%s: pacing %q, %v; want %q", text, sc.Pacing, err, want)
		}
	}
	cases := []struct{ from, to, want string }{
		{"enrol_wave: {over: 10s}", "enrol_wave: {over: 0s}", "field enrol_wave.over"},
		{"enrol_wave: {over: 10s}", "enrol_wave: {over: 20 s}", "not a duration"},
		{"enrol_wave: {over: 10s}", "enrol_wave: {over: 20s, clients: 3}", `unknown field "clients"`},
		{"enrol_wave: {over: 10s}", "enrol_wave: {over: 10s}\nunsigned: true", "field enrol_wave: unsigned"},
		{"enrol_wave: {over: 10s}", "enrol_wave: {over: 10s}\nwaves: [{at: 0s, clients: 5000}]", "field enrol_wave: cannot be combined with waves"},
		{"behaviour:\n", "behaviour:\n  ramp: 1m\n", "field enrol_wave: cannot be combined with behaviour.ramp"},
		{"enrol_wave: {over: 10s}", "enrol_wave: {over: 10s}\npacing: sometimes", "pacing is on or off"},
	}
	for _, c := range cases {
		b := strings.Replace(string(base), c.from, c.to, 1)
		if b == string(base) {
			t.Fatalf("%q not in rollout-wave-small.yaml", c.from)
		}
		_, err := ParseScenario([]byte(b), "edited")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q → %q: got %v, want an error containing %q", c.from, c.to, err, c.want)
		}
	}
}

func TestSiteOptions(t *testing.T) {
	dir := t.TempDir()
	paced, unpaced := filepath.Join(dir, "paced"), filepath.Join(dir, "unpaced")
	help := "  -pacing.mode string\n    \ton: the backlog sets the rate; off: the static rate (default \"on\")\n  -pacing.target duration\n"
	if err := os.WriteFile(paced, []byte("#!/bin/sh\nprintf '"+help+"' >&2\nexit 2\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(unpaced, []byte("#!/bin/sh\necho '  -projector.lag-every duration' >&2\nexit 2\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if has, def := sitePacing(paced); !has || def != "on" || SiteHasPacing(unpaced) {
		t.Fatalf("sitePacing: %v %q; unpaced %v", has, def, SiteHasPacing(unpaced))
	}
	wave := &Scenario{EnrolWave: &EnrolWave{Over: Duration(time.Minute)}}
	for _, c := range []struct {
		bin, pacing string
		sc          *Scenario
		siteArgs    []string
		wantArgs    []string
		wantPacing  string
		wantErr     string
	}{
		{bin: paced, sc: &Scenario{Pacing: "on"}, wantArgs: []string{"--pacing.mode=on"}, wantPacing: "on"}, // the scenario's
		{bin: paced, sc: &Scenario{Pacing: "on"}, pacing: "off", wantArgs: []string{"--pacing.mode=off"}, wantPacing: "off"},
		{bin: paced, sc: wave, wantPacing: "on"},                                                  // the site's default, not passed
		{bin: paced, sc: &Scenario{}, wantArgs: []string{"--pacing.mode=off"}, wantPacing: "off"}, // enrolled before the run: as before pacing
		{bin: unpaced, sc: &Scenario{}, wantPacing: ""},
		{bin: unpaced, sc: wave, pacing: "off", wantPacing: "off"}, // no pacing to turn off: no flag
		{bin: unpaced, sc: wave, pacing: "on", wantErr: "has no --pacing.mode"},
		{bin: paced, sc: wave, pacing: "off", siteArgs: []string{"--pacing.mode", "on", "--x=1"},
			wantArgs: []string{"--pacing.mode=off", "--pacing.mode", "on", "--x=1"}, wantPacing: "on"}, // the last flag wins, as in the site
		{bin: paced, sc: wave, pacing: "maybe", wantErr: "on or off"},
	} {
		args, pacing, err := siteOptions(HarnessConfig{Scenario: c.sc, Bin: c.bin, Pacing: c.pacing, SiteArgs: c.siteArgs})
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("%+v: %v, want an error containing %q", c, err, c.wantErr)
			}
			continue
		}
		if err != nil || !slices.Equal(args, c.wantArgs) || pacing != c.wantPacing {
			t.Errorf("%+v: args %q, pacing %q, %v", c, args, pacing, err)
		}
	}
}

// rolloutTimeline is a wave of 10 s: the backlog grows past 30 s, commits stall for two
// seconds, and the projector folds 1,000 messages (10 records) a second with more waiting.
func rolloutTimeline() Timeline {
	nan := math.NaN()
	tl := Timeline{}
	var folded int64
	for i := 1; i <= 14; i++ {
		s := Sample{At: time.Duration(i) * time.Second, P99: float64(4 * i), LagRecords: int64(100 - 7*i), Enrolled: int64(min(i, 10) * 100)}
		s.EnrolPerS = 100
		if i > 10 {
			s.EnrolPerS = 0
		}
		if i == 9 || i == 10 { // no commits: no p99, and nothing folded
			s.P99 = nan
		} else {
			folded += 1000
		}
		if i >= 12 {
			s.LagRecords, s.P99 = 0, nan
		}
		s.Folded, s.FoldedRecords = folded, folded/100
		s.Refused, s.RefusedPerS = int64(i*50), 50
		s.BacklogSecs = backlogSeconds(s)
		tl = append(tl, s)
	}
	return tl
}

func TestSummariseRollout(t *testing.T) {
	tl := rolloutTimeline()
	peak, over := backlogOverTarget(tl, 30)
	// 4·i > 30 from i = 8 (32 s); 9 and 10 have no p99 and a lag: 32 s holds; 11 is 44 s; 12
	// on have no lag: 0.
	if peak != 44 || over != 4 {
		t.Errorf("peak %v, over %v; want 44 and 4 (seconds 8–11)", peak, over)
	}
	rate, windows, mean := sustainedFoldRate(tl)
	// Windows of 5 intervals with a lag at every sample: they start at 1..6 (ending at
	// 6..11) and fold 1,000, 1,000, 1,000, 800 (one stalled second), 600, 600 messages/s.
	if windows != 6 || mean || rate != 900 {
		t.Errorf("fold rate %v over %d windows (mean %v); want the median 900 of 6", rate, windows, mean)
	}
	ro := summariseRollout(tl, 9000, 9000, 500*time.Millisecond, 20*time.Second, 0)
	if ro.CompletionSecs != 10.5 || ro.BoundSecs != 10 || ro.Ratio != 1.05 || ro.PeakBacklogSecs != 44 || ro.OverTargetSecs != 4 {
		t.Errorf("rollout %+v", ro)
	}
	if got := summariseRollout(tl[:3], 9000, 9000, 0, 20*time.Second, 0); got.CompletionSecs != 20 {
		t.Errorf("never all visible: completion %v, want the final check's end", got.CompletionSecs)
	}
	// No whole window: the mean over the lagging intervals; no lag at all: not measured.
	if rate, windows, mean := sustainedFoldRate(tl[:4]); !mean || windows != 0 || rate != 1000 {
		t.Errorf("short: %v over %d windows, mean %v", rate, windows, mean)
	}
	if rate, _, _ := sustainedFoldRate(tl[11:]); rate != 0 {
		t.Errorf("no lag: fold rate %v, want 0", rate)
	}
	// A projector that keeps up has a few records in flight at every sample, fewer than it
	// folds in a second: its rate is the load offered, not its capacity, and is not taken.
	keepsUp := slices.Clone(tl)
	for i := range keepsUp {
		keepsUp[i].LagRecords = 3
	}
	if rate, windows, mean := sustainedFoldRate(keepsUp); rate != 0 || windows != 0 || mean {
		t.Errorf("kept up: fold rate %v over %d windows (mean %v), want none", rate, windows, mean)
	}
	goals := rolloutGoals(&RolloutResult{TargetSecs: 30, PeakBacklogSecs: 44})
	if len(goals) != 2 || goals[0].Met || goals[1].Met || !strings.Contains(goals[1].Got, "not measured") {
		t.Errorf("goals %+v", goals)
	}
	if siteArgTarget([]string{"--pacing.target=5s", "--x"}) != 5 || siteArgTarget([]string{"--pacing.target", "1m"}) != 60 || siteArgTarget(nil) != 0 {
		t.Error("--pacing.target among the site's flags")
	}
	target := 12.0
	withGauge := slices.Clone(tl)
	withGauge[3].PacingTarget = &target
	if backlogTarget(withGauge, 5) != 12 || backlogTarget(tl, 5) != 5 || backlogTarget(tl, 0) != 30 {
		t.Error("the backlog target: the site's gauge, else its flag, else 30 s")
	}
	lag := 40.0
	if b := backlogSeconds(Sample{P99: 12, PacingLag: &lag}); b != 40 {
		t.Errorf("backlog %v, want the pacing lag's 40", b)
	}
	if b := backlogSeconds(Sample{P99: math.NaN()}); !math.IsNaN(b) {
		t.Errorf("backlog %v, want NaN without either", b)
	}
}

func TestCompareRollouts(t *testing.T) {
	dir := t.TempDir()
	rate := 80.0
	on := &HarnessResult{Scenario: "rollout-wave-small", Pacing: "on", Timeline: rolloutTimeline(), OracleOK: true,
		Rollout: summariseRollout(rolloutTimeline(), 9000, 9000, 0, 20*time.Second, 0)}
	for i := range on.Timeline {
		on.Timeline[i].PacingRate = &rate
	}
	off := &HarnessResult{Scenario: "rollout-wave-small", Pacing: "off", Timeline: rolloutTimeline(), OracleOK: true,
		Rollout: summariseRollout(rolloutTimeline(), 9000, 9000, 0, 20*time.Second, 0)}
	// Given on first, it is still drawn on the right.
	names, err := CompareRollouts(dir, on, off, [2]string{filepath.Join(dir, "on"), filepath.Join(dir, "off")})
	if err != nil || !slices.Equal(names, []string{"compare.png", "report.md"}) {
		t.Fatalf("%v, %v", names, err)
	}
	img := decodePNG(t, filepath.Join(dir, "compare.png"))
	w := img.Bounds().Dx()
	for _, c := range []struct {
		col  color.RGBA
		what string
	}{{colVermillion, "backlog and 429 lines"}, {colBlue, "admitted line"}, {colGreen, "enrolled line"}} {
		if n := countColor(img, c.col, 24); n < 400 {
			t.Errorf("compare.png: %d pixels of the %s", n, c.what)
		}
	}
	// The pacing rate exists only in the pacing-on run: orange on the right half only.
	left, right := 0, 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			if near(img.At(x, y), colOrange, 24) {
				if x < w/2 {
					left++
				} else {
					right++
				}
			}
		}
	}
	if left != 0 || right < 100 {
		t.Errorf("pacing rate line: %d pixels on the left, %d on the right; want it in the pacing-on column only", left, right)
	}
	md, _ := os.ReadFile(filepath.Join(dir, "report.md"))
	for _, want := range []string{"| measure | pacing off | pacing on |", "| **completion / bound** (goal ≤ 1.25) |", "capacity bound", "![rollout wave: pacing off | pacing on](compare.png)", "(off/report.md)"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("report.md lacks %q:\n%s", want, md)
		}
	}
	if _, err := CompareRollouts(dir, on, &HarnessResult{Timeline: on.Timeline}, [2]string{"a", "b"}); err == nil || !strings.Contains(err.Error(), "b is not a rollout") {
		t.Errorf("a run without a wave: %v", err)
	}
}

// near says whether c is within tol of want, as countColor measures.
func near(c color.Color, want color.RGBA, tol uint32) bool {
	r, g, b, _ := c.RGBA()
	return channelDiff(r>>8, uint32(want.R))+channelDiff(g>>8, uint32(want.G))+channelDiff(b>>8, uint32(want.B)) <= tol
}

// TestRolloutWaveSmall runs the rollout wave (rollout-wave-small.yaml, at 2,000 clients × 100
// updates enrolling within 10 s) against a site of this repository's statepipe with pacing off and a
// static limit of 150 new enrolments/s below the wave's 200/s, so some are answered 429 and
// retried: every client enrols during the run and sends its first full scan, every report
// equals the oracle, the harness's counts agree with the site's, and the result has the wave's
// measures, its timeline fields and its plots. It asserts no speed.
func TestRolloutWaveSmall(t *testing.T) {
	bin := siteBinary(t)
	sc, err := LoadScenario("scenarios/rollout-wave-small.yaml")
	if err != nil {
		t.Fatal(err)
	}
	sc.Clients, sc.Applicable = 2000, Range{Min: 100, Max: 100} // a sixth of its messages: a shorter test
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var progress strings.Builder
	res, err := RunScenario(ctx, HarnessConfig{Scenario: sc, Bin: bin, Pacing: "off", Progress: &progress, CheckTimeout: 2 * time.Minute,
		SiteArgs: []string{"--ingest.enroll-rate=150", "--ingest.enroll-burst=20"}})
	if err != nil {
		t.Fatalf("run: %v\n%s", err, progress.String())
	}
	if !res.OracleOK {
		t.Fatalf("the reports differ from the oracle: %s", res.OracleError)
	}
	ro := res.Rollout
	if ro == nil || res.Pacing != "off" {
		t.Fatalf("rollout %+v, pacing %q", ro, res.Pacing)
	}
	if want := int64(sc.Clients * (sc.Applicable.Min + 1)); res.Messages != want || res.Reports != int64(sc.Clients) {
		t.Errorf("%d messages in %d reports, want %d in %d (one full scan per client)", res.Messages, res.Reports, want, sc.Clients)
	}
	// Every attempt was admitted or paced: one admitted per client, the rest 429s.
	if ro.Refused == 0 || ro.Attempts != int64(sc.Clients)+ro.Refused {
		t.Errorf("%d enrolment attempts, %d refused; want one admitted per client (%d) and some refused", ro.Attempts, ro.Refused, sc.Clients)
	}
	if ro.EnrolOverSecs != 10 || ro.FirstAttemptSecs < 0 || ro.FirstAttemptSecs > 10 || ro.LastEnrolledSecs < ro.FirstAttemptSecs ||
		ro.CompletionSecs <= 0 || ro.TargetSecs <= 0 {
		t.Errorf("rollout %+v", ro)
	}
	if ro.BoundSecs > 0 && ro.Ratio != ro.CompletionSecs/ro.BoundSecs {
		t.Errorf("ratio %v of completion %v and bound %v", ro.Ratio, ro.CompletionSecs, ro.BoundSecs)
	}
	tl := res.Timeline
	last := tl[len(tl)-1]
	if last.Enrolled != int64(sc.Clients) || last.SiteEnrolled != int64(sc.Clients) || last.Refused != ro.Refused || last.SiteRefused != ro.Refused {
		t.Errorf("the last sample saw %d clients enrolled (site: %d) and %d refused (site: %d), want %d and %d",
			last.Enrolled, last.SiteEnrolled, last.Refused, last.SiteRefused, sc.Clients, ro.Refused)
	}
	var admitted, refused float64
	for i, s := range tl {
		prev := time.Duration(0)
		if i > 0 {
			prev = tl[i-1].At
		}
		admitted += s.EnrolPerS * (s.At - prev).Seconds()
		refused += s.RefusedPerS * (s.At - prev).Seconds()
	}
	if math.Abs(admitted-float64(sc.Clients)) > 0.5 || math.Abs(refused-float64(ro.Refused)) > 0.5 {
		t.Errorf("the per-second rates add up to %v clients admitted and %v refused, want %d and %d", admitted, refused, sc.Clients, ro.Refused)
	}
	dir := t.TempDir()
	if err := WriteResults(dir, res); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"result.json", "report.md", "rollout-backlog.png", "rollout-enrolment.png", "rollout-refused.png", "rollout-enrolled.png", "backlog.png"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
	md, _ := os.ReadFile(filepath.Join(dir, "report.md"))
	if !strings.Contains(string(md), "## Rollout wave (pacing off)") || !strings.Contains(string(md), "capacity bound") {
		t.Errorf("report.md has no rollout section:\n%s", md)
	}
	back, err := ReadResult(filepath.Join(dir, "result.json"))
	if err != nil || back.Rollout == nil || back.Rollout.CompletionSecs != ro.CompletionSecs || back.Pacing != "off" ||
		!slices.Contains(back.SiteArgs, "--ingest.enroll-rate=150") {
		t.Fatalf("result.json read back: %+v, %v", back, err)
	}
	if _, err := CompareRollouts(filepath.Join(dir, "compare"), back, res, [2]string{dir, dir}); err != nil {
		t.Error(err)
	}
	t.Logf("%d clients: completion %.1f s, bound %.1f s (ratio %.2f), worst backlog %.1f s, %d enrolment attempts (%d refused)",
		sc.Clients, ro.CompletionSecs, ro.BoundSecs, ro.Ratio, ro.PeakBacklogSecs, ro.Attempts, ro.Refused)
}

// TestRolloutWaveHierarchyTiny runs rollout-wave-hierarchy.yaml at 2 primaries × 300 clients
// × 20 updates enrolling within 5 s, pacing on: every client enrols at its primary during the
// run, every report equals the oracle at each primary and centrally, and the result has each
// site's pacing samples, CEN's freshness of each primary and when every first scan was counted
// there, and its plots. It asserts no speed.
func TestRolloutWaveHierarchyTiny(t *testing.T) {
	bin := siteBinary(t)
	sc, err := LoadScenario("scenarios/rollout-wave-hierarchy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if sc.Primaries != 3 || sc.EnrolWave == nil || sc.Clients != 10000 {
		t.Fatalf("scenario %+v", sc)
	}
	sc.Primaries, sc.Clients, sc.Applicable, sc.EnrolWave.Over = 2, 300, Range{Min: 20, Max: 20}, Duration(5*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var progress strings.Builder
	res, err := RunScenario(ctx, HarnessConfig{Scenario: sc, Bin: bin, Progress: &progress, CheckTimeout: 2 * time.Minute})
	if err != nil {
		t.Fatalf("run: %v\n%s", err, progress.String())
	}
	if !res.OracleOK {
		t.Fatalf("the reports differ from the oracle: %s\n%s", res.OracleError, progress.String())
	}
	hr, ro := res.Hierarchy, res.Rollout
	if hr == nil || hr.Wave == nil || ro == nil || res.Pacing != "on" {
		t.Fatalf("hierarchy %v, rollout %v, pacing %q", hr != nil, ro != nil, res.Pacing)
	}
	total := sc.Clients * sc.Primaries
	if want := int64(total * (sc.Applicable.Min + 1)); res.Messages != want || res.Reports != int64(total) {
		t.Errorf("%d messages in %d reports, want %d in %d (one full scan per client)", res.Messages, res.Reports, want, total)
	}
	w := hr.Wave
	if len(w.Sites) != 3 || w.Sites[0].Site != "CEN" {
		t.Fatalf("wave sites %+v", w.Sites)
	}
	for _, s := range w.Sites[1:] {
		if s.Clients != sc.Clients || s.Enrolled != float64(sc.Clients) || s.PeakRate <= 0 {
			t.Errorf("site %s: %+v; want %d clients enrolled there, with its pacing rate sampled", s.Site, s, sc.Clients)
		}
		if s.CentralCompletion <= 0 {
			t.Errorf("site %s: its first scans were never counted at CEN", s.Site)
		}
	}
	if w.CentralCompletionSecs <= 0 || w.CentralCompletionSecs < ro.CompletionSecs-1 || w.TargetSecs <= 0 || w.WorstLink == "" {
		t.Errorf("wave %+v, completion at the primaries %.1f s", w, ro.CompletionSecs)
	}
	sampled := 0
	for _, s := range hr.Timeline {
		for _, l := range s.Links {
			if l.CentralFreshness != nil && l.PacingRate != nil && l.PacingLag != nil {
				sampled++
			}
		}
	}
	if sampled < 2*sc.Primaries {
		t.Errorf("%d link samples with CEN's freshness and the primary's pacing", sampled)
	}
	dir := t.TempDir()
	if err := WriteResults(dir, res); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"wave-central-freshness.png", "wave-pacing-rate.png", "rollout-backlog.png", "freshness.png"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
	md, _ := os.ReadFile(filepath.Join(dir, "report.md"))
	if !strings.Contains(string(md), "### The rollout wave across the hierarchy") || !strings.Contains(string(md), "central completion") {
		t.Errorf("report.md has no wave section:\n%s", md)
	}
	t.Logf("%d × %d clients: completion %.1f s (central %.1f s), bound %.1f s, worst central freshness %.1f s (%s)",
		sc.Primaries, sc.Clients, ro.CompletionSecs, w.CentralCompletionSecs, ro.BoundSecs, w.WorstCentralFreshness, w.WorstLink)
}

// siteBinary skips under -short or without chDB's library (fails when STATEPIPE_REQUIRE_CHDB
// asks for it), and builds the statepipe binary the harness runs its sites with.
func siteBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a site (-short)")
	}
	root, _ := filepath.Abs("..")
	if os.Getenv("CHDB_LIB_PATH") == "" {
		lib := filepath.Join(root, ".deps/chdb/libchdb.so")
		if _, err := os.Stat(lib); err != nil {
			if os.Getenv("STATEPIPE_REQUIRE_CHDB") != "" {
				t.Fatalf("chDB is required (STATEPIPE_REQUIRE_CHDB) but neither CHDB_LIB_PATH nor %s is there", lib)
			}
			t.Skip("no chDB library: make deps, or set CHDB_LIB_PATH")
		}
		t.Setenv("CHDB_LIB_PATH", lib)
	}
	bin := filepath.Join(t.TempDir(), "statepipe")
	build := exec.Command("go", "build", "-o", bin, "./cmd/statepipe")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("cannot build statepipe: %v\n%s", err, out)
	}
	return bin
}
