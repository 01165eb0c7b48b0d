package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/statepipe/statepipe/client"
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
	// Topology, when set, is a topology file the site process hosts every site of (run
	// --topology) instead of the one Site; Site is then its root (hierarchy.go sets both).
	Topology string
	// Data is the site's data directory (default: a temporary one, removed afterwards).
	Data string
	// BrokerPID is the Kafka broker's process id, for its memory (0: not measured).
	BrokerPID int
	// SiteCPUProfile, when set, is where the site process writes a CPU profile of the run.
	SiteCPUProfile string
	// CheckTimeout bounds the wait for the reports to equal the oracle at a checkpoint and at
	// the end (default 10 min).
	CheckTimeout time.Duration
	// Ceilings, when set, measures the raw ceilings after the run with the first
	// SampleMessages state messages sent (default 2,000,000), as they were sent: it is given
	// the site's brokers and opens the bare Kafka client and the store to measure with.
	// cmd/statepipe wires it (bench opens no adapter of its own); nil: no ceilings.
	Ceilings       func(ctx context.Context, brokers []string) (CeilingsDeps, error)
	SampleMessages int64
	Progress       io.Writer
	// Pacing, "on" or "off", runs the site with --pacing.mode so, over the scenario's pacing
	// (empty: the scenario's; neither: the site's default). SiteArgs are further flags for
	// the site's `statepipe run`, after the harness's own (siteOptions).
	Pacing   string
	SiteArgs []string

	siteExtra []string // the site's extra flags, resolved by RunScenario (siteOptions)
	pacing    string   // the pacing the run is recorded with
}

// CeilingsDeps is what HarnessConfig.Ceilings opens for the raw ceilings.
type CeilingsDeps struct {
	Kafka RawKafka
	Store ScratchStore
	// Close releases both (nil: nothing to release).
	Close func() error
}

// defaults fills the zero fields that have a default.
func (cfg *HarnessConfig) defaults() {
	if cfg.Site == "" {
		cfg.Site = "P01"
	}
	if cfg.CheckTimeout == 0 {
		cfg.CheckTimeout = 10 * time.Minute
	}
	if cfg.SampleMessages == 0 {
		cfg.SampleMessages = 2_000_000
	}
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
	MaxSimLag      Duration             `json:"max_sim_lag"`
	PeakRSS        int64                `json:"peak_rss_bytes"` // the site process
	HarnessPeakRSS int64                `json:"harness_peak_rss_bytes"`
	BrokerPeakRSS  int64                `json:"broker_peak_rss_bytes,omitempty"`
	Ceilings       *Ceilings            `json:"ceilings,omitempty"`
	Stages         map[string]StageRate `json:"stage_rates,omitempty"` // statepipe's own, by stage (stageRates)
	StageRatios    map[string]float64   `json:"stage_ratios"`
	Checkpoints    []Checkpoint         `json:"checkpoints"`
	OracleOK       bool                 `json:"oracle_ok"`
	OracleError    string               `json:"oracle_error,omitempty"`
	Steps          []RateStep           `json:"rate_steps,omitempty"`
	Timeline       Timeline             `json:"timeline"`
	Plots          []string             `json:"plots,omitempty"`
	Goals          []Goal               `json:"goals,omitempty"`
	// Pacing is the site's closed-loop pacing in this run: on, off, or empty for the site's
	// default; SiteArgs the extra flags the site ran with (HarnessConfig).
	Pacing   string   `json:"pacing,omitempty"`
	SiteArgs []string `json:"site_args,omitempty"`
	// Rollout is a rollout wave's run (Scenario.EnrolWave, rollout.go); nil otherwise.
	Rollout *RolloutResult `json:"rollout,omitempty"`
	// Phased is the measure of the scenario's phased deployments (phased.go); nil without one.
	Phased *PhasedResult `json:"phased,omitempty"`
	// Hierarchy is a site hierarchy's run (Scenario.Primaries): per-site checks, the central
	// visibility delay and the links (hierarchy*.go); nil for one site.
	Hierarchy *HierarchyResult `json:"hierarchy,omitempty"`
}

