package replicator

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/statepipe/statepipe/schema"
)

// DownConfig configures the copy of the parent's reference data into a site's own topic.
type DownConfig struct {
	// Site is the child site, the one this Down runs for: it produces into ref.<Site>.
	Site string
	// Parent is the code of the site above: Down reads ref.<Parent> on the parent's Kafka.
	Parent string
	// MaxBatch bounds the records copied in one produce (default 1000): reference data comes in
	// imports of many lines at once, and one produce per batch keeps the copy of a large import
	// fast without holding more than a batch in memory.
	MaxBatch int
}

// Validate checks the configuration.
func (c DownConfig) Validate() error {
	switch {
	case !schema.ValidSiteCode(c.Site):
		return fmt.Errorf("cannot copy reference data down to site %q: %s", c.Site, schema.SiteCodeRule)
	case !schema.ValidSiteCode(c.Parent):
		return fmt.Errorf("cannot copy reference data down from parent %q (site %s): %s", c.Parent, c.Site, schema.SiteCodeRule)
	case c.Parent == c.Site:
		return fmt.Errorf("cannot copy reference data down from site %s to itself", c.Site)
	}
	return nil
}

// DownParams are the parts a Down works with.
type DownParams struct {
	// Source reads ref.<parent> on the PARENT's Kafka, as a member of the consumer group
	// statepipe-refdown-<site> (DownGroup).
	Source Source
	// Child produces into ref.<site> on the site's own Kafka (acks=all).
	Child Producer
	// ParentKeys are the parent's public site keys (the current one and those it replaced): a
	// record whose statepipe-vouch does not verify with one of them for topic ref.<parent> is
	// refused. Nil or empty: the parent runs with auth off, and records are copied unchecked.
	ParentKeys []ed25519.PublicKey
	// Key is the site's own private key: every copied record is vouched for ref.<site> with
	// it, as the site's ingest vouches for its own imports, since the site's projector folds
	// only reference data vouched with the site's key. Nil: copies carry no vouch (auth off).
	Key        ed25519.PrivateKey
	Registerer prometheus.Registerer
	Logger     *slog.Logger
}

// DownGroup is the consumer group, on the parent's Kafka, of the site's copy of the parent's
// reference data.
func DownGroup(site string) string { return "statepipe-refdown-" + site }

// refTopic is a site's reference-data topic, as the Kafka adapter names it (kafka.RefTopic):
// the replicator does not import the adapter.
func refTopic(site string) string { return "ref." + site }

// Down copies the reference data of the site above (ref.<parent>) into the site's own
// ref.<site>, so that catalog, lists, collections and deployments created above reach the
// site's reports, and from there the sites below it. Key and value are copied unchanged; the
// headers change:
//
//   - the parent's statepipe-vouch is checked with the parent's keys (DownParams.ParentKeys),
//     and a record that fails is refused: skipped, counted
//     (statepipe_replicator_refdown_rejected_total) and logged;
//   - statepipe-origin (schema.HeaderOrigin) names the owning site: kept when the record came
//     from further up and carries it, else the parent, where it was imported. Ingest refuses
//     imports of a key another site owns (ingest.RefOwners): the data is read-only below;
//   - the record is vouched anew for ref.<site> with the site's key (DownParams.Key).
//
// Tombstones are not copied: the site's projector folds none, and a tombstone carries no
// vouch, so copying one would let anyone who can produce to the parent's topic have
// compaction drop the site's copy of a record.
//
// Down commits a batch once the site's broker acknowledged every copy (refused records are
// committed with it: they are never copied). After a crash it copies some records again,
// which changes nothing: ref.<site> is compacted by key and the copies are identical.
type Down struct {
	cfg  DownConfig
	p    DownParams
	log  *slog.Logger
	from string // ref.<parent>
	to   string // ref.<site>

	records, rejected prometheus.Counter
}

