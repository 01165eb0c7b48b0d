package bench

// Raw ceilings: the harness states each pipeline stage's throughput as a share of what the
// bare tools do with the same data on the same machine in the same run (DESIGN §5: each stage
// ≥ 50 % of its raw ceiling). MeasureCeilings measures three of them:
//
//   - produce: kafka-go writing the records ingest produced, with ingest's writer
//     (kafka.NewWriter: acks=all, murmur2 by client id, lz4), from a few goroutines in batches
//     of ProduceBatch records: no HTTP, no decoding, no validation, no signatures;
//   - consume: kafka-go reading them back, one reader per partition with the projector's fetch
//     sizes, counting records without decoding them;
//   - insert: the rows the projector's fold makes of the same records, written with
//     schema.Store.Insert in batches of the projector's size (200,000 messages), the rows built
//     before the clock starts.
//
// Every rate is state messages per second (the messages inside the records), the unit every
// stage reports, so a stage's efficiency is its rate divided by the ceiling's.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/statepipe/statepipe/internal/kafka"
	"github.com/statepipe/statepipe/projector/fold"
	"github.com/statepipe/statepipe/schema"
)

// CeilingsConfig is what the ceilings are measured with: the site's Kafka and store, and the
// records of the run.
type CeilingsConfig struct {
	// Kafka reaches the brokers the site uses (brokers and security). Zero tuning fields take
	// kafka.Defaults(); the scratch topic gets Partitions partitions, as a state topic would.
	Kafka kafka.Config
	// Values are report records exactly as ingest produces them (canonical msgpack,
	// schema.EncodeReport); Keys their keys (client ids), same length.
	Values [][]byte
	Keys   [][]byte
	// Store is the engine to insert into (the chDB store the harness opened, or a ClickHouse
	// server). A scratch database is created in it and dropped afterwards.
	Store schema.Store
	// Producers is how many goroutines call WriteMessages at once (default 4): enough to
	// keep every partition's batch filling while earlier batches wait for acks=all.
	Producers int
	// ProduceBatch is how many records one WriteMessages call carries (default 1,000).
	ProduceBatch int
	// InsertBatch is how many state messages one insert carries (default 200,000, the
	// projector's --projector.batch-messages default).
	InsertBatch int
	// PrebuildMessages bounds how many messages' rows are built ahead of the timed inserts
	// (default 2,000,000, about 1 GiB of decoded reports and rows). A larger run is inserted
	// in rounds of this size, each built before its inserts are timed, so a 30 M-message run
	// does not hold ~15 GiB of rows at once.
	PrebuildMessages int
	// Progress, when set, gets one line per stage.
	Progress io.Writer
}

// Ceilings is what MeasureCeilings measured.
type Ceilings struct {
	Records    int    `json:"records"`
	Messages   int64  `json:"messages"` // state messages inside the records
	Bytes      int64  `json:"bytes"`    // of the record values
	Partitions int    `json:"partitions"`
	Topic      string `json:"topic"`    // the scratch topic
	Database   string `json:"database"` // the scratch database

	ProduceSeconds  float64 `json:"produce_seconds"`
	ProduceMsgsPerS float64 `json:"produce_msgs_per_second"`
	Producers       int     `json:"producers"`
	ProduceBatch    int     `json:"produce_batch_records"`

	ConsumeSeconds  float64 `json:"consume_seconds"`
	ConsumeMsgsPerS float64 `json:"consume_msgs_per_second"`

	InsertSeconds  float64 `json:"insert_seconds"` // the Insert calls only
	InsertMsgsPerS float64 `json:"insert_msgs_per_second"`
	InsertBatches  int     `json:"insert_batches"`
	InsertRows     int64   `json:"insert_rows"` // rows of every table (raw log, current state, clients, …)
	// StoredMessages is count() of the scratch state_messages after the inserts, read before
	// the database is dropped: equal to Messages unless the records repeat a (client, serial)
	// and a merge already collapsed it.
	StoredMessages int64 `json:"stored_messages"`

	// Leftovers names scratch objects that could not be removed (with why); empty when the
	// topic and the database are gone.
	Leftovers []string `json:"leftovers,omitempty"`
}