// StageRate is statepipe's own rate at one stage of a run, measured while that stage held the
// run back (stageRates); a stage never held back has none: not measured in this run.
type StageRate struct {
	MsgsPerS float64 `json:"msgs_per_second"`
	Seconds  float64 `json:"seconds"` // of the run it was measured over
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

// harness is one run of a scenario against the site it started. RunScenario calls its phases
// in order: prepare (the reference data), enrol, run (the workers and the sampler beside the
// dispatcher, which calls patchTuesday, checkpoint and sweep as simulated time passes), and
// summarise.
type harness struct {
	cfg   HarnessConfig
	sc    *Scenario
	site  *harnessSite
	world *world
	drop  []string // the Patch Tuesday drop's reference lines, imported when it falls due
	out   *console
	res   *HarnessResult
	sdk   []*client.Client // by client index
	stats runStats

	clock     *simClock
	pace      *pacer             // nil: reports go out as simulated time asks
	work      chan *simClient    // clients due, to the workers
	inFlight  sync.WaitGroup     // clients handed to the workers and not back yet
	workers   sync.WaitGroup     //
	cancel    context.CancelFunc // stops the run: a report was never acknowledged
	begin     time.Time          // the run's start, when the first report may go out
	lastSend  time.Time          // when the last client was handed to a worker
	pollEvery time.Duration      // how often a checkpoint compares the reports with the oracle

	mu     sync.Mutex       // guards wakes, simLag and kept
	wakes  wakeHeap         // clients by their next wake
	simLag time.Duration    // the most a client's wake was dispatched behind simulated time
	kept   []*schema.Report // the ceilings' records, as sent

	tlMu sync.Mutex // guards res.Timeline, which the sampler appends to while the dispatcher reads it

	hier   *hierRun   // a site hierarchy's run (hierarchy.go); nil for one site
	phased *phasedRun // the phased deployments' measure (phased.go); nil without one
	wave   *waveRun   // a rollout wave's enrolments (rollout.go); nil when the clients enrol before the run
}

// runStats are the counters the workers, the sampler and the dispatcher share.
type runStats struct {
	enrolled   atomic.Int64          // clients enrolled
	acked      atomic.Int64          // state messages ingest acknowledged
	resyncMsgs atomic.Int64          // messages (and a marker each) sent again when the site asked for a resync
	reports    atomic.Int64          // reports ingest acknowledged
	firsts     atomic.Int64          // clients whose first report was acknowledged
	firstsMsgs atomic.Int64          // messages acknowledged when the last client's first report was
	inFlight   atomic.Int64          // reports handed to the workers and not answered yet
	kept       atomic.Int64          // messages offered to the ceilings' sample
	lastLag    atomic.Int64          // the projector's lag at the last sample
	sendErr    atomic.Pointer[error] // the first report never acknowledged
	dropDone   atomic.Bool           // the Patch Tuesday drop is imported
	sweeping   atomic.Bool           // a rate sweep's steps have begun
	ended      atomic.Bool           // simulated time reached the end: clients are not scheduled again
}

// messages is every state message the site acknowledged, resyncs included.
func (s *runStats) messages() int64 { return s.acked.Load() + s.resyncMsgs.Load() }

// RunScenario runs a scenario against a site it starts, checks every report against the
// oracle at the checkpoints and at the end, and returns what it measured.
func RunScenario(ctx context.Context, cfg HarnessConfig) (*HarnessResult, error) {
	cfg.defaults()
	var err error
	if cfg.siteExtra, cfg.pacing, err = siteOptions(cfg); err != nil {
		return nil, err
	}
	if cfg.Scenario.Primaries > 0 {
		return runHierarchy(ctx, cfg)
	}
	started := time.Now().UTC()
	site, err := startSite(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer site.stop()
	h := newHarness(cfg, site, started)
	defer h.out.endStatus()
	if err := h.prepare(ctx); err != nil {
		return h.res, err
	}
	if cfg.Scenario.EnrolWave != nil {
		h.wave = newWaveRun(cfg.Scenario) // the clients enrol during the run
		h.sdk = make([]*client.Client, cfg.Scenario.Clients)
	} else if err := h.enrol(ctx); err != nil {
		return h.res, fmt.Errorf("enrol: %w", err)
	}
	checked, err := h.run(ctx)
	if err != nil {
		return h.res, err
	}
	return h.res, h.summarise(ctx, checked)
}

// newHarness builds the simulated world of cfg's scenario, its simulated time starting a
// scenario's length (an hour without one) before now.
func newHarness(cfg HarnessConfig, site *harnessSite, started time.Time) *harness {
	sc := cfg.Scenario
	span := sc.Duration.D()
	if span == 0 {
		span = time.Hour
	}
	w := newWorld(sc, time.Now().Add(-span).Truncate(time.Second))
	h := &harness{cfg: cfg, sc: sc, site: site, world: w, out: newConsole(cfg.Progress),
		clock: &simClock{scale: sc.TimeScale}, pace: newPacer(sc), pollEvery: 500 * time.Millisecond,
		res: &HarnessResult{Scenario: sc.Name, Description: sc.Description, Machine: Machine(), Started: started,
			Clients: sc.Clients, StageRatios: map[string]float64{}, Kafka: site.kafka, World: w.describe(),
			Pacing: cfg.pacing, SiteArgs: cfg.siteExtra}}
	h.phased = newPhasedRun(h)
	h.out.logf("%s: %s; site %s (%s)", sc.Name, h.res.World, site.url, site.kafka)
	return h
}

// prepare imports the reference data the run starts with and waits until the site shows the
// checked list (reference data travels through Kafka).
func (h *harness) prepare(ctx context.Context) error {
	before, drop := h.world.refLines()
	h.drop = drop
	for _, kind := range schema.RefKinds {
		if err := h.site.importRef(ctx, kind, before[kind]); err != nil {
			return err
		}
	}
	if err := h.site.waitList(ctx, checkedList); err != nil {
		return err
	}
	if h.hier != nil {
		return h.hier.waitDown(ctx, checkedList)
	}
	return nil
}

// enrol makes every simulated client's SDK client, enrolled unless the scenario is unsigned.
// It is not timed into the run: a rollout's enrolment is paced separately.
func (h *harness) enrol(ctx context.Context) error {
	sc := h.sc
	hc := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: sc.Concurrency, MaxConnsPerHost: sc.Concurrency}}
	h.sdk = make([]*client.Client, sc.Clients)
	start := time.Now()
	stop := h.out.count("clients enrolled", start, &h.stats.enrolled, int64(sc.Clients))
	err := forEachClient(ctx, SmokeConfig{Clients: sc.Clients, Concurrency: 32}, func(i int) (err error) {
		ccfg := h.clientConfig(i, hc)
		if sc.Unsigned {
			h.sdk[i], err = client.New(ccfg)
		} else {
			h.sdk[i], err = client.Enroll(ctx, ccfg)
		}
		h.stats.enrolled.Add(1)
		return err
	})
	stop()
	if err != nil {
		return err
	}
	h.res.EnrollSeconds = time.Since(start).Seconds()
	h.out.logf("enrolled %d clients in %.1fs", sc.Clients, h.res.EnrollSeconds)
	return nil
}

// clientConfig is the SDK configuration of client i, sending over hc.
func (h *harness) clientConfig(i int, hc *http.Client) client.Config {
	c := h.world.clients[i]
	return client.Config{URL: h.site.url, Site: h.clientSite(i), ClientID: c.id, HTTPClient: hc, MaxAttempts: 1000, BackoffMax: 5 * time.Second,
		ResyncTypes: []schema.TopicType{schema.TopicUpdateCompliance},
		OnResync: func(context.Context) ([]schema.StateMessage, error) {
			m := h.world.resyncState(c)
			h.stats.resyncMsgs.Add(int64(len(m)) + 1)
			if h.hier != nil {
				h.hier.resynced(c.idx, int64(len(m))+1)
			}
			return m, nil
		}}
}
