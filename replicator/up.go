package replicator

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/statepipe/statepipe/schema"
)

// UpConfig configures a site's upward replicator.
type UpConfig struct {
	Site     string
	Parent   string
	Database string // the site's database, whose v_agg_* it reads
	// Interval is how often it checks the projector's progress and sends what changed, and a
	// heartbeat (default 1 s).
	Interval time.Duration
	// SweepEvery is how often it sends every cell (default 5 min), and so replaces the whole
	// set the parent holds of this site.
	SweepEvery time.Duration
	// EpochFile keeps the last epoch used, so that a restart within the same second still
	// starts a greater one ("" : the epoch is the start time in seconds alone).
	EpochFile string
	// MaxCellsPerMessage bounds a message (default 2000 cells, about 100 KB).
	MaxCellsPerMessage int
	Links              LinkThresholds
}

// UpParams are the parts an Up works with.
type UpParams struct {
	Store Querier // the site's own store
	// Cells reads the site's counted cells (nil: ReadCells of Store, every cell each time;
	// a CellReader reads only what changed).
	Cells    CellSource
	Progress Progress // the site projector's group on state.<site> and ref.<site>
	Parent   Producer // into the parent's hier.<parent>
	// Key is the site's key: every message is vouched for with it (VouchTopic), and the sites
	// above fold only what verifies with the origin's key. Nil: unvouched (auth off).
	Key ed25519.PrivateKey
	// Pacing returns the site's pacing controller's state (JSON) for the heartbeat; nil or
	// empty: none.
	Pacing     func() string
	Registerer prometheus.Registerer
	Logger     *slog.Logger
}

// Up forwards a site's counted cells to its parent (aggregate snapshots, never
// deltas): every Interval it takes the end offsets of the projector's topics, and once the
// projector's group committed past a set taken at T, it reads the counted cells and sends those
// that changed since the last send, as absolute values, with watermark T — every report
// accepted before T is in them. Every SweepEvery (and first after a start) it sends every cell.
// Each message carries a version that only grows ((epoch, sequence), the epoch fixed at start
// from the clock and EpochFile), so the parent keeps the greatest per cell whatever arrives
// twice or late. What could not be sent is sent again: the diff is against the last
// acknowledged send.
type Up struct {
	cfg UpConfig
	p   UpParams
	log *slog.Logger

	epoch uint32
	seq   uint32

	t       tracker
	src     CellSource
	pending map[CellKey]struct{} // cells changed since the last acknowledged send
	acked   Cells                // the values the parent acknowledged last
	held    int64                // cells the site held at the last acknowledged send
	swept   bool                 // a sweep of this epoch went through
	sweep   uint64               // version of the first message of the latest sweep acknowledged
	last    time.Time            // when the latest sweep was acknowledged

	mu        sync.Mutex
	watermark time.Time // acknowledged
	wmEnds    map[string]map[int]int64
	backlog   int64
	lastOK    time.Time
	started   time.Time

	m upMetrics
}

type upMetrics struct {
	bytes, records, errors prometheus.Counter
	cells                  *prometheus.CounterVec
}

