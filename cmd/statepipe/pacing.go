package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/statepipe/statepipe/ingest"
	"github.com/statepipe/statepipe/internal/kafka"
	"github.com/statepipe/statepipe/pacing"
	"github.com/statepipe/statepipe/replicator"
	"github.com/statepipe/statepipe/report"
	"github.com/statepipe/statepipe/schema"
)

// PacingTopic is a site's pacing topic (compacted, one partition): every ingest node's
// controller status under status/<node>, read by the sites below (a stale parent slows its
// children), and the administrators' last command under admin, applied by every node of the
// site, and again after a restart.
func PacingTopic(site string) string { return "pacing." + site }

// pacingPublished is what a node publishes of its controller every interval.
type pacingPublished struct {
	Site      string  `json:"site"`
	Node      string  `json:"node"`
	At        int64   `json:"at"` // Unix ms
	Pressure  float64 `json:"pressure"`
	Limiting  string  `json:"limiting"`
	Decision  string  `json:"decision"`
	BacklogOK bool    `json:"backlog_ok"`
}

// pacingCommand is an administrator's command, applied by every node of the site.
type pacingCommand struct {
	Op   string  `json:"op"` // pause, resume, set
	Rate float64 `json:"rate,omitempty"`
	By   string  `json:"by,omitempty"`
	At   int64   `json:"at"` // Unix ms
}

// sitePacer runs a site's pacing controller: every interval it reads the signals, steps the
// controller, applies the enrolment rate to the enroller and publishes its status.
type sitePacer struct {
	site string
	node string
	ctl  *pacing.Controller
	log  *slog.Logger

	own      *replicator.Watermark               // the site's projector progress
	fold     *replicator.Watermark               // the fold of the sites below (hier.<site>); nil without
	inserts  func() (int64, time.Duration)       // the in-process projector's inserts; nil without
	shed     func() (int64, int64)               // the in-process ingest's answers; nil without
	enroller *ingest.Enroller                    // nil without ingest's enrolment
	uplink   func(time.Time) replicator.UpStatus // the link to the parent; nil without
	parent   string
	above    *aboveStatus // the parent's published statuses; nil without a parent

	topic     string
	kcfg      kafka.Config
	key       ed25519.PrivateKey  // vouches for what the node publishes (nil: auth off)
	keys      []ed25519.PublicKey // verify the admin commands (nil: auth off)
	out       *kafka.Producer
	phases    func(client string) []string
	interval  atomic.Int64 // the report interval (seconds) ingest sends
	backlogOK atomic.Bool

	prevInserts, prevShed, prevTotal int64
	prevTook                         time.Duration
	prevAdmitted, prevRefused        int64
	signal                           *prometheus.GaugeVec
	lastMode                         string
	commandsRead                     atomic.Bool  // the site's pacing topic was read up to date
	lastCommand                      atomic.Int64 // the time (Unix ms) of the last command applied
	appliedAt                        atomic.Int64 // when (Unix ms, here) it was applied
}

