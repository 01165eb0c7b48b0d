package replicator

import (
	"context"
	"crypto/ed25519"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ForwardParams are the parts a Forward works with.
type ForwardParams struct {
	Source Source   // hier.<site>, as a member of the site's forward group
	Parent Producer // into hier.<parent>
	// Site, Below and Keys check each record as the site's fold does (FoldConfig.Below,
	// FoldParams.Keys): what the fold would refuse is not passed on either.
	Site       string
	Below      map[string]bool
	Keys       func(origin string) ([]ed25519.PublicKey, error)
	Registerer prometheus.Registerer
	Logger     *slog.Logger
}

// Forward passes what a middle site's children send on to its parent, unchanged: each
// message keeps its origin, version and watermark, so every ancestor can count and date each
// site below it. It commits once the parent's broker acknowledged; after a crash it sends
// some records again, which the versions make harmless.
type Forward struct {
	parent string
	p      ForwardParams
	log    *slog.Logger

	records, bytes, rejected prometheus.Counter
}

// NewForward builds the forwarder and registers its metrics.
func NewForward(parent string, p ForwardParams) *Forward {
	if p.Logger == nil {
		p.Logger = slog.New(slog.DiscardHandler)
	}
	if p.Registerer == nil {
		p.Registerer = prometheus.NewRegistry()
	}
	f := &Forward{parent: parent, p: p, log: p.Logger.With("role", "forwarder", "parent", parent),
		records: prometheus.NewCounter(prometheus.CounterOpts{Name: "statepipe_replicator_forwarded_records_total",
			Help: "Records of the sites below passed on to the parent unchanged."}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "statepipe_replicator_forwarded_bytes_total",
			Help: "Bytes (keys and values) of the records of the sites below passed on to the parent."}),
		rejected: prometheus.NewCounter(prometheus.CounterOpts{Name: "statepipe_replicator_forward_rejected_total",
			Help: "Records of hier.<site> not passed on: undecodable, of a site not below this one, or not vouched for by their origin."}),
	}
	reg := prometheus.WrapRegistererWith(prometheus.Labels{"parent": parent}, p.Registerer)
	reg.MustRegister(f.records, f.bytes, f.rejected)
	return f
}

// Name says what it is in the node's logs.
func (f *Forward) Name() string { return "forwarder to " + f.parent }

// Run forwards until ctx is done.
func (f *Forward) Run(ctx context.Context) error {
	consume(ctx, f.p.Source, 1000, f.log, "what the sites below sent", func(batch []Record) bool {
		out := make([]Record, 0, len(batch))
		n := 0
		for _, r := range batch {
			if _, err := check(r, f.p.Site, f.p.Below, f.p.Keys); err != nil {
				f.rejected.Inc()
				f.log.Warn("not passing on a record the sites below sent", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "err", err)
				continue
			}
			out = append(out, Record{Key: r.Key, Value: r.Value, Headers: r.Headers})
			n += len(r.Key) + len(r.Value)
		}
		if len(out) > 0 && !retry(ctx, f.log, "cannot pass on to "+f.parent, func() error { return f.p.Parent.Produce(ctx, out...) }) {
			return false
		}
		f.records.Add(float64(len(out)))
		f.bytes.Add(float64(n))
		return true
	})
	return nil
}

// consume is the loop of every replicator actor that reads a topic: it takes a batch (retrying
// a failed read every second, logging it as reading what), has handle write what it makes of
// it (handle returns false once ctx ended), and commits the batch once that is done; it
// returns when ctx ends. Nothing is committed before it is written: after a crash a batch is
// handled again, which the versions (or, for reference data, the compacted keys) make harmless.
func consume(ctx context.Context, src Source, max int, log *slog.Logger, what string, handle func(batch []Record) bool) {
	for ctx.Err() == nil {
		batch, err := fetchBatch(ctx, src, max)
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("cannot read "+what+"; retrying", "err", err)
				sleep(ctx, time.Second)
			}
			continue
		}
		if !handle(batch) {
			return
		}
		if !retry(ctx, log, "cannot commit "+what, func() error { return src.Commit(ctx, batch...) }) {
			return
		}
	}
}

// fetchBatch waits for a record and takes what else arrives within 20 ms, up to max.
func fetchBatch(ctx context.Context, src Source, max int) ([]Record, error) {
	r, err := src.Fetch(ctx)
	if err != nil {
		return nil, err
	}
	batch := []Record{r}
	more, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	for len(batch) < max {
		r, err := src.Fetch(more)
		if err != nil {
			break
		}
		batch = append(batch, r)
	}
	return batch, nil
}
