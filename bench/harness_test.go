package bench

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	timerate "golang.org/x/time/rate"

	"github.com/statepipe/statepipe/report"
)

// testHarness is a harness with no site: enough for its pure pieces.
func testHarness(sc *Scenario) *harness {
	if sc == nil {
		sc = &Scenario{Clients: 2, Concurrency: 4}
	}
	return &harness{cfg: HarnessConfig{Scenario: sc, CheckTimeout: 50 * time.Millisecond}, sc: sc, out: newConsole(nil),
		res: &HarnessResult{StageRatios: map[string]float64{}}, pace: newPacer(sc), pollEvery: time.Millisecond}
}

func TestAwaitOracle(t *testing.T) {
	h := testHarness(nil)
	calls := 0
	var cp Checkpoint
	h.awaitOracle(context.Background(), &cp, "1", func() error {
		if calls++; calls < 3 {
			return errors.New("compliance: upd-00001 differs")
		}
		return nil
	})
	if !cp.OK || cp.FirstDiffers != "" || calls != 3 {
		t.Errorf("equal on the third comparison: %+v after %d calls", cp, calls)
	}

	cp = Checkpoint{}
	h.awaitOracle(context.Background(), &cp, "2", func() error { return errors.New("scan: 3 rows differ") })
	if cp.OK || cp.FirstDiffers != "scan: 3 rows differ" || cp.CatchUpSecs < h.cfg.CheckTimeout.Seconds() {
		t.Errorf("never equal: %+v, want the last difference after the %s timeout", cp, h.cfg.CheckTimeout)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	calls, cp = 0, Checkpoint{}
	h.cfg.CheckTimeout = time.Hour
	h.awaitOracle(ctx, &cp, "3", func() error { calls++; return errors.New("differs") })
	if cp.OK || calls != 1 {
		t.Errorf("cancelled: %+v after %d comparisons, want one", cp, calls)
	}
}

func TestSummarise(t *testing.T) {
	nan := math.NaN()
	r := &HarnessResult{Messages: 1000, SendSeconds: 10, Checkpoints: []Checkpoint{
		{OK: true}, {FirstDiffers: "first"}, {FirstDiffers: "second"}},
		Timeline: Timeline{
			{At: 5 * time.Second, Folded: 400, P99: nan, HarnessRSS: 30, BrokerRSS: 7},
			{At: 8 * time.Second, Folded: 999, P99: 2.5, HarnessRSS: 50},
			{At: 12 * time.Second, Folded: 1000, P99: 1.5, HarnessRSS: 40, BrokerRSS: 9},
			{At: 13 * time.Second, Folded: 1000, P99: nan},
		}}
	r.summarise(20 * time.Second)
	want := HarnessResult{DurationSeconds: 12, OracleError: "first", IngestMsgsPerS: 100, E2EMsgsPerS: 1000.0 / 12,
		MaxBacklogSecs: 2.5, HarnessPeakRSS: 50, BrokerPeakRSS: 9}
	if r.DurationSeconds != want.DurationSeconds || r.OracleOK || r.OracleError != want.OracleError ||
		r.IngestMsgsPerS != want.IngestMsgsPerS || r.E2EMsgsPerS != want.E2EMsgsPerS || r.MaxBacklogSecs != want.MaxBacklogSecs ||
		r.HarnessPeakRSS != want.HarnessPeakRSS || r.BrokerPeakRSS != want.BrokerPeakRSS {
		t.Errorf("summarised %+v\nwant %+v", *r, want)
	}

	// Never all folded: visible when the final check ended.
	r = &HarnessResult{Messages: 1000, Checkpoints: []Checkpoint{{OK: true}}, Timeline: Timeline{{At: time.Second, Folded: 10, P99: nan}}}
	r.summarise(20 * time.Second)
	if r.DurationSeconds != 20 || !r.OracleOK || r.E2EMsgsPerS != 50 || r.IngestMsgsPerS != 0 {
		t.Errorf("summarised %+v, want 20 s to visible, oracle ok, 50 msgs/s, no ingest rate without send time", *r)
	}
}

func TestStageRates(t *testing.T) {
	const conc = 4
	tl := Timeline{
		{At: 0, InFlight: 1},
		{At: 1 * time.Second, Acked: 100, InFlight: 4, Folded: 0, FoldedRecords: 0, LagRecords: 50},
		{At: 2 * time.Second, Acked: 600, InFlight: 8, Folded: 800, FoldedRecords: 40, LagRecords: 20},   // busy; 40 ≤ 50 waiting
		{At: 3 * time.Second, Acked: 1000, InFlight: 5, Folded: 1000, FoldedRecords: 50, LagRecords: 0},  // busy; none left waiting
		{At: 4 * time.Second, Acked: 1100, InFlight: 2, Folded: 1100, FoldedRecords: 60, LagRecords: 5},  // senders idle; 10 > 0 waiting
		{At: 6 * time.Second, Acked: 1100, InFlight: 0, Folded: 1500, FoldedRecords: 70, LagRecords: 30}, // 10 > 5 waiting
		{At: 7 * time.Second, Acked: 1100, InFlight: 0, Folded: 2100, FoldedRecords: 95, LagRecords: 5},  // 25 ≤ 30 waiting, some left
	}
	got := stageRates(tl, conc, projectorTotals{messages: 2100, insertSeconds: 0.5})
	want := map[string]StageRate{
		stageIngest:    {MsgsPerS: 450, Seconds: 2},    // (600-100) + (1000-600) over 1→3 s
		stageProjector: {MsgsPerS: 700, Seconds: 2},    // (800-0) + (2100-1500) over 1→2 s and 6→7 s
		stageInsert:    {MsgsPerS: 4200, Seconds: 0.5}, // 2,100 messages in 0.5 s of inserts
	}
	if len(got) != len(want) {
		t.Fatalf("stages %v, want %v", got, want)
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: %+v, want %+v", k, got[k], w)
		}
	}

	// A run that never held a stage back measures none of them.
	quiet := Timeline{{At: 0}, {At: time.Second, Acked: 10, InFlight: 1, Folded: 10, FoldedRecords: 1}}
	if got := stageRates(quiet, conc, projectorTotals{}); len(got) != 0 {
		t.Errorf("quiet run: %v, want no stage measured", got)
	}
}