// newSitePacer builds the pacer of a site; Run it as one of the site's actors.
func newSitePacer(cfg pacing.Config, site string, kcfg kafka.Config, static float64, reg prometheus.Registerer, log *slog.Logger) (*sitePacer, error) {
	ctl, err := pacing.New(cfg, static)
	if err != nil {
		return nil, err
	}
	var id [4]byte
	_, _ = rand.Read(id[:])
	p := &sitePacer{site: site, node: hex.EncodeToString(id[:]), ctl: ctl, log: log.With("role", "pacing"), topic: PacingTopic(site), kcfg: kcfg,
		out: kafka.NewProducer(kcfg, PacingTopic(site))}
	if cfg.Mode == pacing.ModeOff {
		p.backlogOK.Store(true)
	}
	status := func(f func(pacing.Status) float64) func() float64 { return func() float64 { return f(p.ctl.Status()) } }
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "statepipe_pacing_enroll_rate",
			Help: "New enrolments a second this node admits, as the pacing controller set it (0 while paused; with --pacing.mode off the static --ingest.enroll-rate, 0 meaning unlimited)."},
			status(func(s pacing.Status) float64 { return s.EnrollRate })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "statepipe_pacing_paused",
			Help: "1 while the controller admits no new client: signals missing (stale), or an administrator paused it."},
			status(func(s pacing.Status) float64 { return b2f(s.Mode == "paused") })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "statepipe_pacing_pressure",
			Help: "The worst signal over its target, each taken as its minimum over --pacing.window (1: at target)."},
			status(func(s pacing.Status) float64 { return s.Pressure })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "statepipe_pacing_lag_seconds",
			Help: "Age of the oldest report accepted and not folded at this site, as last read: the backlog the target bounds."},
			status(func(s pacing.Status) float64 { return s.LagSeconds })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "statepipe_pacing_target_seconds", Help: "The backlog target (--pacing.target)."},
			status(func(s pacing.Status) float64 { return s.TargetSeconds })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "statepipe_pacing_report_interval_seconds",
			Help: "The interval clients are told to batch their state messages for (0 with pacing off)."},
			status(func(s pacing.Status) float64 { return s.ReportInterval })))
	for _, kind := range pacing.Decisions {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "statepipe_pacing_decisions_total",
			Help: "Steps of the pacing controller by the decision taken.", ConstLabels: prometheus.Labels{"kind": kind}},
			func() float64 { return float64(p.ctl.Decisions()[kind]) }))
	}
	p.signal = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "statepipe_pacing_signal_pressure",
		Help: "Each pacing signal over its target, minimum over --pacing.window (wait, lag, insert, shedding, fold, link A->B, above P)."}, []string{"signal"})
	reg.MustRegister(p.signal)
	return p, nil
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Name says what it is in the node's logs.
func (p *sitePacer) Name() string { return "pacing" }

// ReportInterval is ingest.Pacer's: the interval the last step set.
func (p *sitePacer) ReportInterval() int { return int(p.interval.Load()) }

// Released is ingest.Pacer's: the phased deployments released to client.
func (p *sitePacer) Released(client string) []string {
	if p.phases == nil {
		return nil
	}
	return p.phases(client)
}

// BacklogOK says the site's backlog (and the chain above it) is under target on fresh
// signals: the next phase of a deployment may be released.
func (p *sitePacer) BacklogOK() bool { return p.backlogOK.Load() }

// Status returns the controller's status.
func (p *sitePacer) Status() pacing.Status { return p.ctl.Status() }

// Run steps the controller every interval, and follows the site's pacing topic (the
// administrators' commands) and the parent's (its status) until ctx ends. Nothing here stops
// the site: a broker unreachable at start, or a pacing topic of the wrong shape, is retried
// and logged while new clients wait (the enroller stays Starting until the site's commands
// are read, so a pause holds across restarts).
func (p *sitePacer) Run(ctx context.Context) error {
	for delay := time.Second; ; delay = min(2*delay, 30*time.Second) {
		err := kafka.EnsureTopic(ctx, onePartition(p.kcfg), p.topic, kafka.Compacted)
		if err == nil {
			var parts []int
			if parts, err = kafka.Partitions(ctx, p.kcfg, p.topic); err == nil && len(parts) != 1 {
				err = fmt.Errorf("it has %d partitions, and the administrators' commands must keep one order (it must have exactly 1)", len(parts))
			}
		}
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		p.log.Error("cannot use the pacing topic; retrying (new clients wait meanwhile)", "topic", p.topic, "err", err)
		pause(ctx, delay)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	follow := func(cfg kafka.Config, topic string, apply func(kafka.Record), fresh func(time.Time)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			following{Kafka: cfg, Topic: topic, Apply: apply, Fresh: fresh, Every: 500 * time.Millisecond,
				What: "a pacing topic", Level: slog.LevelWarn, Retry: 2 * time.Second}.follow(ctx, p.log)
		}()
	}
	follow(p.kcfg, p.topic, p.applyCommand, func(time.Time) { p.commandsRead.Store(true) })
	if p.above != nil {
		follow(p.above.kafka, PacingTopic(p.parent), p.above.apply, nil)
	}
	every := p.ctl.Config().Interval
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			p.step(ctx, now)
		}
	}
}

