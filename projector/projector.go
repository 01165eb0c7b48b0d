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
// It must not know which Kafka or ClickHouse it talks to: it takes the small interfaces below.
package projector

import (
	"context"
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"runtime/debug"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/statepipe/statepipe/projector/fold"
	"github.com/statepipe/statepipe/projector/index"
	"github.com/statepipe/statepipe/schema"
)

// Consumer is a member of the site's consumer group (kafka.GroupConsumer): it hands out one
// generation of the group at a time, with the partitions assigned to this member.
type Consumer interface {
	Next(ctx context.Context) (Generation, error)
}

// Generation is one generation of the consumer group as this member sees it.
type Generation interface {
	ID() int32
	Member() string
	// Partitions returns the partitions of topic the group assigned to this member.
	Partitions(topic string) []int
	// FetchMessage returns the next record of those partitions, or an error wrapping
	// kafkago.ErrGenerationEnded once the group rebalances.
	FetchMessage(ctx context.Context) (kafkago.Message, error)
	// CommitMessages commits the offsets after msgs; refused once the generation is over.
	CommitMessages(ctx context.Context, msgs ...kafkago.Message) error
	// Alive returns nil while the generation is the group's current one with this member in
	// it, an error wrapping kafkago.ErrGenerationEnded when it is over, another error when
	// the coordinator cannot be asked.
	Alive(ctx context.Context) error
	// Release lets the member rejoin the group once the generation ended.
	Release()
}

// Inserter writes a batch of rows and returns once the store acknowledged it.
type Inserter interface {
	Insert(ctx context.Context, rows schema.Rows) error
}

// DeadLetters takes records that cannot be folded (*kafka-go Writer on the DLQ topic).
type DeadLetters interface {
	WriteMessages(ctx context.Context, msgs ...kafkago.Message) error
}

// Config tunes batching.
type Config struct {
	// Database is the site's ClickHouse database.
	Database string
	// Topic is the site's state topic (state.<site>): its partitions carry the aggregate
	// cells a member owns.
	Topic string
	// RefTopic is the site's reference-data topic (ref.<site>); records from it fold into the
	// ref_* tables, every other topic's records are reports.
	RefTopic string
	// BatchMessages flushes a batch once it holds this many state messages (default 200,000):
	// ClickHouse wants few large inserts; each insert creates a part.
	BatchMessages int
	// BatchWait flushes a non-empty batch this long after its first record (default 200 ms):
	// the bound on how long a quiet site waits to see a report.
	BatchWait time.Duration
	// RetryMax caps the back-off between attempts while the store is unavailable (default 5 s).
	RetryMax time.Duration
	// ExpiredCleanup is how long an expired update stays in the update lists the aggregates
	// count (default 7 days; the reports use the same setting).
	ExpiredCleanup time.Duration
	// RefPoll is how often reference data imported by other projector processes, and expiry
	// crossing the cleanup age, are looked for (default 2 s).
	RefPoll time.Duration
	// ResyncAfter is how old a serial gap may grow before the client is asked for a full
	// report (default 5 min; ConfigMgr waits 2 days). Zero disables gap-driven resync.
	ResyncAfter time.Duration
	// LagEvery is how often the group's lag is read from the broker (default 2 s).
	LagEvery time.Duration
}

// RegisterFlags registers the batching flags under prefix.
func (c *Config) RegisterFlags(prefix string, fs *flag.FlagSet) {
	fs.IntVar(&c.BatchMessages, prefix+"batch-messages", 200000, "flush a batch at this many state messages")
	fs.DurationVar(&c.BatchWait, prefix+"batch-wait", 200*time.Millisecond, "flush a non-empty batch after this long")
	fs.DurationVar(&c.RetryMax, prefix+"retry-max", 5*time.Second, "longest back-off while the store is unavailable")
	fs.DurationVar(&c.RefPoll, prefix+"ref-poll", 2*time.Second, "how often to look for reference data changes that alter aggregates")
	fs.DurationVar(&c.ResyncAfter, prefix+"resync-after", 5*time.Minute, "ask a client for a full report when a gap in its serials is this old (0: never)")
	fs.DurationVar(&c.LagEvery, prefix+"lag-every", 2*time.Second, "how often to read the group's lag from the broker (statepipe_projector_lag_records)")
}