// MeasureCeilings produces Values to a scratch topic, consumes them back and inserts their
// folded rows into a scratch database, timing each, then removes the topic and the database.
// It needs the rights the site has: create and delete topics, create and drop databases.
func MeasureCeilings(ctx context.Context, cfg CeilingsConfig) (*Ceilings, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	c := &Ceilings{
		Records:   len(cfg.Values),
		Producers: cfg.Producers, ProduceBatch: cfg.ProduceBatch,
		Partitions: cfg.Kafka.Partitions,
	}
	// Count the messages, and refuse records the projector would dead-letter: their rows
	// would not be the run's rows. One Report is reused; nothing is kept.
	var r schema.Report
	for i, v := range cfg.Values {
		if err := schema.DecodeReport(v, &r); err != nil {
			return nil, fmt.Errorf("cannot decode record %d (%d bytes): %w", i, len(v), err)
		}
		if err := r.Validate(schema.Limits{}); err != nil {
			return nil, fmt.Errorf("cannot use record %d (client %q): %w", i, r.Client, err)
		}
		c.Messages += int64(len(r.Messages))
		c.Bytes += int64(len(v))
	}

	now := time.Now().UnixNano()
	c.Topic = "statepipe-ceiling-" + strconv.FormatInt(now, 10)
	c.Database = "ceiling_" + strconv.FormatInt(now, 10)
	// Cleanup runs even when ctx is cancelled, with a bound of its own.
	cleanupCtx := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	}

	if err := kafka.EnsureTopic(ctx, cfg.Kafka, c.Topic); err != nil {
		return nil, err
	}
	w := kafka.NewWriter(cfg.Kafka, c.Topic)
	// An admin client on the writer's transport, which carries the site's SASL and TLS
	// (internal/kafka exposes no admin client of its own).
	admin := &kafkago.Client{Addr: w.Addr, Timeout: 30 * time.Second, Transport: w.Transport}
	topicGone := false
	deleteTopic := func() {
		if topicGone {
			return
		}
		topicGone = true
		dctx, cancel := cleanupCtx()
		defer cancel()
		if err := deleteScratchTopic(dctx, admin, c.Topic); err != nil {
			c.Leftovers = append(c.Leftovers, "topic "+c.Topic+": "+err.Error())
		}
	}
	defer func() {
		_ = w.Close()
		deleteTopic()
		if t, ok := w.Transport.(*kafkago.Transport); ok {
			t.CloseIdleConnections()
		}
	}()

	// Produce.
	secs, err := produceCeiling(ctx, w, cfg)
	if err != nil {
		return nil, err
	}
	c.ProduceSeconds, c.ProduceMsgsPerS = secs, rate(c.Messages, secs)
	progressf(cfg.Progress, "ceilings: produce %d records (%d messages) in %.2f s: %.0f messages/s",
		c.Records, c.Messages, secs, c.ProduceMsgsPerS)

	// Consume.
	ends, err := partitionRanges(ctx, admin, c.Topic, cfg.Kafka.Partitions)
	if err != nil {
		return nil, err
	}
	var held int64
	for _, e := range ends {
		held += e.last - e.first
	}
	if held != int64(c.Records) {
		return nil, fmt.Errorf("cannot measure the consume ceiling (topic %s): it holds %d records, %d were produced", c.Topic, held, c.Records)
	}
	secs, err = consumeCeiling(ctx, cfg.Kafka, c.Topic, ends, c.Records, c.Bytes)
	if err != nil {
		return nil, err
	}
	c.ConsumeSeconds, c.ConsumeMsgsPerS = secs, rate(c.Messages, secs)
	progressf(cfg.Progress, "ceilings: consume %d records in %.2f s: %.0f messages/s", c.Records, secs, c.ConsumeMsgsPerS)
	// The records are no longer needed: let the broker free them (the embedded one keeps
	// them in this process's memory) before the insert.
	deleteTopic()

	// Insert.
	if _, err := schema.Migrate(ctx, cfg.Store, c.Database); err != nil {
		return nil, fmt.Errorf("cannot create scratch database %s: %w", c.Database, err)
	}
	defer func() {
		dctx, cancel := cleanupCtx()
		defer cancel()
		if err := cfg.Store.Exec(dctx, "DROP DATABASE IF EXISTS "+c.Database); err != nil {
			c.Leftovers = append(c.Leftovers, "database "+c.Database+": "+err.Error())
		}
	}()
	if err := insertCeiling(ctx, cfg, c); err != nil {
		return nil, err
	}
	c.InsertMsgsPerS = rate(c.Messages, c.InsertSeconds)
	res, err := cfg.Store.Query(ctx, "SELECT count() FROM "+c.Database+".state_messages")
	if err != nil {
		return nil, fmt.Errorf("cannot count the rows of %s.state_messages: %w", c.Database, err)
	}
	if len(res.Rows) == 1 && len(res.Rows[0]) == 1 {
		c.StoredMessages = int64(schema.ToUint64(res.Rows[0][0]))
	}
	progressf(cfg.Progress, "ceilings: insert %d rows (%d messages, %d batches) in %.2f s: %.0f messages/s",
		c.InsertRows, c.Messages, c.InsertBatches, c.InsertSeconds, c.InsertMsgsPerS)
	return c, nil
}

