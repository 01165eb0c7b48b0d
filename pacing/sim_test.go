package pacing

import (
	"math"
	"testing"
	"time"
)

// The control law's unit test is a deterministic queue simulation of a site, one step a
// second: clients wait to enrol (a pool fed by an arrival curve); the controller's rate admits
// some each second (a refused client retries, so the pool stays); an admitted client's first
// full scan arrives UploadDelay later with S messages; background reports add their messages;
// the projector folds Service messages a second, oldest first. The lag signal is the age of the
// oldest unfolded message, read a second late (the watermark's step) — the site's real signal.

type simPlant struct {
	service     func(t int) float64 // messages folded per second
	background  func(t int) float64 // messages per second from enrolled clients' reports
	arrivals    func(t int) float64 // new clients per second wanting to enrol
	perClient   float64             // messages in an admitted client's first scan
	uploadDelay int                 // seconds from admission to the scan's arrival
	blind       func(t int) bool    // the lag cannot be read at t (missing data)
	batch       int                 // the projector folds (and commits) every batch seconds (0: every second)
}

type chunk struct {
	at int
	n  float64
}

// simTrace is what a run recorded, a value a second.
type simTrace struct {
	lag, rate  []float64
	decision   []string
	admitted   float64
	total      float64 // messages folded
	done       int     // the second the pool and the queue emptied after the last admission (-1: never)
	pool       float64
	directions int // changes of direction of the rate
}

func simulate(t testing.TB, cfg Config, p simPlant, seconds int, initialPool float64) simTrace {
	t.Helper()
	c, err := New(cfg, 0)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	tr := simTrace{done: -1, pool: initialPool}
	var queue []chunk
	scans := map[int]float64{} // second → messages arriving
	carry, lastRead := 0.0, time.Time{}
	rate := cfg.StartRate
	lastDir, extreme := 0, 0.0
	var lagSeen float64
	for s := 0; s < seconds; s++ {
		now := start.Add(time.Duration(s) * time.Second)
		tr.pool += p.arrivals(s)
		// Admission: a token bucket of one second's worth at the rate.
		carry = min(carry+rate, max(rate, 1))
		adm := math.Floor(min(tr.pool, carry))
		carry -= adm
		refused := int64(0)
		if tr.pool-adm >= 1 {
			refused = int64(tr.pool - adm)
		}
		tr.pool -= adm
		tr.admitted += adm
		if adm > 0 {
			scans[s+p.uploadDelay] += adm * p.perClient
		}
		if n := scans[s] + p.background(s); n > 0 {
			queue = append(queue, chunk{s, n})
		}
		delete(scans, s)
		// The projector folds the oldest first, a batch at a time.
		budget := p.service(s)
		if p.batch > 1 {
			budget = 0
			if s%p.batch == 0 {
				for b := max(s-p.batch+1, 0); b <= s; b++ {
					budget += p.service(b)
				}
			}
		}
		for budget > 0 && len(queue) > 0 {
			take := min(budget, queue[0].n)
			queue[0].n -= take
			budget -= take
			tr.total += take
			if queue[0].n <= 1e-9 {
				queue = queue[1:]
			}
		}
		lag, queued := 0.0, 0.0
		if len(queue) > 0 {
			lag = float64(s - queue[0].at)
		}
		for _, q := range queue {
			queued += q.n
		}
		// The fold rate the site measures: the mean over the last 10 seconds.
		foldRate := 0.0
		for b := max(s-9, 0); b <= s; b++ {
			foldRate += p.service(b) / float64(s-max(s-9, 0)+1)
		}
		tr.lag = append(tr.lag, lag)
		// The controller reads the lag a second late (the watermark's step), unless blind.
		if p.blind == nil || !p.blind(s) {
			lastRead = now.Add(-time.Second)
		} else {
			lag = lagSeen
		}
		lagSeen = lag
		rs := []Reading{{Name: SignalLag, Value: lag, Target: cfg.Target.Seconds(), Unit: "s", Guard: true, At: lastRead},
			{Name: SignalWait, Value: queued / foldRate, Target: cfg.Target.Seconds(), Unit: "s", At: lastRead}}
		st := c.Step(now, rs, Demand{Admitted: int64(adm), Refused: refused})
		// A turn counts once the rate moved 10 % back from its last extreme (ripple of a few
		// percent is not a change of direction).
		switch r := st.EnrollRate; {
		case extreme == 0:
			extreme = r
		case lastDir >= 0 && r > extreme, lastDir <= 0 && r < extreme && lastDir != 0:
			extreme = r
		case lastDir >= 0 && r < extreme*0.9:
			if lastDir > 0 {
				tr.directions++
			}
			lastDir, extreme = -1, r
		case lastDir <= 0 && r > extreme*1.1:
			if lastDir < 0 {
				tr.directions++
			}
			lastDir, extreme = 1, r
		}
		rate = st.EnrollRate
		tr.rate = append(tr.rate, rate)
		tr.decision = append(tr.decision, st.Decision)
		if tr.done < 0 && tr.pool < 1 && len(queue) == 0 && len(scans) == 0 && p.arrivals(s) == 0 && s > 0 {
			tr.done = s
		}
	}
	return tr
}