// Validate reports a config that cannot work.
func (c *Config) Validate() error {
	switch {
	case c.Database == "":
		return errors.New("projector: database is required")
	case c.Topic == "":
		return errors.New("projector: topic is required")
	case c.BatchMessages < 1:
		return errors.New("projector: batch-messages must be at least 1")
	case c.BatchWait <= 0:
		return errors.New("projector: batch-wait must be positive")
	case c.RetryMax <= 0:
		return errors.New("projector: retry-max must be positive")
	case c.RefPoll < 0:
		return errors.New("projector: ref-poll must not be negative")
	}
	return nil
}

// Params are the projector's collaborators.
type Params struct {
	Consumer Consumer
	Store    Inserter
	// Reader reads the store back to restore the in-memory index behind the aggregates
	// (package index); nil disables aggregates.
	Reader Reader
	// Lag returns the group's lag on the state topic by partition (records not yet
	// committed), read from the broker; nil: not measured.
	Lag         func(ctx context.Context) (map[int]int64, error)
	DeadLetters DeadLetters
	// Resync takes resync requests (key client, JSON value) and their answers (key client, no
	// value) for ingest (*kafka-go Writer on the compacted resync.<site> topic); nil disables.
	Resync DeadLetters
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
	cfg     Config
	p       Params
	m       metrics
	tracker *Tracker

	idx      *index.Index // nil: aggregates disabled
	refPrint string       // fingerprint of the reference data idx was given

	cur    Generation      // the generation being worked on
	gen    int32           // its id (0: none yet)
	epochs map[int32]int64 // of those, the ones claimed, with the epoch their cells are written under
	// unclaimed: owned partitions not claimed yet (torn when taken over: claimReady)
	unclaimed map[int32]bool
	// liveSerials: clients' live keys by serial, for the conflict check of the batch being
	// built (cleared when it is flushed: folding it changes the index)
	liveSerials map[string]map[uint64]index.SerialKey
}

type metrics struct {
	folded      prometheus.Counter
	records     prometheus.Counter
	batches     prometheus.Counter
	deadLetters *prometheus.CounterVec
	storeErrors prometheus.Counter
	insertTime  prometheus.Histogram
	visible     prometheus.Histogram
	offset      *prometheus.GaugeVec
	resyncs     *prometheus.CounterVec
	kafkaErrors *prometheus.CounterVec
	aggRows     prometheus.Counter
	restores    prometheus.Counter
	restoreTime prometheus.Gauge
	idxClients  prometheus.Gauge
	lag         *prometheus.GaugeVec
	owned       prometheus.Gauge
	claims      prometheus.Counter
	generations prometheus.Counter
}

