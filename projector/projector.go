// Package projector consumes a site's state topic as a consumer group and folds it into the
// store: decode ► fold (package fold) ► batch insert ► fold into the in-memory index (package
// index) and insert the aggregate cells the batch changed ► commit offsets.
//
// Delivery: Kafka gives at-least-once; the fold is deterministic and the tables are
// ReplacingMergeTree keyed so that re-inserting a row changes nothing, which makes the effect
// exactly once. Offsets are committed only after the store acknowledged every row of the
// batch, so a crash at any instant loses nothing (the batch is redelivered) and doubles
// nothing (the redelivered rows are identical). One goroutine does fetch, fold, insert and
// commit in order, so the committed offset is always the highest below which all is stored.
//
// Aggregates: cells carry absolute values per Kafka partition and ownership epoch, versioned
// by the partition's last folded offset. Only the member the group assigned a partition to
// writes its cells: it claims the partitions each generation gives it (restores its index
// from the store, rewrites their cells under a new epoch, checks it still holds the
// generation, records the epoch for readers), then writes only cells that differ from the
// store; so kills, rebalances, evicted members and replays leave the counted cells equal to a
// computation from the live state (indexing.go explains the life cycle).
//
// Records that cannot be decoded go to the site's dead-letter topic with the reason and
// their source position, counted, and never stop the projector.
//
// Files by job: the batcher (batcher.go: fetch, admit, fold, insert, commit, dead letters),
// ownership of partitions and their epochs (ownership.go), the index's life cycle
// (indexing.go), resync (resync.go: the serial tracker, requests and answers), and the one
// retry with back-off (retry.go).
//
// It must not know which Kafka or ClickHouse it talks to: it takes the small interfaces of
// records.go and its own Record type; the adapters translate.
package projector

import (
	"context"
	"crypto/ed25519"
	"errors"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/statepipe/statepipe/projector/index"
)

// Params are the projector's collaborators.
type Params struct {
	Consumer Consumer
	Store    Inserter
	// Reader reads the store back to restore the in-memory index behind the aggregates
	// (package index); nil disables aggregates.
	Reader Reader
	// Lag returns the group's lag by topic and partition (records not yet committed), read
	// from the broker; nil: not measured.
	Lag         func(ctx context.Context) (map[string]map[int]int64, error)
	DeadLetters Producer
	// Resync takes resync requests (key client, JSON value) and their answers (key client, no
	// value) for ingest (the compacted resync.<site> topic); nil disables.
	Resync Producer
	// OpenResyncs mirrors resync.<site>: a full report from a client with an open request
	// (from an administrator, another projector process, or before a restart) answers it.
	OpenResyncs interface{ Has(client string) bool }
	// Vouch are the site's public keys (the current one and those it replaced): only records
	// an ingest of the site signed with a site key (schema.VerifyVouch) are folded, others
	// dead-lettered "unvouched". None folds every record (a site without a key: --ingest.auth off).
	Vouch      []ed25519.PublicKey
	Registerer prometheus.Registerer // wrapped with the site label by the caller
	Logger     *slog.Logger
}

// Projector folds one site's topic.
type Projector struct {
	cfg    Config
	p      Params
	m      metrics
	retry  retrier
	resync *resyncer

	idx      *index.Index // nil: aggregates disabled
	refPrint string       // fingerprint of the reference data idx was given

	cur   Generation // the generation being worked on
	owner ownership  // the partitions it owns and claimed (ownership.go)
	// liveSerials: clients' live keys by serial, for the conflict check of the batch being
	// built (cleared when it is flushed: folding it changes the index)
	liveSerials map[string]map[uint64]index.SerialKey

	inserts, insertNanos atomic.Int64 // batches inserted and their time (InsertStats)
}

// InsertStats returns the batches inserted since the projector started and the time they took
// (the pacing's insert-latency signal).
func (pr *Projector) InsertStats() (batches int64, took time.Duration) {
	return pr.inserts.Load(), time.Duration(pr.insertNanos.Load())
}

// New builds a projector. cfg is DefaultConfig() with the site's Database and Topic (and
// RefTopic) set, and any tuning changed.
func New(cfg Config, p Params) (*Projector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	cfg = cfg.withDefaults()
	m := newMetrics(p.Registerer) // a nil Registerer (tests) creates unregistered metrics
	retry := retrier{max: cfg.RetryMax, log: p.Logger}
	return &Projector{cfg: cfg, p: p, m: m, retry: retry,
		resync: &resyncer{tracker: NewTracker(), out: p.Resync, open: p.OpenResyncs, after: cfg.ResyncAfter, retry: retry,
			published: m.resyncs, failures: m.kafkaErrors.WithLabelValues(opResync), log: p.Logger},
		owner: newOwnership(), liveSerials: map[string]map[uint64]index.SerialKey{}}, nil
}

// Name names the projector among a node's actors.
func (pr *Projector) Name() string { return "projector" }

// Run folds until ctx is done or the store fails for good: one generation of the consumer
// group after another. It returns nil once ctx is done, whatever was interrupted: records
// fetched and not committed are redelivered.
func (pr *Projector) Run(ctx context.Context) error {
	if pr.p.Lag != nil {
		lagCtx, stopLag := context.WithCancel(ctx)
		defer stopLag()
		go pr.watchLag(lagCtx)
	}
	for {
		var gen Generation
		// The client reports a failed join here and tries again (a coordinator restart, a
		// broker down): back off and go on rather than stop the process.
		err := pr.retry.do(ctx, "join the consumer group", pr.m.kafkaErrors.WithLabelValues(opJoin), func() (err error) {
			gen, err = pr.p.Consumer.Next(ctx)
			return err
		})
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		pr.m.generations.Inc()
		err = pr.generation(ctx, gen)
		gen.Release()
		switch {
		case ctx.Err() != nil:
			return nil // shutting down: the unflushed batch is redelivered to whoever runs next
		case errors.Is(err, ErrGenerationEnded):
			pr.p.Logger.Info("the consumer group is rebalancing", "generation", gen.ID())
		case err != nil:
			return err
		}
	}
}

// watchLag reads the group's lag every LagEvery, independently of folding: it must grow
// while folding is stuck (the store unavailable), which is when it matters.
func (pr *Projector) watchLag(ctx context.Context) {
	t := time.NewTicker(pr.cfg.LagEvery)
	defer t.Stop()
	for {
		if lag, err := pr.p.Lag(ctx); err == nil {
			for topic, parts := range lag {
				for p, n := range parts {
					pr.m.lag.WithLabelValues(topic, strconv.Itoa(p)).Set(float64(n))
				}
			}
		} else if ctx.Err() == nil {
			pr.m.kafkaErrors.WithLabelValues(opLag).Inc()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