func constant(v float64) func(int) float64 { return func(int) float64 { return v } }

// maxFrom is the largest value of xs from second from on.
func maxFrom(xs []float64, from int) (m float64, at int) {
	for i := from; i < len(xs); i++ {
		if xs[i] > m {
			m, at = xs[i], i
		}
	}
	return m, at
}

// A rollout wave: 100,000 clients want to enrol at once, each sending a 300-message first scan,
// at a site folding 100,000 messages a second — the capacity allows 300 s. The backlog stays
// under target throughout, and the wave completes within 1.25× of that.
func TestStepLoadRolloutWave(t *testing.T) {
	cfg := DefaultConfig()
	p := simPlant{service: constant(100_000), background: constant(0), arrivals: constant(0), perClient: 300, uploadDelay: 2}
	tr := simulate(t, cfg, p, 1200, 100_000)
	capacity := 100_000 * 300 / 100_000.0
	peak, at := maxFrom(tr.lag, 0)
	t.Logf("completed in %d s (capacity %.0f s: %.2f×), peak lag %.0f s at %d s, %d direction changes", tr.done, capacity, float64(tr.done)/capacity, peak, at, tr.directions)
	if tr.done < 0 {
		t.Fatalf("the wave did not complete in 1,200 s: %.0f clients still wait", tr.pool)
	}
	if peak >= cfg.Target.Seconds() {
		t.Errorf("peak lag %.0f s at %d s, want under the %s target throughout", peak, at, cfg.Target)
	}
	if ratio := float64(tr.done) / capacity; ratio > 1.25 {
		t.Errorf("the wave took %d s, %.2f× the %.0f s its capacity allows (want <= 1.25×)", tr.done, ratio, capacity)
	}
	if tr.admitted != 100_000 {
		t.Errorf("admitted %.0f clients, want 100,000: pacing delays, never loses", tr.admitted)
	}
}

