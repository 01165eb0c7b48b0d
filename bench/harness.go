package bench

import (
	"bufio"
	"bytes"
	"container/heap"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	timerate "golang.org/x/time/rate"

	"github.com/statepipe/statepipe/client"
	"github.com/statepipe/statepipe/internal/chdb"
	"github.com/statepipe/statepipe/internal/kafka"
	"github.com/statepipe/statepipe/report"
	"github.com/statepipe/statepipe/schema"
)

// HarnessConfig says how to run a scenario.
type HarnessConfig struct {
	Scenario *Scenario
	// Bin is the statepipe binary the site runs as (a child process, so its memory is its
	// own); Brokers, when set, is a real Kafka for it (else its embedded broker).
	Bin     string
	Brokers string
	Site    string // default P01
	// Data is the site's data directory (default: a temporary one, removed afterwards).
	Data string
	// BrokerPID is the Kafka broker's process id, for its memory (0: not measured).
	BrokerPID int
	// SiteCPUProfile, when set, is where the site process writes a CPU profile of the run.
	SiteCPUProfile string
	// CheckTimeout bounds the wait for the reports to equal the oracle at a checkpoint and at
	// the end (default 10 min).
	CheckTimeout time.Duration
	// Ceilings measures the raw ceilings after the run, with the first SampleMessages state
	// messages sent (default 2,000,000), as they were sent.
	Ceilings       bool
	SampleMessages int64
	Progress       io.Writer
}

// HarnessResult is what a run measured; it is result.json.
type HarnessResult struct {
	Scenario        string    `json:"scenario"`
	Description     string    `json:"description,omitempty"`
	Machine         string    `json:"machine"`
	Kafka           string    `json:"kafka"`
	World           string    `json:"world"`
	Started         time.Time `json:"started"`
	Clients         int       `json:"clients"`
	Messages        int64     `json:"messages"`
	Reports         int64     `json:"reports"`
	EnrollSeconds   float64   `json:"enroll_seconds"`
	DurationSeconds float64   `json:"duration_seconds"` // first report sent → the last visible and equal to the oracle
	SendSeconds     float64   `json:"send_seconds"`     // first report sent → the last acknowledged
	IngestMsgsPerS  float64   `json:"ingest_msgs_per_second"`
	E2EMsgsPerS     float64   `json:"e2e_msgs_per_second"`
	P50Latency      float64   `json:"p50_latency_seconds"` // ingest acceptance → committed (visible), all records
	P90Latency      float64   `json:"p90_latency_seconds"`
	P99Latency      float64   `json:"p99_latency_seconds"`
	MaxBacklogSecs  float64   `json:"max_backlog_seconds"` // worst per-second p99 visible delay
	// MaxSimLag is the most a client's event was sent behind its simulated time: when the
	// machine cannot send as fast as simulated time asks, the scenario plays out slower.
	MaxSimLag      Duration           `json:"max_sim_lag"`
	PeakRSS        int64              `json:"peak_rss_bytes"` // the site process
	HarnessPeakRSS int64              `json:"harness_peak_rss_bytes"`
	BrokerPeakRSS  int64              `json:"broker_peak_rss_bytes,omitempty"`
	Ceilings       *Ceilings          `json:"ceilings,omitempty"`
	StageRatios    map[string]float64 `json:"stage_ratios"`
	Checkpoints    []Checkpoint       `json:"checkpoints"`
	OracleOK       bool               `json:"oracle_ok"`
	OracleError    string             `json:"oracle_error,omitempty"`
	Steps          []RateStep         `json:"rate_steps,omitempty"`
	Timeline       Timeline           `json:"timeline"`
	Plots          []string           `json:"plots,omitempty"`
	Goals          []Goal             `json:"goals,omitempty"`
}

// Checkpoint is one comparison with the oracle.
type Checkpoint struct {
	SimTime      Duration `json:"sim_time"`
	Acked        int64    `json:"acked"`
	CatchUpSecs  float64  `json:"catch_up_seconds"` // from the pause until the reports equalled the oracle
	OK           bool     `json:"ok"`
	FirstDiffers string   `json:"first_differs,omitempty"`
}