func onePartition(c kafka.Config) kafka.Config {
	c.Partitions = 1
	return c
}

// step reads the signals, steps the controller, applies and publishes.
func (p *sitePacer) step(ctx context.Context, now time.Time) {
	cfg := p.ctl.Config()
	var d pacing.Demand
	if p.enroller != nil {
		a, r, waiting := p.enroller.Demand()
		d = pacing.Demand{Admitted: a - p.prevAdmitted, Refused: r - p.prevRefused, Waiting: waiting}
		p.prevAdmitted, p.prevRefused = a, r
	}
	st := p.ctl.Step(now, p.readings(now), d)
	if st.Mode != p.lastMode {
		p.log.Info("pacing "+st.Mode, "decision", st.Decision, "reason", st.Reason, "rate", st.EnrollRate)
		p.lastMode = st.Mode
	}
	p.interval.Store(int64(st.ReportInterval))
	p.backlogOK.Store(st.BacklogOK)
	for _, s := range st.Signals {
		p.signal.WithLabelValues(s.Name).Set(s.Pressure)
	}
	if p.enroller != nil && cfg.Mode == pacing.ModeOn && p.commandsRead.Load() {
		p.enroller.SetRate(st.EnrollRate, st.Decision+": "+st.Reason)
	}
	p.publish(ctx, now, st)
}

// readings are the signals at now.
func (p *sitePacer) readings(now time.Time) []pacing.Reading {
	cfg := p.ctl.Config()
	target := cfg.Target.Seconds()
	var rs []pacing.Reading
	queue := func(name string, w *replicator.Watermark) {
		b := w.Backlog(now)
		wait := 0.0
		switch {
		case b.Records == 0:
		case b.FoldRate > 0:
			wait = float64(b.Records) / b.FoldRate
		default:
			wait = b.AgeSeconds // nothing folded lately: the queue waits at least as long as its oldest
		}
		lagName := pacing.SignalLag
		if name != pacing.SignalWait {
			lagName = name + " lag"
		}
		rs = append(rs, pacing.Reading{Name: name, Value: wait, Target: target, Unit: "s", At: b.ReadAt},
			pacing.Reading{Name: lagName, Value: b.AgeSeconds, Target: target, Unit: "s", Guard: true, At: b.ReadAt})
	}
	if p.own != nil {
		queue(pacing.SignalWait, p.own)
	}
	if p.fold != nil {
		queue("fold", p.fold)
	}
	if p.inserts != nil {
		n, took := p.inserts()
		mean := 0.0
		if dn := n - p.prevInserts; dn > 0 {
			mean = (took - p.prevTook).Seconds() / float64(dn)
		}
		p.prevInserts, p.prevTook = n, took
		// Guards, not steering signals: a large batch's insert takes seconds and a few 503s
		// are ingest doing its job; only over their targets do they say the site is overrun.
		rs = append(rs, pacing.Reading{Name: pacing.SignalInsert, Value: mean, Target: cfg.InsertTarget.Seconds(), Unit: "s", Guard: true, At: now})
	}
	if p.shed != nil {
		shed, total := p.shed()
		share := 0.0
		if dt := total - p.prevTotal; dt > 0 {
			share = float64(shed-p.prevShed) / float64(dt)
		}
		p.prevShed, p.prevTotal = shed, total
		rs = append(rs, pacing.Reading{Name: pacing.SignalShedding, Value: share, Target: cfg.ShedTarget, Unit: "share", Guard: true, At: now})
	}
	if p.uplink != nil {
		u := p.uplink(now)
		floor := 0.0
		if u.State == replicator.LinkFailed {
			floor = 1
		}
		lt := cfg.LinkTarget
		if lt == 0 {
			lt = cfg.Target
		}
		// A guard, like lag: a link's freshness is an age with a floor of its own (the
		// replicator's interval and the parent's commit), and trails the queue it measures —
		// steered on, a link 8 s fresh under load (pressure 0.27 against a 30 s target) held a
		// 3-primary wave's enrolment in the dead band at 36/s a primary, 18 % slower than
		// unpaced, while the central site kept up. It counts once over target, and a failed
		// link at once (Floor); the parent's own queue steers through "above".
		rs = append(rs, pacing.Reading{Name: "link " + p.site + "->" + u.Parent, Value: u.Freshness.Seconds(), Target: lt.Seconds(), Unit: "s",
			Floor: floor, Guard: true, At: now})
	}
	if p.above != nil {
		pressure, at := p.above.get(now, cfg.MaxStaleness)
		rs = append(rs, pacing.Reading{Name: "above " + p.parent, Value: pressure, Target: 1, Unit: "×", At: at})
	}
	return rs
}