// An hour of demand beyond capacity, with the background load stepping up (a Patch Tuesday
// rescan) and back down: after each transient the backlog is under target, and the rate turns
// only a few times in the hour.
func TestStepsInBackgroundLoadOverAnHour(t *testing.T) {
	cfg := DefaultConfig()
	bg := func(s int) float64 {
		if s >= 1200 && s < 2400 {
			return 60_000
		}
		return 20_000
	}
	p := simPlant{service: constant(100_000), background: bg, arrivals: constant(1000), perClient: 300, uploadDelay: 2}
	tr := simulate(t, cfg, p, 3600, 0)
	for _, span := range [][2]int{{120, 1200}, {1200 + 120, 2400}, {2400 + 120, 3600}} {
		peak, at := maxFrom(tr.lag[:span[1]], span[0])
		if peak >= cfg.Target.Seconds() {
			t.Errorf("lag %.0f s at %d s (between %d and %d s, after the transient), want under the %s target", peak, at, span[0], span[1], cfg.Target)
		}
	}
	peak, at := maxFrom(tr.lag, 0)
	t.Logf("peak lag %.0f s at %d s; rate at 1199 s %.0f/s, 2399 s %.0f/s, 3599 s %.0f/s; %d direction changes in the hour",
		peak, at, tr.rate[1199], tr.rate[2399], tr.rate[3599], tr.directions)
	if tr.directions > 6 {
		t.Errorf("the rate changed direction %d times in the hour, want a few (<= 6)", tr.directions)
	}
	// Equilibrium: (100k − bg) / 300 clients a second.
	for _, c := range []struct {
		at   int
		want float64
	}{{1199, 80_000.0 / 300}, {2399, 40_000.0 / 300}, {3599, 80_000.0 / 300}} {
		if r := tr.rate[c.at]; r < 0.8*c.want || r > 1.2*c.want {
			t.Errorf("rate at %d s is %.0f/s, want within 20%% of the %.0f/s the spare capacity allows", c.at, r, c.want)
		}
	}
}

// A projector that folds in batches every 3 seconds at a rate that varies by ±30 % from second
// to second, under demand beyond capacity for an hour: the window, the dead band and the curve
// keep most wiggles from the rate, so it turns only a few times (at most 10 swings of 10 % in
// the hour, one every 6 minutes, against one every 2–3 minutes without the curve), and the
// backlog stays under target.
func TestNoisyBatchedProjector(t *testing.T) {
	cfg := DefaultConfig()
	x := uint64(12345)
	noise := make([]float64, 3600)
	for i := range noise {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		noise[i] = 100_000 * (0.7 + 0.6*float64(x%1000)/1000)
	}
	p := simPlant{service: func(s int) float64 { return noise[s] }, background: constant(20_000), arrivals: constant(1000), perClient: 300, uploadDelay: 2, batch: 3}
	tr := simulate(t, cfg, p, 3600, 0)
	peak, at := maxFrom(tr.lag, 120)
	t.Logf("peak lag %.0f s at %d s after the first 2 minutes; rate at 3599 s %.0f/s; %d direction changes", peak, at, tr.rate[3599], tr.directions)
	if peak >= cfg.Target.Seconds() {
		t.Errorf("peak lag %.0f s at %d s, want under the %s target", peak, at, cfg.Target)
	}
	if tr.directions > 10 {
		t.Errorf("the rate changed direction %d times in the hour, want a few (<= 10 under this noise)", tr.directions)
	}
}

// Demand that ramps from nothing to twice the capacity over half an hour: the backlog stays
// under target.
func TestRampLoad(t *testing.T) {
	cfg := DefaultConfig()
	ramp := func(s int) float64 { return min(float64(s)/1800, 1) * 2 * 100_000 / 300 }
	p := simPlant{service: constant(100_000), background: constant(0), arrivals: ramp, perClient: 300, uploadDelay: 2}
	tr := simulate(t, cfg, p, 3600, 0)
	peak, at := maxFrom(tr.lag, 0)
	t.Logf("peak lag %.0f s at %d s; rate at 3599 s %.0f/s; %d direction changes", peak, at, tr.rate[3599], tr.directions)
	if peak >= cfg.Target.Seconds() {
		t.Errorf("peak lag %.0f s at %d s, want under the %s target", peak, at, cfg.Target)
	}
	if tr.directions > 6 {
		t.Errorf("the rate changed direction %d times in the hour, want a few (<= 6)", tr.directions)
	}
}