// NewUp builds an upward replicator and registers its metrics.
func NewUp(cfg UpConfig, p UpParams) (*Up, error) {
	if cfg.Site == "" || cfg.Parent == "" || cfg.Database == "" {
		return nil, errors.New("cannot replicate: the site, its parent and its database are required")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.SweepEvery <= 0 {
		cfg.SweepEvery = 5 * time.Minute
	}
	if cfg.MaxCellsPerMessage <= 0 {
		cfg.MaxCellsPerMessage = 2000
	}
	if cfg.Links == (LinkThresholds{}) {
		cfg.Links = DefaultLinkThresholds
	}
	if p.Logger == nil {
		p.Logger = slog.New(slog.DiscardHandler)
	}
	if p.Registerer == nil {
		p.Registerer = prometheus.NewRegistry()
	}
	u := &Up{cfg: cfg, p: p, t: tracker{progress: p.Progress}, log: p.Logger.With("role", "replicator", "parent", cfg.Parent), pending: map[CellKey]struct{}{}, acked: Cells{}, started: time.Now()}
	u.src = p.Cells
	if u.src == nil {
		u.src = &fullRead{q: p.Store, db: cfg.Database}
	}
	reg := prometheus.WrapRegistererWith(prometheus.Labels{"parent": cfg.Parent}, p.Registerer)
	u.m.bytes = prometheus.NewCounter(prometheus.CounterOpts{Name: "statepipe_replicator_sent_bytes_total",
		Help: "Bytes (keys and values) of the messages the replicator sent to its parent."})
	u.m.records = prometheus.NewCounter(prometheus.CounterOpts{Name: "statepipe_replicator_sent_records_total",
		Help: "Kafka records the replicator sent to its parent (cells and heartbeats)."})
	u.m.errors = prometheus.NewCounter(prometheus.CounterOpts{Name: "statepipe_replicator_send_errors_total",
		Help: "Sends to the parent (or reads of the site's own progress and cells) that failed; retried every interval."})
	u.m.cells = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "statepipe_replicator_sent_cells_total",
		Help: "Cells sent to the parent: reason=change since the last send, sweep for the periodic full sets."}, []string{"reason"})
	u.m.cells.WithLabelValues("change")
	u.m.cells.WithLabelValues("sweep")
	reg.MustRegister(u.m.bytes, u.m.records, u.m.errors, u.m.cells,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "statepipe_replicator_freshness_seconds",
			Help: "Now minus the watermark the parent acknowledged: every report accepted before it is counted at the parent."},
			func() float64 { return u.Status(time.Now()).Freshness.Seconds() }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "statepipe_replicator_backlog_records",
			Help: "Records accepted at this site and not yet counted in what the parent acknowledged."},
			func() float64 { return float64(u.Status(time.Now()).BacklogRecords) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "statepipe_replicator_backlog_seconds",
			Help: "Age of the oldest record accepted at this site and not yet counted at the parent (0 when none)."},
			func() float64 { return u.Status(time.Now()).BacklogSeconds() }))
	for _, st := range []string{LinkActive, LinkDegraded, LinkFailed} {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "statepipe_replicator_link_state",
			Help:        "1 for the state of the link to the parent (by the age of its last acknowledged send: see --replicator.degraded-after, --replicator.failed-after), 0 for the others.",
			ConstLabels: prometheus.Labels{"state": st}},
			func() float64 {
				if u.Status(time.Now()).State == st {
					return 1
				}
				return 0
			}))
	}
	return u, nil
}

// UpStatus is the link to the parent as the replicator sees it.
type UpStatus struct {
	Parent         string
	Watermark      time.Time // zero before the first acknowledged send
	Freshness      time.Duration
	BacklogRecords int64
	LastSent       time.Time
	State          string
}

// BacklogSeconds is the age of the oldest record not counted at the parent: freshness when
// records wait, 0 otherwise.
func (s UpStatus) BacklogSeconds() float64 {
	if s.BacklogRecords == 0 {
		return 0
	}
	return s.Freshness.Seconds()
}

// Status returns the link's state at now.
func (u *Up) Status(now time.Time) UpStatus {
	u.mu.Lock()
	defer u.mu.Unlock()
	s := UpStatus{Parent: u.cfg.Parent, Watermark: u.watermark, BacklogRecords: u.backlog, LastSent: u.lastOK}
	since := u.lastOK
	if since.IsZero() {
		since = u.started
	}
	wm := u.watermark
	if wm.IsZero() {
		wm = u.started
	}
	s.Freshness = max(now.Sub(wm), 0)
	s.State = u.cfg.Links.State(now.Sub(since))
	return s
}

// Name says what it is in the node's logs.
func (u *Up) Name() string { return "replicator to " + u.cfg.Parent }