// publish writes the node's status for the sites below.
func (p *sitePacer) publish(ctx context.Context, now time.Time, st pacing.Status) {
	v, _ := json.Marshal(pacingPublished{Site: p.site, Node: p.node, At: now.UnixMilli(), Pressure: st.Pressure, Limiting: st.Limiting,
		Decision: st.Decision, BacklogOK: st.BacklogOK})
	rec := p.record("status/"+p.node, v, now)
	pctx, cancel := context.WithTimeout(ctx, p.ctl.Config().Interval)
	defer cancel()
	if err := p.out.Produce(pctx, rec); err != nil && ctx.Err() == nil {
		p.log.Debug("cannot publish the pacing status", "err", err)
	}
}

// record is a record of the pacing topic, vouched with the site key when there is one.
func (p *sitePacer) record(key string, value []byte, now time.Time) kafka.Record {
	rec := kafka.Record{Key: []byte(key), Value: value, Time: now}
	if p.key != nil {
		at := now.UnixMilli()
		rec.Headers = []kafka.Header{{Key: schema.HeaderAccepted, Value: schema.AcceptedHeader(at)},
			{Key: schema.HeaderVouch, Value: schema.Vouch(p.key, p.topic, rec.Key, rec.Value, at)}}
	}
	return rec
}

// vouched checks a record of topic with keys (none: auth off, every record is taken).
func vouched(keys []ed25519.PublicKey, topic string, r kafka.Record) bool {
	if len(keys) == 0 {
		return true
	}
	var vouch, accepted []byte
	for _, h := range r.Headers {
		switch h.Key {
		case schema.HeaderVouch:
			vouch = h.Value
		case schema.HeaderAccepted:
			accepted = h.Value
		}
	}
	at, err := schema.ParseAccepted(accepted)
	return err == nil && schema.VerifyVouch(keys, topic, r.Key, r.Value, vouch, at) == nil
}

// applyCommand applies an administrator's command read from the site's pacing topic.
func (p *sitePacer) applyCommand(r kafka.Record) {
	if string(r.Key) != "admin" || r.Value == nil {
		return
	}
	if !vouched(p.keys, p.topic, r) {
		p.log.Warn("ignoring a pacing command no node of this site vouched for", "topic", p.topic, "offset", r.Offset)
		return
	}
	var c pacingCommand
	if err := json.Unmarshal(r.Value, &c); err != nil {
		p.log.Warn("ignoring a malformed pacing command", "err", err)
		return
	}
	if c.At <= p.lastCommand.Load() {
		p.log.Warn("ignoring a pacing command older than the last one applied (a replay?)", "op", c.Op, "at", c.At)
		return
	}
	var err error
	switch c.Op {
	case "pause":
		err = p.ctl.Pause(c.By)
	case "resume":
		err = p.ctl.Resume()
	case "set":
		err = p.ctl.SetRate(c.Rate)
	default:
		err = fmt.Errorf("unknown op %q", c.Op)
	}
	if err != nil {
		p.log.Warn("cannot apply a pacing command", "op", c.Op, "err", err)
		return
	}
	p.lastCommand.Store(c.At)
	p.appliedAt.Store(time.Now().UnixMilli())
	p.log.Info("pacing command applied", "op", c.Op, "rate", c.Rate, "by", c.By)
}