// RateStep is one step of a rate sweep.
type RateStep struct {
	Rate             float64 `json:"reports_per_second"`
	AckedMsgsPerS    float64 `json:"acked_msgs_per_second"`
	AckedReportsPerS float64 `json:"acked_reports_per_second"`
	LagStart         int64   `json:"lag_start"`
	LagEnd           int64   `json:"lag_end"`
	P99              float64 `json:"p99_latency_seconds"`
	Sustained        bool    `json:"sustained"` // the projector kept up: the lag did not grow
}

// Goal is one of DESIGN §5's goals, met or not.
type Goal struct {
	What string `json:"what"`
	Want string `json:"want"`
	Got  string `json:"got"`
	Met  bool   `json:"met"`
}

// wakeHeap orders clients by the simulated time they next wake.
type wakeHeap []*simClient

func (h wakeHeap) Len() int           { return len(h) }
func (h wakeHeap) Less(i, j int) bool { return h[i].wake < h[j].wake }
func (h wakeHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *wakeHeap) Push(x any)        { *h = append(*h, x.(*simClient)) }
func (h *wakeHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// simClock is simulated time: TimeScale × wall time, stopped while paused.
type simClock struct {
	mu     sync.Mutex
	scale  float64
	start  time.Time
	paused time.Duration
	since  time.Time // zero unless paused
}

func (c *simClock) now() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	wall := time.Since(c.start) - c.paused
	if !c.since.IsZero() {
		wall -= time.Since(c.since)
	}
	return time.Duration(float64(wall) * c.scale)
}

func (c *simClock) pause() {
	c.mu.Lock()
	c.since = time.Now()
	c.mu.Unlock()
}

func (c *simClock) resume() {
	c.mu.Lock()
	c.paused += time.Since(c.since)
	c.since = time.Time{}
	c.mu.Unlock()
}