// defaults fills zero fields and checks what cannot work.
func (cfg *CeilingsConfig) defaults() error {
	switch {
	case len(cfg.Values) == 0:
		return errors.New("cannot measure ceilings: no records")
	case len(cfg.Keys) != len(cfg.Values):
		return fmt.Errorf("cannot measure ceilings (%d values, %d keys): every record needs its key", len(cfg.Values), len(cfg.Keys))
	case cfg.Store == nil:
		return errors.New("cannot measure ceilings: no store")
	}
	d := kafka.Defaults()
	k := &cfg.Kafka
	if k.Partitions == 0 {
		k.Partitions = d.Partitions
	}
	if k.ReplicationFactor == 0 {
		k.ReplicationFactor = d.ReplicationFactor
	}
	if k.BatchTimeout == 0 {
		k.BatchTimeout = d.BatchTimeout // kafka-go's own zero value is a 1 s linger
	}
	if k.BatchBytes == 0 {
		k.BatchBytes = d.BatchBytes
	}
	if k.FetchMaxWait == 0 {
		k.FetchMaxWait = d.FetchMaxWait
	}
	if err := k.Validate(); err != nil {
		return fmt.Errorf("cannot measure ceilings: %w", err)
	}
	if cfg.Producers <= 0 {
		cfg.Producers = 4
	}
	if cfg.ProduceBatch <= 0 {
		cfg.ProduceBatch = 1000
	}
	if cfg.InsertBatch <= 0 {
		cfg.InsertBatch = 200000
	}
	if cfg.PrebuildMessages <= 0 {
		cfg.PrebuildMessages = 2000000
	}
	cfg.PrebuildMessages = max(cfg.PrebuildMessages, cfg.InsertBatch)
	return nil
}

// produceCeiling writes every record, ProduceBatch to a WriteMessages call from Producers
// goroutines, and returns the seconds from the first call to the last acknowledgement. The
// records carry what ingest's carry: key, value, the format-version header and a timestamp
// set when the batch is handed over.
func produceCeiling(ctx context.Context, w *kafkago.Writer, cfg CeilingsConfig) (float64, error) {
	header := []kafkago.Header{{Key: "v", Value: []byte(strconv.Itoa(schema.Version))}}
	msgs := make([]kafkago.Message, len(cfg.Values))
	for i := range msgs {
		msgs[i] = kafkago.Message{Key: cfg.Keys[i], Value: cfg.Values[i], Headers: header}
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	chunks := (len(msgs) + cfg.ProduceBatch - 1) / cfg.ProduceBatch
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range min(cfg.Producers, chunks) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= chunks || ctx.Err() != nil {
					return
				}
				lo, hi := i*cfg.ProduceBatch, min((i+1)*cfg.ProduceBatch, len(msgs))
				at := time.Now()
				for j := lo; j < hi; j++ {
					msgs[j].Time = at
				}
				if err := w.WriteMessages(ctx, msgs[lo:hi]...); err != nil {
					cancel(fmt.Errorf("cannot produce records %d–%d to %s: %w", lo, hi-1, w.Topic, err))
					return
				}
			}
		})
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	if err := context.Cause(ctx); err != nil {
		return 0, err
	}
	return secs, nil
}