// New builds a projector.
func New(cfg Config, p Params) (*Projector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	if cfg.ExpiredCleanup == 0 {
		cfg.ExpiredCleanup = 7 * 24 * time.Hour
	}
	if cfg.RefPoll == 0 {
		cfg.RefPoll = 2 * time.Second
	}
	if cfg.LagEvery <= 0 {
		cfg.LagEvery = 2 * time.Second
	}
	f := promauto.With(p.Registerer) // a nil Registerer (tests) creates unregistered metrics
	buckets := []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800}
	m := metrics{
		folded:      f.NewCounter(prometheus.CounterOpts{Name: "statepipe_projector_messages_total", Help: "State messages folded and committed."}),
		records:     f.NewCounter(prometheus.CounterOpts{Name: "statepipe_projector_records_total", Help: "Kafka records (reports) folded and committed."}),
		batches:     f.NewCounter(prometheus.CounterOpts{Name: "statepipe_projector_batches_total", Help: "Batches inserted and committed."}),
		deadLetters: f.NewCounterVec(prometheus.CounterOpts{Name: "statepipe_projector_dead_letters_total", Help: "Records sent to the dead-letter topic, by reason."}, []string{"reason"}),
		storeErrors: f.NewCounter(prometheus.CounterOpts{Name: "statepipe_projector_store_errors_total", Help: "Failed insert attempts (retried until the store acknowledges)."}),
		insertTime:  f.NewHistogram(prometheus.HistogramOpts{Name: "statepipe_projector_insert_duration_seconds", Help: "Time to insert one batch (all tables).", Buckets: buckets}),
		visible:     f.NewHistogram(prometheus.HistogramOpts{Name: "statepipe_projector_visible_delay_seconds", Help: "From ingest acceptance to committed in the store, per record.", Buckets: buckets}),
		kafkaErrors: f.NewCounterVec(prometheus.CounterOpts{Name: "statepipe_projector_kafka_errors_total",
			Help: "Failed fetches, commits, committed-offset and lag reads (retried; a failed commit means the batch is redelivered)."}, []string{"op"}),
		resyncs: f.NewCounterVec(prometheus.CounterOpts{Name: "statepipe_projector_resync_requests_total",
			Help: "Resync requests published (reason gap) and answered by a full report (reason answered)."}, []string{"reason"}),
		aggRows:     f.NewCounter(prometheus.CounterOpts{Name: "statepipe_projector_aggregate_rows_total", Help: "Aggregate cells written (changed values)."}),
		restores:    f.NewCounter(prometheus.CounterOpts{Name: "statepipe_projector_index_restores_total", Help: "Restores of the in-memory index from the store (start, or records another projector folded)."}),
		restoreTime: f.NewGauge(prometheus.GaugeOpts{Name: "statepipe_projector_index_restore_seconds", Help: "Duration of the last index restore."}),
		idxClients:  f.NewGauge(prometheus.GaugeOpts{Name: "statepipe_projector_index_clients", Help: "Clients in the in-memory index."}),
		lag: f.NewGaugeVec(prometheus.GaugeOpts{Name: "statepipe_projector_lag_records",
			Help: "Records of the state topic the group has not committed yet, per partition, read from the broker (grows while the projector or the store is stuck)."}, []string{"partition"}),
		owned: f.NewGauge(prometheus.GaugeOpts{Name: "statepipe_projector_partitions_owned",
			Help: "Partitions of the state topic the consumer group assigned to this process (only their owner writes their aggregate cells)."}),
		claims: f.NewCounter(prometheus.CounterOpts{Name: "statepipe_projector_partition_claims_total",
			Help: "Partitions this process took over: restored, every cell rewritten under a new epoch, and fenced."}),
		generations: f.NewCounter(prometheus.CounterOpts{Name: "statepipe_projector_generations_total",
			Help: "Consumer-group generations this process joined (each rebalance is one)."}),
		offset: f.NewGaugeVec(prometheus.GaugeOpts{Name: "statepipe_projector_committed_offset", Help: "Next offset to consume, per topic and partition, after the last commit."}, []string{"topic", "partition"}),
	}
	return &Projector{cfg: cfg, p: p, m: m, tracker: NewTracker(),
		epochs: map[int32]int64{}, unclaimed: map[int32]bool{}, liveSerials: map[string]map[uint64]index.SerialKey{}}, nil
}

// Run folds until ctx is done or the store fails for good: one generation of the consumer
// group after another.
func (pr *Projector) Run(ctx context.Context) error {
	if pr.p.Lag != nil {
		lagCtx, stopLag := context.WithCancel(ctx)
		defer stopLag()
		go pr.watchLag(lagCtx)
	}
	for {
		gen, err := pr.p.Consumer.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			// kafka-go reports a failed join here and tries again (a coordinator restart, a
			// broker down): back off and go on rather than stop the process.
			pr.m.kafkaErrors.WithLabelValues("join").Inc()
			pr.p.Logger.Warn("cannot join the consumer group; retrying", "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(time.Second):
			}
			continue
		}
		pr.m.generations.Inc()
		err = pr.generation(ctx, gen)
		gen.Release()
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, kafkago.ErrGenerationEnded):
			pr.p.Logger.Info("the consumer group is rebalancing", "generation", gen.ID())
		case err != nil:
			return err
		}
	}
}

