package replicator

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/statepipe/statepipe/schema"
)

// FoldConfig configures the fold of what the sites below send.
type FoldConfig struct {
	Site     string
	Database string // the site's database: hier_cells, hier_origins
	// MaxBatch bounds the records folded in one insert (default 1000).
	MaxBatch int
	// Below are the sites below this one (the topology's descendants): a message of any
	// other origin — this site's own, a sibling's, one the topology does not name — is
	// refused. Nil: every origin.
	Below map[string]bool
}

// FoldParams are the parts a Fold works with.
type FoldParams struct {
	Source Source // hier.<site>, as a member of the site's fold group
	Store  Inserter
	// Keys returns the public keys of an origin site: a message is folded only when its vouch
	// verifies with one of them. Nil: every message is folded (auth off).
	Keys       func(origin string) ([]ed25519.PublicKey, error)
	Registerer prometheus.Registerer
	Logger     *slog.Logger
}

// Fold writes what the site's children send (their own cells and, passed on, their
// descendants') into hier_cells and hier_origins, and commits once the store has them. Rows
// carry the message's version, and readers keep the greatest per key, so a record folded twice,
// late or out of order changes nothing: the fold needs neither ordering nor exclusivity, and
// several members of its group can share the partitions.
type Fold struct {
	cfg FoldConfig
	p   FoldParams
	log *slog.Logger

	folded, rejected prometheus.Counter
	cells            prometheus.Counter
}

// NewFold builds the fold and registers its metrics.
func NewFold(cfg FoldConfig, p FoldParams) *Fold {
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 1000
	}
	if p.Logger == nil {
		p.Logger = slog.New(slog.DiscardHandler)
	}
	if p.Registerer == nil {
		p.Registerer = prometheus.NewRegistry()
	}
	f := &Fold{cfg: cfg, p: p, log: p.Logger.With("role", "hierarchy fold"),
		folded: prometheus.NewCounter(prometheus.CounterOpts{Name: "statepipe_hierarchy_folded_records_total",
			Help: "Records of hier.<site> (cells and heartbeats of the sites below) read, folded into hier_cells and hier_origins, and committed (those refused too: statepipe_hierarchy_rejected_records_total)."}),
		rejected: prometheus.NewCounter(prometheus.CounterOpts{Name: "statepipe_hierarchy_rejected_records_total",
			Help: "Records of hier.<site> that could not be decoded or checked, skipped (logged with the reason)."}),
		cells: prometheus.NewCounter(prometheus.CounterOpts{Name: "statepipe_hierarchy_folded_cells_total",
			Help: "Cell values of the sites below folded."}),
	}
	p.Registerer.MustRegister(f.folded, f.rejected, f.cells)
	return f
}

// Name says what it is in the node's logs.
func (f *Fold) Name() string { return "hierarchy fold" }

// Run folds until ctx is done.
func (f *Fold) Run(ctx context.Context) error {
	consume(ctx, f.p.Source, f.cfg.MaxBatch, f.log, "what the sites below sent", func(batch []Record) bool {
		cells, origins := f.rows(batch)
		for _, rows := range []schema.Rows{cells, origins} {
			if rows.Len() > 0 && !retry(ctx, f.log, "cannot write what the sites below sent", func() error { return f.p.Store.Insert(ctx, rows) }) {
				return false
			}
		}
		f.folded.Add(float64(len(batch)))
		f.cells.Add(float64(cells.Len()))
		return true
	})
	return nil
}

// rows decodes a batch into rows of hier_cells and hier_origins.
func (f *Fold) rows(batch []Record) (*cellRows, *originRows) {
	cells := &cellRows{table: f.cfg.Database + ".hier_cells"}
	origins := &originRows{table: f.cfg.Database + ".hier_origins"}
	for _, r := range batch {
		m, err := check(r, f.cfg.Site, f.cfg.Below, f.p.Keys)
		if err != nil {
			f.rejected.Inc()
			f.log.Warn("skipping a record the sites below sent", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "err", err)
			continue
		}
		v := m.Version()
		for _, c := range m.Cells {
			cells.rows = append(cells.rows, cellRow{origin: m.Origin, cell: c, version: v})
		}
		if m.Heartbeat != nil {
			origins.rows = append(origins.rows, originRow{origin: m.Origin, version: v, hb: *m.Heartbeat, received: r.Time})
		}
	}
	return cells, origins
}

// VouchTopic is the topic name a replicated message's vouch covers: the same over every hop,
// since a middle site passes messages on from its topic to its parent's unchanged.
const VouchTopic = "hier"

