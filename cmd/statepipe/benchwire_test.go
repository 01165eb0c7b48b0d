package main

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/statepipe/statepipe/bench"
	"github.com/statepipe/statepipe/internal/kafka"
	"github.com/statepipe/statepipe/schema"
)

// TestBenchCeilings measures the raw ceilings through the wiring `bench run` uses: the bare
// Kafka client on a broker, and this process's chDB store.
func TestBenchCeilings(t *testing.T) {
	requireChdb(t)
	broker, err := kafka.StartEmbedded(kafka.EmbeddedConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer broker.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	deps, err := benchCeilings(chdbDir)(ctx, broker.Addrs())
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := deps.Close(); err != nil {
			t.Error(err)
		}
	}()

	// 400 clients' full reports of 60 update-compliance states each.
	var values, keys [][]byte
	for c := range 400 {
		r := schema.Report{V: schema.Version, Client: fmt.Sprintf("client-%04d", c), Site: "P01",
			FullTypes: []schema.TopicType{schema.TopicUpdateCompliance}}
		for u := range 60 {
			r.Messages = append(r.Messages, schema.StateMessage{Serial: uint64(u + 1), Time: 1767225600000 + int64(u),
				TopicType: schema.TopicUpdateCompliance, TopicID: fmt.Sprintf("upd-%03d", (c+u)%150), State: int32((c * u) % 4)})
		}
		var b bytes.Buffer
		if err := schema.EncodeReport(&b, &r); err != nil {
			t.Fatal(err)
		}
		values, keys = append(values, b.Bytes()), append(keys, []byte(r.Client))
	}
	c, err := bench.MeasureCeilings(ctx, bench.CeilingsConfig{Kafka: deps.Kafka, Store: deps.Store, Values: values, Keys: keys, InsertBatch: 10000})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", *c)
	if c.Records != 400 || c.Messages != 24000 || c.StoredMessages != 24000 || c.Partitions != kafka.DefaultConfig().Partitions {
		t.Errorf("records %d, messages %d, stored %d, partitions %d; want 400, 24000, 24000, %d",
			c.Records, c.Messages, c.StoredMessages, c.Partitions, kafka.DefaultConfig().Partitions)
	}
	if c.InsertBatches != 3 { // 24,000 messages in batches flushed at ≥ 10,000
		t.Errorf("insert batches = %d, want 3", c.InsertBatches)
	}
	if c.ProduceMsgsPerS <= 0 || c.ConsumeMsgsPerS <= 0 || c.InsertMsgsPerS <= 0 {
		t.Errorf("rates must be positive: produce %v, consume %v, insert %v", c.ProduceMsgsPerS, c.ConsumeMsgsPerS, c.InsertMsgsPerS)
	}
	if len(c.Leftovers) > 0 {
		t.Errorf("leftovers: %v", c.Leftovers)
	}
	res, err := deps.Store.Query(ctx, "SELECT count() FROM system.databases WHERE name = '"+c.Database+"'")
	if err != nil {
		t.Fatal(err)
	}
	if n := schema.ToUint64(res.Rows[0][0]); n != 0 {
		t.Errorf("scratch database %s still exists", c.Database)
	}
}
