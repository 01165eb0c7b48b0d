package bench

// Raw ceilings: the harness states each pipeline stage's throughput as a share of what the
// bare tools do with the same data on the same machine in the same run (DESIGN §5: each stage
// ≥ 50 % of its raw ceiling). MeasureCeilings measures three of them:
//
//   - produce: the bare Kafka client (RawKafka; cmd/statepipe wires internal/kafka's kafka-go
//     client with ingest's writer: acks=all, murmur2 by client id, lz4) writing the records
//     ingest produced, from a few goroutines in batches of ProduceBatch records: no HTTP, no
//     decoding, no validation, no signatures;
//   - consume: the same client reading them back, one reader per partition, counting records
//     without decoding them;
//   - insert: the rows the projector's fold makes of the same records, written with the
//     store's Insert (ScratchStore) in batches of the projector's size (200,000 messages), the rows built
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
	"time"

	"github.com/statepipe/statepipe/projector/fold"
	"github.com/statepipe/statepipe/schema"
)

// RawKafka is the bare Kafka client the produce and consume ceilings time, on a throwaway
// topic, with nothing of statepipe around it. cmd/statepipe wires internal/kafka's
// (kafka.RawClient) on the site's brokers and security.
type RawKafka interface {
	// CreateTopic creates topic with a state topic's partitions and returns their count.
	CreateTopic(ctx context.Context, topic string) (partitions int, err error)
	// DeleteTopic removes topic; a topic already gone is not an error.
	DeleteTopic(ctx context.Context, topic string) error
	// Produce writes every value with its key to topic, batch records to a call from
	// producers goroutines at once, and returns the time from the first call to the last
	// acknowledgement.
	Produce(ctx context.Context, topic string, keys, values [][]byte, producers, batch int) (time.Duration, error)
	// Consume reads every record topic holds, outside any consumer group, and returns the
	// time until the last was in hand and how many records and value bytes it read.
	Consume(ctx context.Context, topic string) (took time.Duration, records, bytes int64, err error)
	// Partition is the partition the producer gives key in a topic CreateTopic made.
	Partition(key []byte) int
}

// ScratchStore is what the insert ceiling needs of an engine: statements for the scratch
// database (schema.Migrate's DDL, a count, the drop) and the bulk insert it times. A
// schema.Store is one.
type ScratchStore interface {
	Exec(ctx context.Context, query string) error
	Query(ctx context.Context, query string) (*schema.Result, error)
	Insert(ctx context.Context, rows schema.Rows) error
}