// errNotApplied: a command was recorded but this node has not applied it within the wait.
var errNotApplied = errors.New("recorded in the site's pacing topic, not applied by this node yet: every node applies it as it reads it (statepipe pacing status shows when)")

// command writes an administrator's command to the site's pacing topic and waits (at most 5 s)
// until this node applied it and stepped once since.
func (p *sitePacer) command(ctx context.Context, c pacingCommand) error {
	cfg := p.ctl.Config()
	if cfg.Mode == pacing.ModeOff {
		return pacing.ErrOff
	}
	switch c.Op {
	case "pause", "resume":
	case "set":
		if err := cfg.CheckRate(c.Rate); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown pacing command %q (pause, resume or set)", c.Op)
	}
	now := time.Now()
	c.At = max(now.UnixMilli(), p.lastCommand.Load()+1)
	v, _ := json.Marshal(c)
	if err := p.out.Produce(ctx, p.record("admin", v, now)); err != nil {
		return fmt.Errorf("cannot record the pacing command in %s: %w", p.topic, err)
	}
	deadline := time.NewTimer(5 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if p.lastCommand.Load() >= c.At && p.ctl.Status().At.UnixMilli() >= p.appliedAt.Load() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			return errNotApplied
		case <-tick.C:
		}
	}
}

// aboveStatus holds the statuses the parent's nodes published.
type aboveStatus struct {
	kafka kafka.Config // the parent's
	keys  []ed25519.PublicKey
	topic string

	mu    sync.Mutex
	nodes map[string]aboveNode
}

// aboveNode is one parent node's last status. Its freshness is measured on this site's clock:
// when its publication time last advanced here (a node read once — at start, from the
// compacted topic, perhaps long dead — is not fresh until it publishes again), so a parent
// whose clock is behind or ahead is judged right.
type aboveNode struct {
	pressure  float64
	backlogOK bool
	pubAt     int64     // the parent's time of the status (Unix ms)
	advanced  time.Time // when pubAt last grew, here; zero: not yet
}

func newAboveStatus(parentKafka kafka.Config, parent string, keys []ed25519.PublicKey) *aboveStatus {
	return &aboveStatus{kafka: parentKafka, keys: keys, topic: PacingTopic(parent), nodes: map[string]aboveNode{}}
}

func (a *aboveStatus) apply(r kafka.Record) {
	k := string(r.Key)
	if !strings.HasPrefix(k, "status/") || r.Value == nil || !vouched(a.keys, a.topic, r) {
		return
	}
	var pub pacingPublished
	if json.Unmarshal(r.Value, &pub) != nil || math.IsNaN(pub.Pressure) || math.IsInf(pub.Pressure, 0) || pub.Pressure < 0 {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	old, ok := a.nodes[k]
	switch {
	case !ok:
		a.nodes[k] = aboveNode{pressure: pub.Pressure, backlogOK: pub.BacklogOK, pubAt: pub.At}
	case pub.At > old.pubAt:
		a.nodes[k] = aboveNode{pressure: pub.Pressure, backlogOK: pub.BacklogOK, pubAt: pub.At, advanced: time.Now()}
	}
}

// backlogOK says whether some node of the site published within stale and every one that did
// said its backlog was under target: a process that decides phases without a pacing
// controller of its own (the projector role alone) judges the site's backlog by its ingest
// nodes' statuses, and no fresh status is missing data — not a backlog under target.
func (a *aboveStatus) backlogOK(now time.Time, stale time.Duration) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	fresh := 0
	for _, n := range a.nodes {
		if n.advanced.IsZero() || now.Sub(n.advanced) > stale {
			continue
		}
		if !n.backlogOK {
			return false
		}
		fresh++
	}
	return fresh > 0
}

// get returns the worst pressure among the parent's nodes heard advancing within stale, and
// the time of the newest (zero when none is fresh: missing data). Nodes silent for an hour
// are forgotten.
func (a *aboveStatus) get(now time.Time, stale time.Duration) (float64, time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var worst float64
	var newest time.Time
	for k, n := range a.nodes {
		if !n.advanced.IsZero() && now.Sub(n.advanced) > time.Hour {
			delete(a.nodes, k)
			continue
		}
		if n.advanced.IsZero() || now.Sub(n.advanced) > stale {
			continue
		}
		worst = max(worst, n.pressure)
		if n.advanced.After(newest) {
			newest = n.advanced
		}
	}
	return worst, newest
}