// check decodes a record of hier.<site> and checks it: its origin is a site below site (when
// below is known), its record key is its origin, and its vouch verifies with the origin's keys
// (when keys is set).
func check(r Record, site string, below map[string]bool, keys func(string) ([]ed25519.PublicKey, error)) (*Message, error) {
	m, err := Decode(r.Value)
	if err != nil {
		return nil, err
	}
	if below != nil && !below[m.Origin] {
		return nil, fmt.Errorf("a message of site %s, which is not below %s", m.Origin, site)
	}
	if keys != nil {
		if err := verify(keys, m.Origin, r); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// verify checks a message's vouch with its origin's keys.
func verify(keys func(string) ([]ed25519.PublicKey, error), origin string, r Record) error {
	if string(r.Key) != origin {
		return fmt.Errorf("the record's key %q is not its origin %s", r.Key, origin)
	}
	ks, err := keys(origin)
	if err != nil {
		return fmt.Errorf("cannot check what %s sent: %w", origin, err)
	}
	vouch := schema.HeaderValue(r.Headers, schema.HeaderVouch)
	if vouch == nil {
		return fmt.Errorf("not vouched for: the record carries no %s header (every replicator vouches with its site's key)", schema.HeaderVouch)
	}
	if err := schema.VerifyVouch(ks, VouchTopic, r.Key, r.Value, vouch, 0); err != nil {
		return fmt.Errorf("not vouched for with site %s's key: %w", origin, err)
	}
	return nil
}

// retry runs f until it succeeds (true) or ctx is done (false), waiting a second between
// tries and logging the first failure.
func retry(ctx context.Context, log *slog.Logger, what string, f func() error) bool {
	for i := 0; ; i++ {
		err := f()
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		if i == 0 {
			log.Warn(what+"; retrying", "err", err)
		}
		if !sleep(ctx, time.Second) {
			return false
		}
	}
}

type cellRow struct {
	origin  string
	cell    Cell
	version uint64
}

// cellRows are rows of hier_cells.
type cellRows struct {
	table string
	rows  []cellRow
}

func (r *cellRows) Table() string { return r.table }
func (r *cellRows) Len() int      { return len(r.rows) }
func (r *cellRows) Columns() []string {
	return []string{"origin", "kind", "scope", "topic_type", "topic_id", "code", "clients", "scanned", "version"}
}

func (r *cellRows) AppendRowBinary(b []byte, i int) []byte {
	w := &r.rows[i]
	b = schema.AppendString(b, w.origin)
	b = schema.AppendUInt8(b, uint8(w.cell.Kind))
	b = schema.AppendString(b, w.cell.Scope)
	b = schema.AppendUInt16(b, w.cell.TopicType)
	b = schema.AppendString(b, w.cell.TopicID)
	b = schema.AppendInt64(b, w.cell.Code)
	b = schema.AppendInt64(b, w.cell.Clients)
	b = schema.AppendInt64(b, w.cell.Scanned)
	return schema.AppendUInt64(b, w.version)
}

func (r *cellRows) Values(i int) []any {
	w := &r.rows[i]
	return []any{w.origin, w.cell.Kind.String(), w.cell.Scope, w.cell.TopicType, w.cell.TopicID, w.cell.Code, w.cell.Clients, w.cell.Scanned, w.version}
}

type originRow struct {
	origin   string
	version  uint64
	hb       Heartbeat
	received time.Time
}

// originRows are rows of hier_origins.
type originRows struct {
	table string
	rows  []originRow
}

func (r *originRows) Table() string { return r.table }
func (r *originRows) Len() int      { return len(r.rows) }
func (r *originRows) Columns() []string {
	return []string{"origin", "parent", "version", "sweep", "watermark", "sent_at", "received_at", "lag_records", "backlog_records", "cells", "pacing"}
}

func (r *originRows) AppendRowBinary(b []byte, i int) []byte {
	w := &r.rows[i]
	b = schema.AppendString(b, w.origin)
	b = schema.AppendString(b, w.hb.Parent)
	b = schema.AppendUInt64(b, w.version)
	b = schema.AppendUInt64(b, w.hb.Sweep)
	b = schema.AppendInt64(b, w.hb.Watermark)
	b = schema.AppendInt64(b, w.hb.SentAt)
	b = schema.AppendInt64(b, w.received.UnixMilli())
	b = schema.AppendInt64(b, w.hb.LagRecords)
	b = schema.AppendInt64(b, w.hb.BacklogRecords)
	b = schema.AppendInt64(b, w.hb.Cells)
	return schema.AppendString(b, w.hb.Pacing)
}

func (r *originRows) Values(i int) []any {
	w := &r.rows[i]
	return []any{w.origin, w.hb.Parent, w.version, w.hb.Sweep, schema.MillisTime(w.hb.Watermark), schema.MillisTime(w.hb.SentAt),
		w.received.UTC(), w.hb.LagRecords, w.hb.BacklogRecords, w.hb.Cells, w.hb.Pacing}
}

// FoldGroup is the consumer group of a site's fold: statepipe-hier-<site>, and after each
// rebuild of the hierarchy tables (ResetFold) a new one, which reads hier.<site> from its
// start.
func FoldGroup(ctx context.Context, q Querier, site, db string) (string, error) {
	res, err := q.Query(ctx, "SELECT count() FROM "+db+".hier_rebuilds")
	if err != nil {
		return "", fmt.Errorf("cannot read the rebuilds of %s's hierarchy tables: %w", site, err)
	}
	var n int64
	if err := res.Scan(0, &n); err != nil {
		return "", err
	}
	if n == 0 {
		return "statepipe-hier-" + site, nil
	}
	return fmt.Sprintf("statepipe-hier-%s-r%d", site, n), nil
}

// Execer runs statements.
type Execer interface {
	Exec(ctx context.Context, query string) error
}

// ResetFold empties a site's hierarchy tables and records a rebuild: the next fold reads the
// site's incoming topic from its start (FoldGroup), and the sites below, which sweep every cell
// periodically, are whole again at the latest one sweep later. Run it with the site's
// projector stopped.
func ResetFold(ctx context.Context, ex Execer, db string) error {
	for _, q := range []string{"TRUNCATE TABLE " + db + ".hier_cells", "TRUNCATE TABLE " + db + ".hier_origins",
		"INSERT INTO " + db + ".hier_rebuilds (at) VALUES (now64(3))"} {
		if err := ex.Exec(ctx, q); err != nil {
			return fmt.Errorf("cannot reset the hierarchy tables of %s: %w", db, err)
		}
	}
	return nil
}