// Run sends until ctx is done.
func (u *Up) Run(ctx context.Context) error {
	epoch, err := newEpoch(u.cfg.EpochFile, time.Now())
	if err != nil {
		return err
	}
	u.epoch = epoch
	u.log.Info("replicating", "epoch", epoch, "interval", u.cfg.Interval, "sweep_every", u.cfg.SweepEvery)
	failing := false
	for {
		err := u.cycle(ctx, time.Now())
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			u.m.errors.Inc()
			if !failing {
				u.log.Warn("cannot replicate to the parent; retrying every interval", "err", err)
			}
		} else if failing {
			u.log.Info("replicating to the parent again")
		}
		failing = err != nil
		if !sleep(ctx, u.cfg.Interval) {
			return nil
		}
	}
}

// cycle is one interval's work: take the progress, and send the changed cells (or a sweep)
// once the projector passed a snapshot, and a heartbeat.
func (u *Up) cycle(ctx context.Context, now time.Time) error {
	st, err := u.t.advance(ctx, now)
	if err != nil {
		return err
	}
	ends, committed := st.ends, st.committed
	u.mu.Lock()
	wm := u.watermark
	u.backlog = behind(ends, u.wmEnds) // not counted in what the parent acknowledged, whatever this send does
	u.mu.Unlock()
	var wmEnds map[string]map[int]int64
	if st.passed != nil {
		wm, wmEnds = st.passed.at, st.passed.ends
	}
	sweep := !u.swept || now.Sub(u.last) >= u.cfg.SweepEvery
	var cells, send Cells
	if st.passed != nil || sweep {
		var changed []CellKey
		if cells, changed, err = u.src.Update(ctx); err != nil {
			return err
		}
		for _, k := range changed {
			u.pending[k] = struct{}{}
		}
		send = cells
		if !sweep { // what differs from the last acknowledged send, a vanished cell as 0
			send = make(Cells, len(u.pending))
			for k := range u.pending {
				if v := cells[k]; v != u.acked[k] {
					send[k] = v
				}
			}
		}
	}
	var msgs []*Message
	first := Version(u.epoch, u.seq+1) // of this send's first message
	keys := slices.SortedFunc(maps.Keys(send), compareKeys)
	for len(keys) > 0 {
		n := min(len(keys), u.cfg.MaxCellsPerMessage)
		m := u.message()
		m.Cells = make([]Cell, n)
		for i, k := range keys[:n] {
			v := send[k]
			m.Cells[i] = Cell{Kind: k.Kind, Scope: k.Scope, TopicType: k.TopicType, TopicID: k.TopicID, Code: k.Code, Clients: v.Clients, Scanned: v.Scanned}
		}
		msgs = append(msgs, m)
		keys = keys[n:]
	}
	hb := u.message()
	sweepVersion := u.sweep
	if sweep {
		sweepVersion = first
	}
	held := u.held
	if cells != nil {
		held = int64(len(cells))
	}
	// Records accepted and not counted in what this send carries: those after the watermark's
	// snapshot (every record, before any snapshot was passed).
	if wmEnds == nil {
		wmEnds = u.wmEnds
	}
	backlog := behind(ends, wmEnds)
	hb.Heartbeat = &Heartbeat{Parent: u.cfg.Parent, Sweep: sweepVersion, Watermark: unixMs(wm), SentAt: unixMs(now),
		LagRecords: behind(ends, committed), BacklogRecords: backlog, Cells: held}
	if u.p.Pacing != nil {
		if p := u.p.Pacing(); len(p) <= MaxPacingBytes {
			hb.Heartbeat.Pacing = p
		}
	}
	if wm.IsZero() {
		hb.Heartbeat.Watermark = 0
	}
	msgs = append(msgs, hb)
	recs := make([]Record, len(msgs))
	var bytes int
	for i, m := range msgs {
		v, err := Encode(m)
		if err != nil {
			return err
		}
		recs[i] = Record{Key: []byte(u.cfg.Site), Value: v}
		if u.p.Key != nil {
			recs[i].Headers = []Header{{Key: schema.HeaderVouch, Value: schema.Vouch(u.p.Key, VouchTopic, recs[i].Key, v, 0)}}
		}
		bytes += len(v) + len(u.cfg.Site)
	}
	if err := u.p.Parent.Produce(ctx, recs...); err != nil {
		if st.passed != nil { // not sent: the next cycle sends what it covers, whatever it passes by then
			u.t.pending = append([]snapshot{*st.passed}, u.t.pending...)
		}
		return fmt.Errorf("cannot send to %s: %w", u.cfg.Parent, err)
	}
	u.m.bytes.Add(float64(bytes))
	u.m.records.Add(float64(len(recs)))
	reason := "change"
	if sweep {
		reason = "sweep"
		u.swept, u.sweep, u.last = true, sweepVersion, now
	}
	u.m.cells.WithLabelValues(reason).Add(float64(len(send)))
	if cells != nil {
		u.held = int64(len(cells))
		clear(u.pending)
		if sweep {
			u.acked = maps.Clone(cells)
		} else {
			for k, v := range send {
				if v == (CellValue{}) {
					delete(u.acked, k)
				} else {
					u.acked[k] = v
				}
			}
		}
	}
	u.mu.Lock()
	u.watermark, u.lastOK, u.backlog, u.wmEnds = wm, time.Now(), backlog, wmEnds
	u.mu.Unlock()
	return nil
}