// offsetRange is a partition's first and next-to-write offset.
type offsetRange struct {
	partition   int
	first, last int64
}

// partitionRanges returns the offset range of every partition of topic.
func partitionRanges(ctx context.Context, cl *kafkago.Client, topic string, partitions int) ([]offsetRange, error) {
	reqs := make([]kafkago.OffsetRequest, 0, 2*partitions)
	for p := range partitions {
		reqs = append(reqs, kafkago.FirstOffsetOf(p), kafkago.LastOffsetOf(p))
	}
	resp, err := cl.ListOffsets(ctx, &kafkago.ListOffsetsRequest{Topics: map[string][]kafkago.OffsetRequest{topic: reqs}})
	if err != nil {
		return nil, fmt.Errorf("cannot read the offsets of %s: %w", topic, err)
	}
	var out []offsetRange
	for _, po := range resp.Topics[topic] {
		if po.Error != nil {
			return nil, fmt.Errorf("cannot read the offsets of %s/%d: %w", topic, po.Partition, po.Error)
		}
		out = append(out, offsetRange{po.Partition, po.FirstOffset, po.LastOffset})
	}
	if len(out) != partitions {
		return nil, fmt.Errorf("cannot read the offsets of %s: %d of %d partitions answered", topic, len(out), partitions)
	}
	return out, nil
}

// consumeStall is how long the consume phase waits without a single record before it gives up.
const consumeStall = 30 * time.Second

// consumeCeiling reads every record of topic, a reader per partition outside any consumer
// group (a group's join would be timed too and is the projector's cost, not kafka-go's), with
// the fetch sizes of the projector's group reader (kafka.GroupConsumer: 32 MiB fetches, a
// queue of 1,000), and returns the seconds until the last record was in hand. It checks that
// the records and bytes read are those produced; it decodes nothing.
func consumeCeiling(ctx context.Context, kc kafka.Config, topic string, ends []offsetRange, records int, bytes int64) (float64, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var readers []*kafkago.Reader
	defer func() {
		for _, r := range readers {
			_ = r.Close()
		}
	}()
	var ranges []offsetRange
	for _, e := range ends {
		if e.last <= e.first {
			continue
		}
		// NewPartitionReader carries the site's dialer (SASL, TLS); its 1 MiB fetches are
		// for small compacted topics, so take its config with the state topic's sizes.
		tmpl := kafka.NewPartitionReader(kc, topic, e.partition)
		rc := tmpl.Config()
		_ = tmpl.Close()
		rc.MaxBytes = 32 << 20
		rc.QueueCapacity = 1000
		readers = append(readers, kafkago.NewReader(rc))
		ranges = append(ranges, e)
	}
	var n, nbytes atomic.Int64
	stop := make(chan struct{})
	defer close(stop)
	go func() { // a stalled partition fails the run instead of hanging it
		t := time.NewTicker(time.Second)
		defer t.Stop()
		seen, since := int64(-1), time.Now()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			if cur := n.Load(); cur != seen {
				seen, since = cur, time.Now()
			} else if time.Since(since) > consumeStall {
				cancel(fmt.Errorf("cannot consume %s: no record for %s after %d of %d", topic, consumeStall, cur, records))
				return
			}
		}
	}()
	var wg sync.WaitGroup
	start := time.Now()
	for i, r := range readers {
		e := ranges[i]
		wg.Go(func() {
			for {
				m, err := r.ReadMessage(ctx)
				if err != nil {
					cancel(fmt.Errorf("cannot consume %s/%d: %w", topic, e.partition, err))
					return
				}
				n.Add(1)
				nbytes.Add(int64(len(m.Value)))
				if m.Offset >= e.last-1 {
					return
				}
			}
		})
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	if err := context.Cause(ctx); err != nil {
		return 0, err
	}
	if n.Load() != int64(records) || nbytes.Load() != bytes {
		return 0, fmt.Errorf("cannot consume %s: read %d records of %d bytes, produced %d of %d", topic, n.Load(), nbytes.Load(), records, bytes)
	}
	return secs, nil
}