// generation folds the records of one generation's partitions until it ends (the group
// rebalances: kafkago.ErrGenerationEnded) or ctx is done. Records fetched and not committed
// then are redelivered to whoever owns their partition next.
func (pr *Projector) generation(ctx context.Context, gen Generation) error {
	pr.cur = gen
	if err := pr.own(ctx, gen); err != nil {
		return err
	}
	clear(pr.liveSerials) // own may have restored the index
	batch := fold.NewBatch(pr.cfg.Database)
	var pending []kafkago.Message // records in the batch, to commit after the insert
	var reports []*schema.Report  // decoded reports kept alive until the batch is written
	var recs []fold.Record        // the same with their positions, for the index
	var deadline time.Time
	nextSweep := time.Now().Add(pr.sweepEvery())
	nextRefPoll := time.Now().Add(pr.cfg.RefPoll)
	for {
		// Wait for the next record at most until the batch must flush, gaps must be swept or
		// reference data looked at.
		wait := nextSweep
		if pr.idx != nil && nextRefPoll.Before(wait) {
			wait = nextRefPoll
		}
		if len(pending) > 0 && deadline.Before(wait) {
			wait = deadline
		}
		fetchCtx, cancel := context.WithDeadline(ctx, wait)
		msg, err := gen.FetchMessage(fetchCtx)
		cancel()
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return nil // shutting down: the unflushed batch is redelivered to whoever runs next
		case errors.Is(err, kafkago.ErrGenerationEnded):
			return err // the unflushed batch is redelivered to the partitions' next owners
		case errors.Is(err, context.DeadlineExceeded):
			// linger over: flush below; and sweep gaps that aged without new records
			if time.Now().After(nextSweep) {
				if err := pr.requestResyncs(ctx); err != nil {
					if ctx.Err() != nil {
						return nil
					}
					return err
				}
				nextSweep = time.Now().Add(pr.sweepEvery())
			}
			if err := pr.pollRefIfDue(ctx, &nextRefPoll); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
		default:
			// A failed fetch: back off and go on rather than stop the process.
			pr.m.kafkaErrors.WithLabelValues("fetch").Inc()
			pr.p.Logger.Warn("kafka fetch failed; retrying", "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(time.Second):
			}
			continue
		}
		if err == nil {
			if len(pending) == 0 {
				deadline = time.Now().Add(pr.cfg.BatchWait)
			}
			pending = append(pending, msg)
			if msg.Topic != pr.cfg.RefTopic || pr.cfg.RefTopic == "" {
				batch.Processed(msg.Partition, msg.Offset)
			}
			r, accepted, reason, rerr := pr.admit(batch, msg)
			switch {
			case reason != "":
				if err := pr.deadLetter(ctx, msg, reason, rerr); err != nil {
					return err
				}
			case r != nil:
				reports = append(reports, r)
				rec := fold.Record{Partition: msg.Partition, Offset: msg.Offset, AcceptedAt: accepted, Report: r}
				recs = append(recs, rec)
				batch.Add(rec)
			}
			if batch.Size() < pr.cfg.BatchMessages && time.Now().Before(deadline) {
				continue
			}
		}
		if len(pending) == 0 {
			continue
		}
		if err := pr.flush(ctx, batch, pending, recs); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if err := pr.track(ctx, reports, pending); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		// Under steady load fetches never time out: look at reference data here too.
		if err := pr.pollRefIfDue(ctx, &nextRefPoll); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		batch.Reset()
		clear(pr.liveSerials)
		pending = pending[:0]
		clear(reports)
		reports = reports[:0]
		clear(recs)
		recs = recs[:0]
	}
}