// RunScenario runs a scenario against a site it starts, checks every report against the
// oracle at the checkpoints and at the end, and returns what it measured.
func RunScenario(ctx context.Context, cfg HarnessConfig) (res *HarnessResult, err error) {
	sc := cfg.Scenario
	if cfg.Site == "" {
		cfg.Site = "P01"
	}
	if cfg.CheckTimeout == 0 {
		cfg.CheckTimeout = 10 * time.Minute
	}
	if cfg.SampleMessages == 0 {
		cfg.SampleMessages = 2_000_000
	}
	logf := func(format string, a ...any) {
		if cfg.Progress != nil {
			fmt.Fprintf(cfg.Progress, format+"\n", a...)
		}
	}
	res = &HarnessResult{Scenario: sc.Name, Description: sc.Description, Machine: Machine(), Started: time.Now().UTC(),
		Clients: sc.Clients, StageRatios: map[string]float64{}}
	site, err := startSite(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer site.stop()
	res.Kafka = site.kafka
	span := sc.Duration.D()
	if span == 0 {
		span = time.Hour
	}
	w := newWorld(sc, time.Now().Add(-span).Truncate(time.Second))
	res.World = w.describe()
	logf("%s: %s; site %s (%s)", sc.Name, res.World, site.url, site.kafka)

	before, drop := w.refLines()
	for _, kind := range schema.RefKinds {
		if err := site.importRef(ctx, kind, before[kind]); err != nil {
			return res, err
		}
	}
	if err := site.waitList(ctx, checkedList); err != nil {
		return res, err
	}

	// Enrol (not timed: a rollout's enrolment is paced separately).
	hc := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: sc.Concurrency, MaxConnsPerHost: sc.Concurrency}}
	sdk := make([]*client.Client, sc.Clients)
	var resyncMsgs atomic.Int64
	enrolStart := time.Now()
	var enrolled atomic.Int64
	stop := progress(cfg.Progress, enrolStart, &enrolled, int64(sc.Clients))
	err = forEachClient(ctx, SmokeConfig{Clients: sc.Clients, Concurrency: 32}, func(i int) (err error) {
		c := w.clients[i]
		ccfg := client.Config{URL: site.url, Site: cfg.Site, ClientID: c.id, HTTPClient: hc, MaxAttempts: 1000, BackoffMax: 5 * time.Second,
			ResyncTypes: []schema.TopicType{schema.TopicUpdateCompliance},
			OnResync: func(context.Context) ([]schema.StateMessage, error) {
				m := w.resyncState(c)
				resyncMsgs.Add(int64(len(m)) + 1)
				return m, nil
			}}
		if sc.Unsigned {
			sdk[i], err = client.New(ccfg)
		} else {
			sdk[i], err = client.Enroll(ctx, ccfg)
		}
		enrolled.Add(1)
		return err
	})
	stop()
	if err != nil {
		return res, fmt.Errorf("enrol: %w", err)
	}
	res.EnrollSeconds = time.Since(enrolStart).Seconds()
	logf("enrolled %d clients in %.1fs", sc.Clients, res.EnrollSeconds)

	// The run.
	var (
		mu       sync.Mutex
		wakes    = wakeHeap{}
		acked    atomic.Int64
		reports  atomic.Int64
		inFlight sync.WaitGroup
		sendErr  atomic.Pointer[error]
		sample   []*schema.Report
		sampled  atomic.Int64
		dropDone atomic.Bool
		firsts   atomic.Int64 // clients whose first report was acknowledged
		sweeping atomic.Bool  // a rate sweep's steps have begun
		ended    atomic.Bool  // simulated time reached the end: clients are not scheduled again
		lastLag  atomic.Int64 // the lag of the last sample
	)
	for _, c := range w.clients {
		wakes = append(wakes, c)
	}
	heap.Init(&wakes)
	clock := &simClock{scale: sc.TimeScale}
	work := make(chan *simClient, sc.Concurrency)
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var workers sync.WaitGroup
	for range sc.Concurrency {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for c := range work {
				msgs, full := w.act(c, c.wake)
				if len(msgs) > 0 {
					if err := sdk[c.idx].Report(rctx, full, msgs...); err != nil {
						sendErr.CompareAndSwap(nil, &err)
						cancel()
					} else {
						acked.Add(int64(len(msgs)))
						reports.Add(1)
						if full {
							firsts.Add(1)
						}
						if cfg.Ceilings && sampled.Add(int64(len(msgs))) <= cfg.SampleMessages {
							rep := &schema.Report{V: schema.Version, Client: c.id, Site: cfg.Site, Messages: msgs}
							if full {
								rep.FullTypes = []schema.TopicType{schema.TopicUpdateCompliance, schema.TopicScan}
							}
							mu.Lock()
							sample = append(sample, rep)
							mu.Unlock()
						}
					}
				}
				if next := c.nextWake(); next >= 0 && !ended.Load() {
					c.wake = next
					mu.Lock()
					heap.Push(&wakes, c)
					mu.Unlock()
				}
				inFlight.Done()
			}
		}()
	}
	var limiter *timerate.Limiter
	rates := sc.Rates
	if sc.Rate > 0 {
		rates = []float64{sc.Rate}
	}
	if len(rates) > 0 {
		limiter = timerate.NewLimiter(timerate.Limit(rates[0]), max(1, int(rates[0]/10)))
	}
	sampler := newSampler(site, cfg.BrokerPID)
	samplerDone := make(chan struct{})
	samplerStop := make(chan struct{})
	begin := time.Now()
	go func() {
		defer close(samplerDone)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-samplerStop:
				return
			case <-t.C:
			}
			s := sampler.sample(rctx, time.Since(begin), clock.now(), acked.Load())
			s.Reports = reports.Load()
			if sweeping.Load() {
				s.Rate = float64(limiter.Limit())
			}
			lastLag.Store(s.LagRecords)
			res.Timeline = append(res.Timeline, s)
			if cfg.Progress != nil {
				fmt.Fprintf(cfg.Progress, "\r%6.0fs  sim %-9s acked %11d  folded %11d  lag %8d  p99 %6.2fs  site rss %5d MiB   ",
					s.At.Seconds(), s.SimTime.Truncate(time.Minute), s.Acked, s.Folded, s.LagRecords, nanZero(s.P99), s.SiteRSS>>20)
			}
		}
	}()
	stopSampler := func() {
		select {
		case <-samplerStop:
		default:
			close(samplerStop)
			<-samplerDone
		}
	}
	defer stopSampler()

	check := func(label string) Checkpoint {
		clock.pause()
		defer clock.resume()
		inFlight.Wait()
		cp := Checkpoint{SimTime: Duration(clock.now()), Acked: acked.Load() + resyncMsgs.Load()}
		start := time.Now()
		deadline := start.Add(cfg.CheckTimeout)
		var lastSaid time.Time
		for {
			err := w.check(ctx, site, acked.Load()+resyncMsgs.Load(), dropDone.Load())
			if err == nil {
				cp.OK, cp.CatchUpSecs = true, time.Since(start).Seconds()
				break
			}
			if time.Since(start) > 10*time.Second && time.Since(lastSaid) > 30*time.Second {
				logf("\ncheckpoint %s: not equal yet after %.0fs: %v", label, time.Since(start).Seconds(), err)
				lastSaid = time.Now()
			}
			cp.FirstDiffers = err.Error()
			if time.Now().After(deadline) || ctx.Err() != nil {
				cp.CatchUpSecs = time.Since(start).Seconds()
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
		if cp.OK {
			cp.FirstDiffers = ""
			logf("\ncheckpoint %s (sim %s): reports equal the oracle %.1fs after the pause", label, time.Duration(cp.SimTime).Truncate(time.Second), cp.CatchUpSecs)
		} else {
			logf("\ncheckpoint %s (sim %s): NOT EQUAL to the oracle after %.0fs: %s", label, time.Duration(cp.SimTime).Truncate(time.Second), cp.CatchUpSecs, cp.FirstDiffers)
		}
		res.Checkpoints = append(res.Checkpoints, cp)
		return cp
	}

	clock.start = time.Now()
	var simLag time.Duration // the most a client's wake was dispatched behind simulated time
	nextCheck := sc.Checkpoints.D()
	stepStart, step := time.Now(), 0
	var stepLag int64
	var lastSend time.Time
	for rctx.Err() == nil {
		now := clock.now()
		ending := sc.Duration > 0 && now >= sc.Duration.D()
		if ending {
			// Simulated time stops at the end; what fell due before it is still sent, once
			// per client (a client behind its schedule — paced runs — is not caught up).
			now = sc.Duration.D()
			ended.Store(true)
		}
		if p := sc.PatchTuesday; p != nil && !dropDone.Load() && now >= p.At.D() {
			if err := site.importRef(ctx, schema.RefCatalog, drop[:len(drop)-1]); err != nil {
				return res, err
			}
			if err := site.importRef(ctx, schema.RefUpdateLists, drop[len(drop)-1:]); err != nil {
				return res, err
			}
			dropDone.Store(true)
			logf("\nPatch Tuesday: %d updates synchronised at sim %s", p.Updates, now.Truncate(time.Minute))
		}
		if nextCheck > 0 && now >= nextCheck {
			check(fmt.Sprintf("%d", len(res.Checkpoints)+1))
			nextCheck += sc.Checkpoints.D()
			continue
		}
		if limiter != nil && !sweeping.Load() {
			// The sweep starts once every client's first scan is in and its backlog has
			// drained to about a second of the first rate: before, the steps would measure
			// the storm of first scans.
			if firsts.Load() == int64(sc.Clients) && lastLag.Load() <= int64(rates[0]) && len(res.Timeline) > 0 {
				sweeping.Store(true)
				logf("\nrate sweep starts at %.0fs", time.Since(begin).Seconds())
			}
			stepStart = time.Now()
		}
		if limiter != nil && len(rates) > 1 && time.Since(stepStart) >= sc.Step.D() {
			res.Steps = append(res.Steps, sweepStep(res.Timeline, rates[step], stepLag))
			step++
			if step == len(rates) {
				break
			}
			limiter.SetLimit(timerate.Limit(rates[step]))
			limiter.SetBurst(max(1, int(rates[step]/10)))
			stepStart = time.Now()
			if n := len(res.Timeline); n > 0 {
				stepLag = res.Timeline[n-1].LagRecords
			}
		}
		mu.Lock()
		var c *simClient
		if wakes.Len() > 0 && wakes[0].wake <= now {
			c = heap.Pop(&wakes).(*simClient)
			if late := now - c.wake; late > simLag {
				simLag = late
			}
		}
		idle := wakes.Len() == 0 || ending && wakes[0].wake > now
		mu.Unlock()
		if c == nil {
			if idle && (sc.Duration == 0 || ending) {
				inFlight.Wait()
				mu.Lock()
				idle = wakes.Len() == 0 || ending && wakes[0].wake > now
				mu.Unlock()
				if idle {
					break
				}
			}
			time.Sleep(2 * time.Millisecond)
			continue
		}
		if limiter != nil && c.enrolled {
			if err := limiter.Wait(rctx); err != nil {
				break
			}
		}
		inFlight.Add(1)
		select {
		case work <- c:
			lastSend = time.Now()
		case <-rctx.Done():
			inFlight.Done()
		}
	}
	if len(rates) > 1 && step < len(rates) {
		res.Steps = append(res.Steps, sweepStep(res.Timeline, rates[step], stepLag))
	}
	inFlight.Wait()
	close(work)
	workers.Wait()
	if p := sendErr.Load(); p != nil {
		return res, fmt.Errorf("a report was never acknowledged: %w", *p)
	}
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	res.SendSeconds = lastSend.Sub(begin).Seconds()
	res.MaxSimLag = Duration(simLag)
	check("final")
	checked := time.Since(begin)
	stopSampler()
	res.Messages = acked.Load() + resyncMsgs.Load()
	// Visible: the first sample whose folded count reached every acknowledged message (the
	// oracle check's own queries are not part of the run); the check's end otherwise.
	res.DurationSeconds = checked.Seconds()
	for _, s := range res.Timeline {
		if s.Folded >= res.Messages {
			res.DurationSeconds = s.At.Seconds()
			break
		}
	}
	res.Reports = reports.Load()
	res.OracleOK = true
	for _, cp := range res.Checkpoints {
		if !cp.OK {
			res.OracleOK, res.OracleError = false, cp.FirstDiffers
			break
		}
	}
	if res.SendSeconds > 0 {
		res.IngestMsgsPerS = float64(res.Messages) / res.SendSeconds
	}
	if res.DurationSeconds > 0 {
		res.E2EMsgsPerS = float64(res.Messages) / res.DurationSeconds
	}
	if h, err := site.visibleHistogram(ctx); err == nil {
		res.P50Latency, res.P90Latency, res.P99Latency = h.quantile(.5), h.quantile(.9), h.quantile(.99)
	}
	for _, s := range res.Timeline {
		if !math.IsNaN(s.P99) {
			res.MaxBacklogSecs = math.Max(res.MaxBacklogSecs, s.P99)
		}
		res.HarnessPeakRSS = max(res.HarnessPeakRSS, s.HarnessRSS)
		res.BrokerPeakRSS = max(res.BrokerPeakRSS, s.BrokerRSS)
	}
	res.PeakRSS = ProcStatus(site.pid(), "VmHWM")
	res.HarnessPeakRSS = max(res.HarnessPeakRSS, ProcStatus(os.Getpid(), "VmHWM"))
	if cfg.Ceilings && len(sample) > 0 {
		logf("raw ceilings with the first %d reports (%d messages) as sent", len(sample), min(sampled.Load(), cfg.SampleMessages))
		c, err := measureCeilings(ctx, site, sample, cfg.Progress)
		if err != nil {
			return res, fmt.Errorf("ceilings: %w", err)
		}
		res.Ceilings = c
		ratio := func(name string, stage, ceiling float64) {
			if ceiling > 0 {
				res.StageRatios[name] = stage / ceiling
			}
		}
		ratio("ingest_vs_kafka_produce", res.IngestMsgsPerS, c.ProduceMsgsPerS)
		ratio("projector_vs_kafka_consume", res.E2EMsgsPerS, c.ConsumeMsgsPerS)
		ratio("projector_vs_engine_insert", res.E2EMsgsPerS, c.InsertMsgsPerS)
		ratio("e2e_vs_slowest_ceiling", res.E2EMsgsPerS, min(c.ProduceMsgsPerS, c.ConsumeMsgsPerS, c.InsertMsgsPerS))
	}
	res.Goals = goals(res)
	return res, nil
}

// measureCeilings runs MeasureCeilings against the site's broker and a chDB store of the
// harness's own (the same engine, another process: chDB allows one session per process).
func measureCeilings(ctx context.Context, site *harnessSite, sample []*schema.Report, progress io.Writer) (*Ceilings, error) {
	dir, err := os.MkdirTemp("", "statepipe-ceiling-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	st, err := chdb.New(chdb.Config{Path: dir})
	if err != nil {
		return nil, err
	}
	defer st.Close()
	cfg := CeilingsConfig{Kafka: kafka.Defaults(), Store: st, Progress: progress}
	cfg.Kafka.Brokers = strings.Split(site.brokers, ",")
	for _, r := range sample {
		var b bytes.Buffer
		if err := schema.EncodeReport(&b, r); err != nil {
			return nil, err
		}
		cfg.Values = append(cfg.Values, b.Bytes())
		cfg.Keys = append(cfg.Keys, []byte(r.Client))
	}
	return MeasureCeilings(ctx, cfg)
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
				add("stage efficiency "+k, "≥ 50 % of its raw ceiling", fmt.Sprintf("%.0f %%", 100*v), v >= .5)
			}
		}
	case len(r.Steps) > 0:
		knee, half := kneeOf(r.Steps)
		add("sustained end-to-end state messages/s (the knee)", "≥ 200,000", fmt.Sprintf("%.0f", knee), knee >= 200000)
		if half != nil {
			add(fmt.Sprintf("p99 ingest → visible at about half the knee (%.0f reports/s)", half.Rate), "≤ 2 s", fmt.Sprintf("%.2f s", half.P99), half.P99 <= 2)
		}
	}
	add("every report equals the oracle", "yes", fmt.Sprint(r.OracleOK), r.OracleOK)
	return g
}