// insertCeiling folds the records into rows as the projector would and times the inserts.
// Each record gets the partition kafka-go's murmur2 balancer gives its key and the next
// offset of that partition in Values order (the produced offsets differ only in interleaving,
// which changes no row's size), and one acceptance time. Rows are built in rounds of up to
// PrebuildMessages messages, all of a round before its inserts start; only the Insert calls
// are timed. The projector writes each batch's tables in Tables() order, and so does this.
// Not measured here: the projector's aggregate cells (package index), which are its own work
// on top of these rows.
func insertCeiling(ctx context.Context, cfg CeilingsConfig, c *Ceilings) error {
	var bal kafkago.Murmur2Balancer
	parts := make([]int, cfg.Kafka.Partitions) // kafka-go balances over 0..n-1
	for i := range parts {
		parts[i] = i
	}
	next := make([]int64, len(parts))
	acceptedAt := time.Now().UnixMilli()
	var elapsed time.Duration
	for i := 0; i < len(cfg.Values); {
		var round [][]schema.Rows
		b := fold.NewBatch(c.Database)
		for built := 0; i < len(cfg.Values) && built < cfg.PrebuildMessages; i++ {
			r := new(schema.Report)
			if err := schema.DecodeReport(cfg.Values[i], r); err != nil {
				return fmt.Errorf("cannot decode record %d: %w", i, err)
			}
			p := bal.Balance(kafkago.Message{Key: cfg.Keys[i]}, parts...)
			b.Add(fold.Record{Partition: p, Offset: next[p], AcceptedAt: acceptedAt, Report: r})
			b.Processed(p, next[p])
			next[p]++
			built += len(r.Messages)
			if b.Size() >= cfg.InsertBatch {
				round = append(round, b.Tables())
				b = fold.NewBatch(c.Database)
			}
		}
		if b.Size() > 0 {
			round = append(round, b.Tables())
		}
		start := time.Now()
		for _, tables := range round {
			for _, rows := range tables {
				if err := cfg.Store.Insert(ctx, rows); err != nil {
					return fmt.Errorf("cannot insert the ceiling's rows (%d into %s): %w", rows.Len(), rows.Table(), err)
				}
				c.InsertRows += int64(rows.Len())
			}
		}
		elapsed += time.Since(start)
		c.InsertBatches += len(round)
	}
	c.InsertSeconds = elapsed.Seconds()
	return nil
}

// deleteScratchTopic deletes topic. internal/kafka has no delete helper (statepipe never
// deletes a site's topics), so this uses kafka-go's admin client directly.
func deleteScratchTopic(ctx context.Context, cl *kafkago.Client, topic string) error {
	resp, err := cl.DeleteTopics(ctx, &kafkago.DeleteTopicsRequest{Topics: []string{topic}})
	if err != nil {
		return fmt.Errorf("cannot delete topic %s: %w", topic, err)
	}
	if err := resp.Errors[topic]; err != nil && !errors.Is(err, kafkago.UnknownTopicOrPartition) {
		return fmt.Errorf("cannot delete topic %s: %w", topic, err)
	}
	return nil
}

func rate(n int64, secs float64) float64 {
	if secs <= 0 {
		return 0
	}
	return float64(n) / secs
}

func progressf(w io.Writer, format string, args ...any) {
	if w != nil {
		fmt.Fprintf(w, format+"\n", args...)
	}
}