// watchLag reads the group's lag every LagEvery, independently of folding: it must grow
// while folding is stuck (the store unavailable), which is when it matters.
func (pr *Projector) watchLag(ctx context.Context) {
	t := time.NewTicker(pr.cfg.LagEvery)
	defer t.Stop()
	for {
		if lag, err := pr.p.Lag(ctx); err == nil {
			for p, n := range lag {
				pr.m.lag.WithLabelValues(strconv.Itoa(p)).Set(float64(n))
			}
		} else if ctx.Err() == nil {
			pr.m.kafkaErrors.WithLabelValues("lag").Inc()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// flush inserts the batch, retrying with back-off until the store acknowledges, folds it into
// the index and writes the aggregate cells it changed, then commits.
func (pr *Projector) flush(ctx context.Context, b *fold.Batch, pending []kafkago.Message, recs []fold.Record) error {
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		start := time.Now()
		err := pr.insert(ctx, b)
		if err == nil {
			pr.m.insertTime.Observe(time.Since(start).Seconds())
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		pr.m.storeErrors.Inc()
		pr.p.Logger.Warn("store insert failed; retrying", "attempt", attempt, "messages", b.Messages(), "backoff", backoff, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, pr.cfg.RetryMax)
	}
	if err := pr.indexBatch(ctx, b.RefRecords() > 0, pending, recs); err != nil {
		return err
	}
	if err := pr.cur.CommitMessages(ctx, pending...); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// After a rebalance the partition may belong to another member, which redelivers the
		// batch; its rows are identical, so nothing doubles. Go on with the next batch.
		pr.m.kafkaErrors.WithLabelValues("commit").Inc()
		pr.p.Logger.Warn("cannot commit offsets after insert; the batch will be redelivered", "records", len(pending), "err", err)
	}
	now := time.Now()
	type tp struct {
		topic     string
		partition int
	}
	next := map[tp]int64{}
	for _, m := range pending {
		pr.m.visible.Observe(now.Sub(m.Time).Seconds())
		k := tp{m.Topic, m.Partition}
		next[k] = max(next[k], m.Offset+1)
	}
	for k, o := range next {
		pr.m.offset.WithLabelValues(k.topic, strconv.Itoa(k.partition)).Set(float64(o))
	}
	pr.m.records.Add(float64(len(pending)))
	pr.m.folded.Add(float64(b.Messages()))
	pr.m.batches.Inc()
	return nil
}

// insert writes the raw log first, then the derived tables: if a later insert fails, the
// retry rewrites them all, and every table's rows are idempotent.
func (pr *Projector) insert(ctx context.Context, b *fold.Batch) error {
	for _, rows := range b.Tables() {
		if err := pr.p.Store.Insert(ctx, rows); err != nil {
			return err
		}
	}
	return nil
}

// admit decides what becomes of one fetched record: a report to fold (r) with its acceptance
// time, nothing (a reference-data record, folded into the batch here, or a tombstone), or a
// dead letter (reason and cause). Only records an ingest of the site vouched for are folded
// (with Params.Vouch set): a record produced behind ingest's back is dead-lettered
// "unvouched", and the acceptance time is the vouched statepipe-accepted header's, not the
// record timestamp anyone who produces can set. No record can stop the projector: a panic
// while decoding or checking one (a decoder bug) is recovered and the record dead-lettered
// "undecodable".
func (pr *Projector) admit(batch *fold.Batch, msg kafkago.Message) (r *schema.Report, accepted int64, reason string, cause error) {
	defer func() {
		if p := recover(); p != nil {
			r, reason, cause = nil, "undecodable", fmt.Errorf("BUG: decoding the record panicked: %v", p)
			pr.p.Logger.Error("decoding a record panicked", "partition", msg.Partition, "offset", msg.Offset, "panic", p, "stack", string(debug.Stack()))
		}
	}()
	ref := msg.Topic == pr.cfg.RefTopic && pr.cfg.RefTopic != ""
	if ref && msg.Value == nil {
		return nil, 0, "", nil // a tombstone (compaction delete): nothing to fold
	}
	accepted, err := schema.ParseAccepted(recordHeader(msg, schema.HeaderAccepted))
	if err != nil {
		return nil, 0, "unvouched", err
	}
	if len(pr.p.Vouch) > 0 {
		if err := schema.VerifyVouch(pr.p.Vouch, msg.Topic, msg.Key, msg.Value, recordHeader(msg, schema.HeaderVouch), accepted); err != nil {
			return nil, 0, "unvouched", err
		}
	}
	if accepted == 0 {
		accepted = msg.Time.UnixMilli() // reference data; or records nothing vouches for (auth off)
	}
	if ref {
		if err := batch.AddRef(string(msg.Key), msg.Value, msg.Offset, accepted); err != nil {
			return nil, 0, "undecodable", err
		}
		return nil, 0, "", nil
	}
	r = new(schema.Report)
	if err := schema.DecodeReportLimits(msg.Value, r, recordLimits); err != nil {
		return nil, 0, "undecodable", err
	}
	if err := r.Validate(schema.Limits{}); err != nil {
		return nil, 0, "invalid", err
	}
	if string(msg.Key) != r.Client {
		return nil, 0, "invalid", fmt.Errorf("record key %q is not the report's client %q: ingest keys every report by its client", msg.Key, r.Client)
	}
	if err := pr.conflict(batch, r); err != nil {
		return nil, 0, "serial_conflict", err
	}
	return r, accepted, "", nil
}

// recordLimits decode the records of the state topic: any message count (a site may raise
// --ingest.max-messages; memory is bounded by the decoder's 4× budget and the topic's record
// size), every other bound as at ingest.
var recordLimits = func() schema.Limits {
	l := schema.DefaultLimits
	l.MaxMessages = math.MaxInt
	return l
}()

// recordHeader returns the value of a record header, nil when absent (empty when present
// without a value).
func recordHeader(m kafkago.Message, key string) []byte {
	for _, h := range m.Headers {
		if h.Key == key {
			if h.Value == nil {
				return []byte{}
			}
			return h.Value
		}
	}
	return nil
}

// conflict returns an error naming the first message of r whose serial the client already
// used for another message (DESIGN §4: a serial seen before with other content is rejected
// and counted, never folded): a serial names one message of its client, whatever its key. It
// looks at every message of the batch being built and at every live key of the index; a
// serial whose message has since been superseded by a greater serial of its key is outside
// that window — the raw log then keeps both messages (ddl/0010), so nothing acknowledged is
// lost and a rebuild folds what the live tables folded. A report with a conflict is refused
// whole — a report is atomic, and one that rewrites history is suspect — and goes to the
// dead-letter topic. Exact duplicates are not conflicts.
func (pr *Projector) conflict(b *fold.Batch, r *schema.Report) error {
	var live map[uint64]index.SerialKey // the client's live keys by serial, looked up once
	for i := range r.Messages {
		m := &r.Messages[i]
		if prev, ok := b.AtSerial(r.Client, m.Serial); ok && !fold.SameMessage(prev, m) {
			if cur, keyed := b.State(r.Client, prev.TopicType, prev.TopicID); !keyed || cur.Serial <= m.Serial {
				return conflictError(r, i, prev.TopicType, prev.TopicID, prev.State, prev.Error)
			} // else its key moved on earlier in this batch: that message is not live
		}
		if pr.idx == nil || m.Serial > pr.idx.MaxSerial(r.Client) {
			continue // above every live key's serial: new (the usual report)
		}
		// The message's own key at this very serial: a duplicate or a conflict, at once.
		if m.TopicType.Keyed() {
			if serial, state, errCode, ok := pr.idx.State(r.Client, m.TopicType, m.TopicID); ok && serial == m.Serial {
				if int32(state) != m.State || errCode != m.Error {
					return conflictError(r, i, m.TopicType, m.TopicID, int32(state), errCode)
				}
				continue
			}
		}
		// Another key at this serial: the client's live keys by serial, built once per
		// client and batch (the index does not change while a batch is built), so a report
		// re-sent whole costs its own size, not its size times the client's keys.
		if live == nil {
			if live = pr.liveSerials[r.Client]; live == nil {
				live = pr.idx.LiveSerials(r.Client)
				pr.liveSerials[r.Client] = live
			}
		}
		k, ok := live[m.Serial]
		if !ok || (k.TopicType == m.TopicType && k.TopicID == m.TopicID && int32(k.State) == m.State && k.Err == m.Error) {
			continue
		}
		if cur, moved := b.State(r.Client, k.TopicType, k.TopicID); moved && cur.Serial > m.Serial {
			continue // the key moved on earlier in this batch: its message at this serial is not live
		}
		return conflictError(r, i, k.TopicType, k.TopicID, int32(k.State), k.Err)
	}
	return nil
}

func conflictError(r *schema.Report, i int, tt schema.TopicType, topicID string, state, errCode int32) error {
	m := &r.Messages[i]
	return &schema.FieldError{Field: fmt.Sprintf("messages[%d].serial", i), Reason: fmt.Sprintf(
		"client %s already reported serial %d for %d/%s with state %d error 0x%08X; this report says %d/%s state %d error 0x%08X",
		r.Client, m.Serial, tt, topicID, state, uint32(errCode), m.TopicType, m.TopicID, m.State, uint32(m.Error))}
}

func (pr *Projector) deadLetter(ctx context.Context, msg kafkago.Message, reason string, cause error) error {
	pr.p.Logger.Warn("dead-lettering record", "partition", msg.Partition, "offset", msg.Offset, "reason", reason, "err", cause)
	dl := kafkago.Message{
		Key:   msg.Key,
		Value: msg.Value,
		Headers: append(append([]kafkago.Header{}, msg.Headers...),
			kafkago.Header{Key: "statepipe-dlq-reason", Value: []byte(reason + ": " + cause.Error())},
			kafkago.Header{Key: "statepipe-dlq-source", Value: []byte(fmt.Sprintf("%s/%d/%d", msg.Topic, msg.Partition, msg.Offset))}),
	}
	if pr.p.DeadLetters == nil {
		return fmt.Errorf("cannot dead-letter record %s/%d/%d (%s): no dead-letter topic configured", msg.Topic, msg.Partition, msg.Offset, reason)
	}
	for backoff := 100 * time.Millisecond; ; backoff = min(backoff*2, pr.cfg.RetryMax) {
		err := pr.p.DeadLetters.WriteMessages(ctx, dl)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		pr.p.Logger.Warn("dead-letter write failed; retrying", "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
	}
	pr.m.deadLetters.WithLabelValues(reason).Inc()
	return nil
}

// sweepEvery is how often aged gaps are looked for when no records arrive.
func (pr *Projector) sweepEvery() time.Duration {
	if pr.cfg.ResyncAfter <= 0 {
		return time.Hour
	}
	return min(max(pr.cfg.ResyncAfter/4, 50*time.Millisecond), 30*time.Second)
}

// track feeds the committed batch's reports to the serial tracker, publishes an answer for
// every outstanding resync request a full report answered, then requests for aged gaps.
func (pr *Projector) track(ctx context.Context, reports []*schema.Report, pending []kafkago.Message) error {
	if pr.p.Resync == nil {
		return nil
	}
	at := time.Now()
	if len(pending) > 0 {
		at = pending[len(pending)-1].Time
	}
	var answers []kafkago.Message
	serials := make([]uint64, 0, 64)
	for _, r := range reports {
		serials = serials[:0]
		lowest := r.Messages[0].Serial
		for i := range r.Messages {
			serials = append(serials, r.Messages[i].Serial)
			lowest = min(lowest, r.Messages[i].Serial)
		}
		fullFrom := uint64(0)
		if len(r.FullTypes) > 0 {
			fullFrom = lowest
		}
		answered := pr.tracker.Observe(r.Client, serials, fullFrom, at)
		if fullFrom > 0 && pr.p.OpenResyncs != nil && pr.p.OpenResyncs.Has(r.Client) {
			answered = true
		}
		if answered && !slices.ContainsFunc(answers, func(m kafkago.Message) bool { return string(m.Key) == r.Client }) {
			answers = append(answers, kafkago.Message{Key: []byte(r.Client)}) // tombstone: answered
		}
	}
	if len(answers) > 0 {
		if err := pr.publish(ctx, answers); err != nil {
			return err
		}
		pr.m.resyncs.WithLabelValues("answered").Add(float64(len(answers)))
	}
	return pr.requestResyncs(ctx)
}

// requestResyncs publishes a request for every client whose gap is older than ResyncAfter.
func (pr *Projector) requestResyncs(ctx context.Context) error {
	if pr.p.Resync == nil || pr.cfg.ResyncAfter <= 0 {
		return nil
	}
	due := pr.tracker.Due(time.Now(), pr.cfg.ResyncAfter)
	if len(due) == 0 {
		return nil
	}
	msgs := make([]kafkago.Message, len(due))
	for i, c := range due {
		contiguous, _ := pr.tracker.Contiguous(c)
		msgs[i] = kafkago.Message{Key: []byte(c), Value: []byte(fmt.Sprintf(`{"client":%q,"reason":"gap","contiguous":%d}`, c, contiguous))}
	}
	if err := pr.publish(ctx, msgs); err != nil {
		return err
	}
	pr.m.resyncs.WithLabelValues("gap").Add(float64(len(msgs)))
	pr.p.Logger.Info("requested resync for clients with aged serial gaps", "clients", len(msgs))
	return nil
}

func (pr *Projector) publish(ctx context.Context, msgs []kafkago.Message) error {
	for backoff := 100 * time.Millisecond; ; backoff = min(backoff*2, pr.cfg.RetryMax) {
		err := pr.p.Resync.WriteMessages(ctx, msgs...)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		pr.p.Logger.Warn("resync publish failed; retrying", "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
	}
}