// CeilingsConfig is what the ceilings are measured with: a bare client of the site's Kafka, a
// store, and the records of the run.
type CeilingsConfig struct {
	// Kafka reaches the brokers the site uses; the scratch topic gets a state topic's
	// partitions.
	Kafka RawKafka
	// Values are report records exactly as ingest produces them (canonical msgpack,
	// schema.EncodeReport); Keys their keys (client ids), same length.
	Values [][]byte
	Keys   [][]byte
	// Store is the engine to insert into (a chDB store of the harness's process, or a
	// ClickHouse server). A scratch database is created in it and dropped afterwards.
	Store ScratchStore
	// Producers is how many goroutines produce at once (default 4): enough to keep every
	// partition's batch filling while earlier batches wait for acks=all.
	Producers int
	// ProduceBatch is how many records one produce call carries (default 1,000).
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
	// MinInsert*: the same records' current state alone (one row per key, the table every
	// report reads) inserted into a second scratch database: the least any design must write.
	// The insert ceiling over it is what statepipe's other tables (raw log, markers, clients,
	// scans, offsets) cost.
	MinInsertSeconds  float64 `json:"min_insert_seconds"`
	MinInsertMsgsPerS float64 `json:"min_insert_msgs_per_second"`
	MinInsertRows     int64   `json:"min_insert_rows"`
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
	c := &Ceilings{Records: len(cfg.Values), Producers: cfg.Producers, ProduceBatch: cfg.ProduceBatch}
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
	parts, err := cfg.Kafka.CreateTopic(ctx, c.Topic)
	if err != nil {
		return nil, err
	}
	c.Partitions = parts
	topicGone := false
	deleteTopic := func() {
		if topicGone {
			return
		}
		topicGone = true
		dctx, cancel := cleanupContext(ctx)
		defer cancel()
		if err := cfg.Kafka.DeleteTopic(dctx, c.Topic); err != nil {
			c.Leftovers = append(c.Leftovers, "topic "+c.Topic+": "+err.Error())
		}
	}
	defer deleteTopic()

	if err := produceCeiling(ctx, cfg, c); err != nil {
		return nil, err
	}
	if err := consumeCeiling(ctx, cfg, c); err != nil {
		return nil, err
	}
	// The records are no longer needed: let the broker free them (the embedded one keeps
	// them in the site process's memory) before the insert.
	deleteTopic()

	for _, db := range []string{c.Database, c.Database + "_min"} {
		if _, err := schema.Migrate(ctx, cfg.Store, db); err != nil {
			return nil, fmt.Errorf("cannot create scratch database %s: %w", db, err)
		}
		defer func() {
			dctx, cancel := cleanupContext(ctx)
			defer cancel()
			if err := cfg.Store.Exec(dctx, "DROP DATABASE IF EXISTS "+db); err != nil {
				c.Leftovers = append(c.Leftovers, "database "+db+": "+err.Error())
			}
		}()
	}
	if err := insertCeiling(ctx, cfg, c); err != nil {
		return nil, err
	}
	c.InsertMsgsPerS = rate(c.Messages, c.InsertSeconds)
	c.MinInsertMsgsPerS = rate(c.Messages, c.MinInsertSeconds)
	res, err := cfg.Store.Query(ctx, "SELECT count() FROM "+c.Database+".state_messages")
	if err != nil {
		return nil, fmt.Errorf("cannot count the rows of %s.state_messages: %w", c.Database, err)
	}
	if len(res.Rows) == 1 && len(res.Rows[0]) == 1 {
		c.StoredMessages = int64(schema.ToUint64(res.Rows[0][0]))
	}
	progressf(cfg.Progress, "ceilings: insert %d rows (%d messages, %d batches) in %.2f s: %.0f messages/s; the current state alone (%d rows) %.2f s: %.0f messages/s",
		c.InsertRows, c.Messages, c.InsertBatches, c.InsertSeconds, c.InsertMsgsPerS, c.MinInsertRows, c.MinInsertSeconds, c.MinInsertMsgsPerS)
	return c, nil
}

// cleanupContext bounds a scratch object's removal, which runs even when ctx is cancelled.
func cleanupContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
}