// CellSource reads a site's counted cells: all of them (valid until the next Update), and
// which changed since the last Update. CellReader reads only what changed; without one, Up
// reads every cell each time (fullRead).
type CellSource interface {
	Update(ctx context.Context) (Cells, []CellKey, error)
}

// fullRead is a CellSource that reads every cell (ReadCells) and compares with the last read.
type fullRead struct {
	q    Querier
	db   string
	last Cells
}

func (f *fullRead) Update(ctx context.Context) (Cells, []CellKey, error) {
	cells, err := ReadCells(ctx, f.q, f.db)
	if err != nil {
		return nil, nil, err
	}
	changed := slices.Collect(maps.Keys(Changed(f.last, cells)))
	f.last = cells
	return cells, changed, nil
}

// message starts the next message of this origin.
func (u *Up) message() *Message {
	u.seq++
	return &Message{V: wireVersion, Origin: u.cfg.Site, Epoch: u.epoch, Seq: u.seq}
}

// compareKeys orders cell keys (messages carry cells in a stable order).
func compareKeys(a, b CellKey) int {
	switch {
	case a.Kind != b.Kind:
		return int(a.Kind) - int(b.Kind)
	case a.Scope != b.Scope:
		return strings.Compare(a.Scope, b.Scope)
	case a.TopicType != b.TopicType:
		return int(a.TopicType) - int(b.TopicType)
	case a.TopicID != b.TopicID:
		return strings.Compare(a.TopicID, b.TopicID)
	case a.Code < b.Code:
		return -1
	case a.Code > b.Code:
		return 1
	}
	return 0
}

// newEpoch returns the epoch of a replicator starting at now: its Unix seconds, or one more
// than the epoch file's when that is not less (a restart within a second, a clock set back),
// and records it in the file.
func newEpoch(file string, now time.Time) (uint32, error) {
	epoch := uint32(now.Unix())
	if file == "" {
		return epoch, nil
	}
	if b, err := os.ReadFile(file); err == nil {
		if last, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32); err == nil && uint32(last) >= epoch {
			epoch = uint32(last) + 1
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("cannot read the replicator's epoch file: %w", err)
	}
	if err := os.WriteFile(file, []byte(strconv.FormatUint(uint64(epoch), 10)+"\n"), 0o600); err != nil {
		return 0, fmt.Errorf("cannot record the replicator's epoch: %w", err)
	}
	return epoch, nil
}