func TestStageRatiosAndCeilingsTable(t *testing.T) {
	r := &HarnessResult{E2EMsgsPerS: 500, StageRatios: map[string]float64{},
		Ceilings: &Ceilings{Records: 10, Messages: 100, ProduceMsgsPerS: 100000, ConsumeMsgsPerS: 200000, InsertMsgsPerS: 20000},
		Stages:   map[string]StageRate{stageIngest: {MsgsPerS: 430, Seconds: 12}, stageInsert: {MsgsPerS: 13000, Seconds: 1.5}}}
	r.stageRatios()
	want := map[string]float64{"ingest_vs_kafka_produce": 0.0043, "projector_vs_engine_insert": 0.65, "e2e_vs_slowest_ceiling": 0.025}
	if len(r.StageRatios) != len(want) {
		t.Errorf("ratios %v, want %v (none for the unmeasured projector stage)", r.StageRatios, want)
	}
	for k, w := range want {
		if math.Abs(r.StageRatios[k]-w) > 1e-9 {
			t.Errorf("%s = %v, want %v", k, r.StageRatios[k], w)
		}
	}
	md := Markdown(r)
	for _, line := range []string{
		"| kafka-go produce, acks=all (ingest → Kafka) | 100000 msgs/s | 430 msgs/s acknowledged by ingest while every sender was busy (12.0 s of the run) | 0.43 % |",
		"| kafka-go consume (Kafka → projector) | 200000 msgs/s | not measured in this run: the projector was never a second behind | — |",
		"| bulk insert of the folded rows (projector → engine) | 20000 msgs/s | 13000 msgs/s folded per second inside the projector's inserts (1.5 s of the run) | 65 % |",
	} {
		if !strings.Contains(md, line+"\n") {
			t.Errorf("report.md lacks the row\n%s\nin\n%s", line, md)
		}
	}
	if strings.Contains(md, "| | ") || strings.Contains(md, "| 0 % |") {
		t.Errorf("report.md has an empty stage or a 0 %% ratio:\n%s", md)
	}
}

