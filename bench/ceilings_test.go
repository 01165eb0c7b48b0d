package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/statepipe/statepipe/internal/chdb"
	"github.com/statepipe/statepipe/internal/kafka"
	"github.com/statepipe/statepipe/schema"
)

// ceilingRecords returns reports × msgs update-compliance messages as ingest would produce
// them: clients send ten reports each (the first full), serials increasing per client.
func ceilingRecords(tb testing.TB, reports, msgs int) (values, keys [][]byte) {
	tb.Helper()
	const perClient = 10
	for i := range reports {
		client := fmt.Sprintf("client-%05d", i/perClient)
		n := i % perClient
		r := schema.Report{V: schema.Version, Client: client, Site: "P01"}
		if n == 0 {
			r.FullTypes = []schema.TopicType{500}
		}
		for j := range msgs {
			r.Messages = append(r.Messages, schema.StateMessage{
				Serial:    uint64(n*msgs + j + 1),
				Time:      1767225600000 + int64(n*msgs+j),
				TopicType: 500,
				TopicID:   fmt.Sprintf("upd-%05d", (n*7+j)%300),
				State:     int32((i + j) % 4), // 0 unknown … 3 installed
			})
		}
		if err := r.Validate(schema.Limits{}); err != nil {
			tb.Fatalf("generated report %d is invalid: %v", i, err)
		}
		var buf bytes.Buffer
		if err := schema.EncodeReport(&buf, &r); err != nil {
			tb.Fatal(err)
		}
		values = append(values, buf.Bytes())
		keys = append(keys, []byte(client))
	}
	return values, keys
}

// openCeilingStore opens the process's chDB session (one per process: no other test of this
// package opens one). Without the library the test is skipped, unless
// STATEPIPE_REQUIRE_CHDB is set.
func openCeilingStore(t *testing.T) *chdb.Store {
	t.Helper()
	st, err := chdb.New(chdb.Config{Path: t.TempDir()})
	if errors.Is(err, chdb.ErrLibraryNotFound) {
		if os.Getenv("STATEPIPE_REQUIRE_CHDB") != "" {
			t.Fatalf("STATEPIPE_REQUIRE_CHDB is set: %v", err)
		}
		t.Skipf("chDB not available: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func TestMeasureCeilings(t *testing.T) {
	st := openCeilingStore(t)
	broker, err := kafka.StartEmbedded(kafka.EmbeddedConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer broker.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	kc := kafka.Defaults()
	kc.Brokers = broker.Addrs()
	if err := kafka.EnsureTopic(ctx, kc, "ceiling-control"); err != nil {
		t.Fatal(err)
	}
	if !topicExists(t, kc, "ceiling-control") {
		t.Fatal("topicExists does not see a topic that exists")
	}

	const reports, msgs = 2000, 50
	values, keys := ceilingRecords(t, reports, msgs)
	var progress strings.Builder
	c, err := MeasureCeilings(ctx, CeilingsConfig{
		Kafka: kc, Values: values, Keys: keys, Store: st,
		InsertBatch: 30000, // several insert batches, as a full-size run has
		Progress:    &progress,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s%+v", progress.String(), *c)

	if c.Records != reports || c.Messages != reports*msgs {
		t.Errorf("records %d, messages %d; want %d, %d", c.Records, c.Messages, reports, reports*msgs)
	}
	if c.StoredMessages != reports*msgs {
		t.Errorf("scratch state_messages held %d rows before the drop, want %d", c.StoredMessages, reports*msgs)
	}
	if c.InsertBatches != 4 { // 100,000 messages in batches flushed at ≥ 30,000
		t.Errorf("insert batches = %d, want 4", c.InsertBatches)
	}
	if c.ProduceMsgsPerS <= 0 || c.ConsumeMsgsPerS <= 0 || c.InsertMsgsPerS <= 0 {
		t.Errorf("rates must be positive: produce %v, consume %v, insert %v", c.ProduceMsgsPerS, c.ConsumeMsgsPerS, c.InsertMsgsPerS)
	}
	if len(c.Leftovers) > 0 {
		t.Errorf("leftovers: %v", c.Leftovers)
	}
	res, err := st.Query(ctx, "SELECT count() FROM system.databases WHERE name = '"+c.Database+"'")
	if err != nil {
		t.Fatal(err)
	}
	if n := schema.ToUint64(res.Rows[0][0]); n != 0 {
		t.Errorf("scratch database %s still exists", c.Database)
	}
	if topicExists(t, kc, c.Topic) {
		t.Errorf("scratch topic %s still exists", c.Topic)
	}
}

func TestMeasureCeilingsRefusesBadInput(t *testing.T) {
	values, keys := ceilingRecords(t, 3, 2)
	kc := kafka.Defaults()
	kc.Brokers = []string{"127.0.0.1:1"} // never reached
	for name, cfg := range map[string]CeilingsConfig{
		"no records":   {Kafka: kc, Store: nilStore{}},
		"keys missing": {Kafka: kc, Values: values, Keys: keys[:2], Store: nilStore{}},
		"no store":     {Kafka: kc, Values: values, Keys: keys},
		"not a report": {Kafka: kc, Values: [][]byte{{0xc1}}, Keys: keys[:1], Store: nilStore{}},
	} {
		if _, err := MeasureCeilings(context.Background(), cfg); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// nilStore is a store that must never be reached.
type nilStore struct{ schema.Store }

// topicExists reports whether the broker lists topic.
func topicExists(t *testing.T, kc kafka.Config, topic string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The test's broker has no security, so a plain client (no transport of the config's) will do.
	admin := &kafkago.Client{Addr: kafkago.TCP(kc.Brokers...), Transport: &kafkago.Transport{}}
	defer admin.Transport.(*kafkago.Transport).CloseIdleConnections()
	md, err := admin.Metadata(ctx, &kafkago.MetadataRequest{}) // every topic
	if err != nil {
		t.Fatal(err)
	}
	for _, tp := range md.Topics {
		if tp.Name == topic {
			return true
		}
	}
	return false
}