// NewDown builds the copy and registers its metrics, labelled parent=<code>. cfg must be
// valid (DownConfig.Validate).
func NewDown(cfg DownConfig, p DownParams) *Down {
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 1000
	}
	if p.Logger == nil {
		p.Logger = slog.New(slog.DiscardHandler)
	}
	if p.Registerer == nil {
		p.Registerer = prometheus.NewRegistry()
	}
	d := &Down{cfg: cfg, p: p, from: refTopic(cfg.Parent), to: refTopic(cfg.Site),
		log: p.Logger.With("role", "reference data down", "parent", cfg.Parent),
		records: prometheus.NewCounter(prometheus.CounterOpts{Name: "statepipe_replicator_refdown_records_total",
			Help: "Reference-data records of the parent's ref.<parent> copied into the site's ref.<site>."}),
		rejected: prometheus.NewCounter(prometheus.CounterOpts{Name: "statepipe_replicator_refdown_rejected_total",
			Help: "Reference-data records of the parent's ref.<parent> refused (vouch or header check failed), skipped (logged with the reason)."}),
	}
	reg := prometheus.WrapRegistererWith(prometheus.Labels{"parent": cfg.Parent}, p.Registerer)
	reg.MustRegister(d.records, d.rejected)
	return d
}

// Name says what it is in the node's logs.
func (d *Down) Name() string { return "reference data down from " + d.cfg.Parent }

// Run copies until ctx is done.
func (d *Down) Run(ctx context.Context) error {
	consume(ctx, d.p.Source, d.cfg.MaxBatch, d.log.With("topic", d.from), "the parent's reference data", func(batch []Record) bool {
		out := d.copies(batch)
		if len(out) > 0 && !retry(ctx, d.log, "cannot copy the parent's reference data into "+d.to, func() error { return d.p.Child.Produce(ctx, out...) }) {
			return false
		}
		d.records.Add(float64(len(out)))
		return true
	})
	return nil
}

// copies checks each record of a batch and returns the copies to produce into ref.<site>.
func (d *Down) copies(batch []Record) []Record {
	out := make([]Record, 0, len(batch))
	for _, r := range batch {
		if r.Value == nil {
			d.log.Debug("not copying a tombstone", "partition", r.Partition, "offset", r.Offset, "key", string(r.Key))
			continue
		}
		c, err := d.copy(r)
		if err != nil {
			d.rejected.Inc()
			d.log.Warn("refusing a reference-data record of the parent", "topic", d.from, "partition", r.Partition, "offset", r.Offset,
				"key", string(r.Key), "err", err)
			continue
		}
		out = append(out, c)
	}
	return out
}

// copy checks one record of ref.<parent> and returns its copy for ref.<site>: same key, value
// and timestamp (the projector orders versions of an id by it), the parent's other headers,
// the owner in statepipe-origin, and the site's vouch.
func (d *Down) copy(r Record) (Record, error) {
	accepted, err := schema.ParseAccepted(schema.HeaderValue(r.Headers, schema.HeaderAccepted))
	if err != nil {
		return Record{}, err
	}
	if len(d.p.ParentKeys) > 0 {
		if err := schema.VerifyVouch(d.p.ParentKeys, d.from, r.Key, r.Value, schema.HeaderValue(r.Headers, schema.HeaderVouch), accepted); err != nil {
			return Record{}, fmt.Errorf("cannot verify the record with site %s's keys: %w", d.cfg.Parent, err)
		}
	}
	owner := d.cfg.Parent
	if o := schema.HeaderValue(r.Headers, schema.HeaderOrigin); len(o) > 0 {
		if !schema.ValidSiteCode(string(o)) {
			return Record{}, fmt.Errorf("cannot take the owner %q of header %s: %s", o, schema.HeaderOrigin, schema.SiteCodeRule)
		}
		owner = string(o)
	}
	c := Record{Key: r.Key, Value: r.Value, Time: r.Time, Headers: make([]Header, 0, len(r.Headers)+2)}
	for _, h := range r.Headers {
		if h.Key != schema.HeaderVouch && h.Key != schema.HeaderOrigin {
			c.Headers = append(c.Headers, h)
		}
	}
	c.Headers = append(c.Headers, Header{Key: schema.HeaderOrigin, Value: []byte(owner)})
	if d.p.Key != nil {
		c.Headers = append(c.Headers, Header{Key: schema.HeaderVouch, Value: schema.Vouch(d.p.Key, d.to, c.Key, c.Value, accepted)})
	}
	return c, nil
}