func TestPercent(t *testing.T) {
	for v, want := range map[float64]string{0.0043: "0.43 %", 0.029: "2.9 %", 0.65: "65 %", 1.2: "120 %"} {
		if got := percent(v); got != want {
			t.Errorf("percent(%v) = %q, want %q", v, got, want)
		}
	}
}

func TestSweep(t *testing.T) {
	sc := &Scenario{Clients: 2, Concurrency: 4, Rates: []float64{10, 20}, Step: Duration(time.Minute)}
	h := testHarness(sc)
	if h.sweep() || h.stats.sweeping.Load() {
		t.Fatal("the sweep began before any client's first scan was in")
	}
	h.stats.firsts.Store(2)
	h.stats.lastLag.Store(11)
	h.res.Timeline = Timeline{{At: time.Second, LagRecords: 11}}
	if h.sweep() || h.stats.sweeping.Load() {
		t.Fatal("the sweep began with more than a second of the first rate waiting")
	}
	h.stats.lastLag.Store(10)
	h.res.Timeline = append(h.res.Timeline, Sample{At: 2 * time.Second, LagRecords: 10})
	if h.sweep() || !h.stats.sweeping.Load() || len(h.res.Steps) != 0 {
		t.Fatalf("the sweep must begin, with no step over yet: sweeping %v, steps %v", h.stats.sweeping.Load(), h.res.Steps)
	}
	h.pace.stepStart = time.Now().Add(-time.Hour) // the first step has been held long enough
	if over := h.sweep(); over || len(h.res.Steps) != 1 || h.res.Steps[0].Rate != 10 || h.pace.limiter.Limit() != timerate.Limit(20) || h.pace.lagStart != 10 {
		t.Fatalf("after the first step: over %v, steps %+v, limit %v, lag at start %d", over, h.res.Steps, h.pace.limiter.Limit(), h.pace.lagStart)
	}
	if h.sweep() {
		t.Fatal("the second step ended at once")
	}
	h.pace.stepStart = time.Now().Add(-time.Hour)
	if !h.sweep() || len(h.res.Steps) != 2 || h.res.Steps[1].Rate != 20 {
		t.Fatalf("the last step must end the sweep: steps %+v", h.res.Steps)
	}
	if newPacer(&Scenario{}) != nil {
		t.Error("a scenario without a rate is paced")
	}
}

func TestConsoleKeepsMessagesApart(t *testing.T) {
	var b strings.Builder
	c := newConsole(&b)
	var done atomic.Int64
	stop := c.count("clients enrolled", time.Now(), &done, 3)
	done.Store(3)
	stop()
	c.logf("enrolled %d clients", 3)
	c.status("sample %d", 1)
	c.status("sample %d", 2)
	c.logf("checkpoint 1\n")
	c.logf("raw ceilings")
	got := b.String()
	lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	if len(lines) != 5 || !strings.HasSuffix(lines[0], "3/3 clients enrolled") || lines[1] != "enrolled 3 clients" ||
		lines[2] != "\rsample 1\rsample 2" || lines[3] != "checkpoint 1" || lines[4] != "raw ceilings" {
		t.Errorf("console wrote %q", got)
	}
	// A console without a writer says nothing, and does not fail.
	quiet := newConsole(nil)
	quiet.logf("nothing")
	quiet.status("nothing")
	quiet.count("clients", time.Now(), &done, 3)()
}

func TestCompareComputers(t *testing.T) {
	want := report.ComputerCounts{Compliant: 42, NonCompliant: 1958, Total: 2000}
	for pct, ok := range map[float64]bool{2.1: true, 2.2: false, 0: false} {
		got := want
		got.CompliantPct = pct
		if err := compareComputers(got, want); (err == nil) != ok {
			t.Errorf("42 of 2000 shown as %v %%: %v", pct, err)
		}
	}
	got := want
	got.CompliantPct, got.Unknown = 2.1, 1
	if compareComputers(got, want) == nil {
		t.Error("a count that differs passed")
	}
	if err := compareComputers(report.ComputerCounts{}, report.ComputerCounts{}); err != nil {
		t.Errorf("no computers: %v", err)
	}
}