// kneeOf returns the messages/s of the last step the site kept up with, and the step nearest
// half of it.
func kneeOf(steps []RateStep) (float64, *RateStep) {
	var knee float64
	for _, s := range steps {
		if !s.Sustained {
			break
		}
		knee = s.AckedMsgsPerS
	}
	var half *RateStep
	for i := range steps {
		if steps[i].Sustained && (half == nil || math.Abs(steps[i].AckedMsgsPerS-knee/2) < math.Abs(half.AckedMsgsPerS-knee/2)) {
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

// --- the site under test ---

type harnessSite struct {
	cmd     *exec.Cmd
	url     string
	kafka   string
	db      string
	dir     string
	tmp     bool
	hc      *http.Client
	brokers string
}

var siteURL = regexp.MustCompile(`POST (https?://[0-9.:]+)/v1/reports`)
var siteKafka = regexp.MustCompile(`kafka +(.*), topic`)

// startSite starts `statepipe run` as a child process on free ports.
func startSite(ctx context.Context, cfg HarnessConfig) (*harnessSite, error) {
	s := &harnessSite{dir: cfg.Data, db: "statepipe_" + strings.ToLower(cfg.Site), hc: &http.Client{Timeout: 10 * time.Minute}}
	if s.dir == "" {
		d, err := os.MkdirTemp("", "statepipe-harness-")
		if err != nil {
			return nil, err
		}
		s.dir, s.tmp = d, true
	}
	// Enrolment is not paced here: the harness enrols the whole simulated estate before it
	// measures folding (rollout pacing is a scenario of its own).
	args := []string{"run", "--data", s.dir, "--listen", "127.0.0.1:0", "--site", cfg.Site, "--projector.lag-every", "1s",
		"--ingest.enroll-rate", "0",
		// The oracle reads whole tables (state_messages FINAL at 30 M rows) through /v1/sql.
		"--sql.timeout", "10m", "--sql.max-threads", "0", "--sql.max-rows-read", "0", "--sql.max-result-rows", "0", "--sql.max-result-bytes", "0"}
	if cfg.Brokers != "" {
		args = append(args, "--kafka.brokers", cfg.Brokers)
		s.brokers = cfg.Brokers
	} else {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		s.brokers = fmt.Sprintf("127.0.0.1:%d", port)
		args = append(args, "--kafka.listen", s.brokers)
	}
	s.cmd = exec.Command(cfg.Bin, args...)
	if cfg.SiteCPUProfile != "" {
		s.cmd.Env = append(os.Environ(), "STATEPIPE_CPUPROFILE="+cfg.SiteCPUProfile)
	}
	out, _ := s.cmd.StdoutPipe()
	logFile, err := os.Create(s.dir + "/site.log")
	if err != nil {
		return nil, err
	}
	s.cmd.Stderr = logFile
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	found := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			if m := siteKafka.FindStringSubmatch(line); m != nil {
				s.kafka = strings.TrimSpace(m[1])
			}
			if m := siteURL.FindStringSubmatch(line); m != nil && s.url == "" {
				s.url = m[1]
			}
			if strings.HasPrefix(line, "Try it") {
				close(found)
				_, _ = io.Copy(io.Discard, out)
				return
			}
		}
	}()
	select {
	case <-found:
	case <-time.After(2 * time.Minute):
		s.stop()
		return nil, fmt.Errorf("the site did not start; its log: %s/site.log", s.dir)
	case <-ctx.Done():
		s.stop()
		return nil, ctx.Err()
	}
	return s, nil
}

func (s *harnessSite) pid() int { return s.cmd.Process.Pid }

func (s *harnessSite) stop() {
	if s.cmd.ProcessState == nil {
		_ = s.cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = s.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = s.cmd.Process.Kill()
			<-done
		}
	}
	if s.tmp {
		_ = os.RemoveAll(s.dir)
	}
}