// defaults fills zero fields and checks what cannot work.
func (cfg *CeilingsConfig) defaults() error {
	switch {
	case len(cfg.Values) == 0:
		return errors.New("cannot measure ceilings: no records")
	case len(cfg.Keys) != len(cfg.Values):
		return fmt.Errorf("cannot measure ceilings (%d values, %d keys): every record needs its key", len(cfg.Values), len(cfg.Keys))
	case cfg.Kafka == nil:
		return errors.New("cannot measure ceilings: no Kafka client")
	case cfg.Store == nil:
		return errors.New("cannot measure ceilings: no store")
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

// produceCeiling times writing every record to the scratch topic.
func produceCeiling(ctx context.Context, cfg CeilingsConfig, c *Ceilings) error {
	took, err := cfg.Kafka.Produce(ctx, c.Topic, cfg.Keys, cfg.Values, cfg.Producers, cfg.ProduceBatch)
	if err != nil {
		return err
	}
	c.ProduceSeconds = took.Seconds()
	c.ProduceMsgsPerS = rate(c.Messages, c.ProduceSeconds)
	progressf(cfg.Progress, "ceilings: produce %d records (%d messages) in %.2f s: %.0f messages/s",
		c.Records, c.Messages, c.ProduceSeconds, c.ProduceMsgsPerS)
	return nil
}

// consumeCeiling times reading the scratch topic back, and checks that the records and bytes
// read are those produced.
func consumeCeiling(ctx context.Context, cfg CeilingsConfig, c *Ceilings) error {
	took, n, nbytes, err := cfg.Kafka.Consume(ctx, c.Topic)
	if err != nil {
		return err
	}
	if n != int64(c.Records) || nbytes != c.Bytes {
		return fmt.Errorf("cannot measure the consume ceiling (topic %s): read %d records of %d bytes, %d of %d were produced",
			c.Topic, n, nbytes, c.Records, c.Bytes)
	}
	c.ConsumeSeconds = took.Seconds()
	c.ConsumeMsgsPerS = rate(c.Messages, c.ConsumeSeconds)
	progressf(cfg.Progress, "ceilings: consume %d records in %.2f s: %.0f messages/s", c.Records, c.ConsumeSeconds, c.ConsumeMsgsPerS)
	return nil
}

// insertCeiling folds the records into rows as the projector would and times the inserts.
// Each record gets the partition the producer gives its key (RawKafka.Partition) and the next
// offset of that partition in Values order (the produced offsets differ only in interleaving,
// which changes no row's size), and one acceptance time. Rows are built in rounds of up to
// PrebuildMessages messages, all of a round before its inserts start; only the Insert calls
// are timed. The projector writes each batch's tables in Tables() order, and so does this.
// Then the same batches' current state alone is inserted into the second scratch database,
// timed apart (Ceilings.MinInsert*). Not measured here: the projector's aggregate cells
// (package index), which are its own work on top of these rows.
func insertCeiling(ctx context.Context, cfg CeilingsConfig, c *Ceilings) error {
	next := make([]int64, c.Partitions)
	acceptedAt := time.Now().UnixMilli()
	var elapsed, minElapsed time.Duration
	for i := 0; i < len(cfg.Values); {
		var round []*fold.Batch
		b := fold.NewBatch(c.Database)
		for built := 0; i < len(cfg.Values) && built < cfg.PrebuildMessages; i++ {
			r := new(schema.Report)
			if err := schema.DecodeReport(cfg.Values[i], r); err != nil {
				return fmt.Errorf("cannot decode record %d: %w", i, err)
			}
			p := cfg.Kafka.Partition(cfg.Keys[i])
			b.Add(fold.Record{Partition: p, Offset: next[p], AcceptedAt: acceptedAt, Report: r})
			b.Processed(p, next[p])
			next[p]++
			built += len(r.Messages)
			if b.Size() >= cfg.InsertBatch {
				round = append(round, b)
				b = fold.NewBatch(c.Database)
			}
		}
		if b.Size() > 0 {
			round = append(round, b)
		}
		start := time.Now()
		for _, b := range round {
			for _, rows := range b.Tables() {
				if err := cfg.Store.Insert(ctx, rows); err != nil {
					return fmt.Errorf("cannot insert the ceiling's rows (%d into %s): %w", rows.Len(), rows.Table(), err)
				}
				c.InsertRows += int64(rows.Len())
			}
		}
		elapsed += time.Since(start)
		c.InsertBatches += len(round)
		start = time.Now()
		for _, b := range round {
			rows := fold.CurrentRowsIn(&b.Current, c.Database+"_min")
			if err := cfg.Store.Insert(ctx, rows); err != nil {
				return fmt.Errorf("cannot insert the ceiling's rows (%d into %s): %w", rows.Len(), rows.Table(), err)
			}
			c.MinInsertRows += int64(rows.Len())
		}
		minElapsed += time.Since(start)
	}
	c.MinInsertSeconds = minElapsed.Seconds()
	c.InsertSeconds = elapsed.Seconds()
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