// ownSite answers 404 (or 400 for site= twice) unless the request is for this site: a
// listener serving one site must not act on another's behalf.
func (p *sitePacer) ownSite(w http.ResponseWriter, r *http.Request) bool {
	sites, ok := querySites(w, r)
	switch {
	case !ok:
	case len(sites) > 1:
		writeAPIError(w, http.StatusBadRequest, schema.CodeMalformed, "give site= once", "site")
	case len(sites) == 1 && sites[0] != "" && sites[0] != p.site:
		writeAPIError(w, http.StatusNotFound, schema.CodeNotFound, fmt.Sprintf("site %q is not served here (this is site %s)", sites[0], p.site), "site")
	default:
		return true
	}
	return false
}

// serveStatus serves GET /v1/pacing: the controller's status.
func (p *sitePacer) serveStatus(w http.ResponseWriter, r *http.Request) {
	if p.ownSite(w, r) {
		report.WriteJSON(w, http.StatusOK, p.ctl.Status())
	}
}

// serveCommand serves, for administrators, POST /v1/pacing/{op}: pause, resume, and rate with
// {"rate": N}.
func (p *sitePacer) serveCommand(w http.ResponseWriter, r *http.Request) {
	if !p.ownSite(w, r) {
		return
	}
	c := pacingCommand{Op: r.PathValue("op"), By: "an administrator"}
	switch c.Op {
	case "rate":
		c.Op = "set"
		var body struct {
			Rate *float64 `json:"rate"`
		}
		d := json.NewDecoder(io.LimitReader(r.Body, 4096))
		d.DisallowUnknownFields()
		if err := d.Decode(&body); err != nil || body.Rate == nil || d.More() {
			cfg := p.ctl.Config()
			writeAPIError(w, http.StatusBadRequest, schema.CodeMalformed,
				fmt.Sprintf(`the body must be {"rate": N}, N new enrolments a second from %g to %g`, cfg.MinRate, cfg.MaxRate), "rate")
			return
		}
		c.Rate = *body.Rate
	case "pause", "resume":
	default:
		writeAPIError(w, http.StatusNotFound, schema.CodeNotFound, fmt.Sprintf("unknown pacing command %q: pause, resume or rate", c.Op), "")
		return
	}
	err := p.command(r.Context(), c)
	switch {
	case err == nil:
		report.WriteJSON(w, http.StatusOK, p.ctl.Status())
	case errors.Is(err, errNotApplied):
		report.WriteJSON(w, http.StatusAccepted, map[string]any{"message": err.Error(), "status": p.ctl.Status()})
	case errors.Is(err, pacing.ErrRate):
		writeAPIError(w, http.StatusBadRequest, schema.CodeMalformed, err.Error(), "rate")
	case errors.Is(err, pacing.ErrOff):
		writeAPIError(w, http.StatusConflict, schema.CodeConflict, err.Error(), "")
	default:
		writeAPIError(w, http.StatusServiceUnavailable, schema.CodeUnavailable, err.Error(), "")
	}
}

// reportPacing is the controller's status as the backlog report shows it.
func (p *sitePacer) reportPacing() *report.Pacing {
	s := p.ctl.Status()
	return &report.Pacing{Mode: s.Mode, Decision: s.Decision, Reason: s.Reason, EnrollRate: s.EnrollRate, ReportInterval: s.ReportInterval,
		Pressure: s.Pressure, Limiting: s.Limiting, LagSeconds: s.LagSeconds, TargetSeconds: s.TargetSeconds, At: s.At}
}

// heartbeatPacing is reportPacing as JSON, for the heartbeat to the parent.
func (p *sitePacer) heartbeatPacing() string {
	b, err := json.Marshal(p.reportPacing())
	if err != nil {
		return ""
	}
	return string(b)
}