func (s *harnessSite) database() string { return s.db }

func (s *harnessSite) get(ctx context.Context, path string, v any) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.url+path, nil)
	resp, err := s.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s %s", path, resp.Status, bytes.TrimSpace(body))
	}
	return json.Unmarshal(body, v)
}

func (s *harnessSite) sql(ctx context.Context, q string) (*schema.Result, error) {
	body, _ := json.Marshal(report.SQLRequest{Query: q})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.url+"/v1/sql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("SQL %q: %s %s", q, resp.Status, bytes.TrimSpace(raw))
	}
	var r schema.Result
	return &r, json.Unmarshal(raw, &r)
}

// importRef posts reference-data lines of kind (in chunks, so a large collection fits).
func (s *harnessSite) importRef(ctx context.Context, kind schema.RefKind, lines []string) error {
	if len(lines) == 0 {
		return nil
	}
	for from := 0; from < len(lines); from += 5000 {
		body := strings.Join(lines[from:min(from+5000, len(lines))], "\n") + "\n"
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.url+"/v1/ref/"+string(kind), strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-ndjson")
		resp, err := s.hc.Do(req)
		if err != nil {
			return err
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("import %s: %s %s", kind, resp.Status, bytes.TrimSpace(raw))
		}
	}
	return nil
}

// waitList waits until the site's projector has folded list id (reference data travels
// through Kafka).
func (s *harnessSite) waitList(ctx context.Context, id string) error {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var c report.Compliance
		err := s.get(ctx, "/v1/reports/compliance?list="+id, &c)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the site never showed list %s: %w", id, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