// The store slows to a fifth for five minutes: the rate falls, and once the backlog drains it
// recovers to what the capacity allows.
func TestRecoversOnceTheBacklogDrains(t *testing.T) {
	cfg := DefaultConfig()
	service := func(s int) float64 {
		if s >= 600 && s < 900 {
			return 20_000
		}
		return 100_000
	}
	p := simPlant{service: service, background: constant(10_000), arrivals: constant(1000), perClient: 300, uploadDelay: 2}
	tr := simulate(t, cfg, p, 2400, 0)
	want := 90_000.0 / 300
	low := minOf(tr.rate[600:900])
	t.Logf("rate before %.0f/s, lowest in the slowdown %.0f/s, at 1200 s %.0f/s, 1500 s %.0f/s; peak lag %.0f s", tr.rate[599], low, tr.rate[1199], tr.rate[1499], maxOf(tr.lag))
	if low > 0.5*want {
		t.Errorf("the rate stayed at %.0f/s or more while the store folded a fifth, want it cut", low)
	}
	recovered := -1
	for s := 900; s < len(tr.rate); s++ {
		if tr.rate[s] >= 0.8*want {
			recovered = s
			break
		}
	}
	if recovered < 0 || recovered > 900+600 {
		t.Fatalf("the rate had not recovered to 80%% of %.0f/s within 10 minutes of the store recovering (at 2399 s: %.0f/s)", want, tr.rate[2399])
	}
	t.Logf("recovered to 80%% %d s after the store did", recovered-900)
}

// Missing data counts as bad data: while the lag cannot be read, the controller pauses
// (admits nobody) within --pacing.max-staleness, and resumes at half its rate once it can.
func TestPausesOnMissingData(t *testing.T) {
	cfg := DefaultConfig()
	blind := func(s int) bool { return s >= 600 && s < 900 }
	p := simPlant{service: constant(100_000), background: constant(10_000), arrivals: constant(1000), perClient: 300, uploadDelay: 2, blind: blind}
	tr := simulate(t, cfg, p, 1200, 0)
	// The last reading, at 599 s, was of the lag at 598 s: stale once over 10 s old, at 609 s.
	first := 598 + int(cfg.MaxStaleness/time.Second) + 1
	for s := first; s < 900; s++ {
		if tr.rate[s] != 0 || tr.decision[s] != DecisionPause {
			t.Fatalf("second %d, %d s without a reading: rate %.0f/s, decision %s; want paused (rate 0)", s, s-600, tr.rate[s], tr.decision[s])
		}
	}
	if tr.decision[first-1] == DecisionPause {
		t.Errorf("paused at %d s, before the signal was %s old", first-1, cfg.MaxStaleness)
	}
	before := tr.rate[599]
	if got := tr.rate[900]; math.Abs(got-before/2) > 0.05*before {
		t.Errorf("resumed at %.0f/s, want half the %.0f/s before the pause", got, before)
	}
	if tr.rate[1199] < 0.8*before {
		t.Errorf("rate %.0f/s five minutes after resuming, want back near %.0f/s", tr.rate[1199], before)
	}
	// Never read at all: the start rate while the first readings are due (phases wait), then
	// paused.
	c, _ := New(cfg, 0)
	t0 := time.Now()
	st := c.Step(t0, []Reading{{Name: SignalLag, Target: 30}}, Demand{Refused: 10})
	if st.Decision != DecisionHold || st.EnrollRate != cfg.StartRate || st.BacklogOK {
		t.Errorf("a signal not read yet at start: %+v, want the start rate, phases waiting", st)
	}
	st = c.Step(t0.Add(cfg.MaxStaleness+time.Second), []Reading{{Name: SignalLag, Target: 30}}, Demand{Refused: 10})
	if st.Decision != DecisionPause || st.EnrollRate != 0 || st.BacklogOK {
		t.Errorf("a signal never read %s after start: %+v, want paused, rate 0, backlog not OK", cfg.MaxStaleness+time.Second, st)
	}
}

func minOf(xs []float64) float64 {
	m := math.Inf(1)
	for _, x := range xs {
		m = min(m, x)
	}
	return m
}

func maxOf(xs []float64) float64 { m, _ := maxFrom(xs, 0); return m }
