package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/statepipe/statepipe/projector/fold"
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

// fakeKafka is a RawKafka in memory: a topic is its records' values.
type fakeKafka struct {
	partitions int
	lose       int   // records Consume does not get back
	deleteErr  error // what DeleteTopic answers

	mu      sync.Mutex
	topics  map[string][][]byte
	deleted []string
}

func newFakeKafka() *fakeKafka { return &fakeKafka{partitions: 8, topics: map[string][][]byte{}} }

func (k *fakeKafka) CreateTopic(_ context.Context, topic string) (int, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.topics[topic] = nil
	return k.partitions, nil
}

func (k *fakeKafka) DeleteTopic(_ context.Context, topic string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.deleted = append(k.deleted, topic)
	if k.deleteErr != nil {
		return k.deleteErr
	}
	delete(k.topics, topic)
	return nil
}

func (k *fakeKafka) Produce(_ context.Context, topic string, keys, values [][]byte, producers, batch int) (time.Duration, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if producers < 1 || batch < 1 || len(keys) != len(values) {
		return 0, fmt.Errorf("produce: %d producers, batches of %d, %d keys for %d values", producers, batch, len(keys), len(values))
	}
	k.topics[topic] = append(k.topics[topic], values...)
	return time.Millisecond, nil
}

func (k *fakeKafka) Consume(_ context.Context, topic string) (time.Duration, int64, int64, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	vs := k.topics[topic]
	vs = vs[:len(vs)-k.lose]
	var n int64
	for _, v := range vs {
		n += int64(len(v))
	}
	return time.Millisecond, int64(len(vs)), n, nil
}

func (k *fakeKafka) Partition(key []byte) int {
	return int(crc32.ChecksumIEEE(key) % uint32(k.partitions))
}

// fakeStore is a ScratchStore in memory: it keeps the statements and counts the rows
// inserted per table, and answers count() of a table from them.
type fakeStore struct {
	mu    sync.Mutex
	execs []string
	rows  map[string]int64
}

func newFakeStore() *fakeStore { return &fakeStore{rows: map[string]int64{}} }

func (s *fakeStore) Exec(_ context.Context, q string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.execs = append(s.execs, q)
	return nil
}

func (s *fakeStore) Query(_ context.Context, q string) (*schema.Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if table, ok := strings.CutPrefix(q, "SELECT count() FROM "); ok {
		return &schema.Result{Rows: [][]any{{s.rows[table]}}}, nil
	}
	if strings.HasPrefix(q, "EXISTS TABLE ") {
		return &schema.Result{Rows: [][]any{{int64(0)}}}, nil
	}
	return &schema.Result{}, nil // no migration applied yet
}

func (s *fakeStore) Insert(_ context.Context, rows schema.Rows) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rows[rows.Table()] += int64(rows.Len())
	if r, ok := rows.(*fold.ReportRows); ok { // what the state_messages view shows of them
		s.rows[strings.TrimSuffix(rows.Table(), "raw_reports")+"state_messages"] += int64(r.Messages())
	}
	return nil
}

func TestMeasureCeilings(t *testing.T) {
	const reports, msgs = 2000, 50
	values, keys := ceilingRecords(t, reports, msgs)
	k, st := newFakeKafka(), newFakeStore()
	var progress strings.Builder
	c, err := MeasureCeilings(context.Background(), CeilingsConfig{
		Kafka: k, Store: st, Values: values, Keys: keys,
		InsertBatch: 30000, // several insert batches, as a full-size run has
		Progress:    &progress,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s%+v", progress.String(), *c)
	if c.Records != reports || c.Messages != reports*msgs || c.Partitions != 8 {
		t.Errorf("records %d, messages %d, partitions %d; want %d, %d, 8", c.Records, c.Messages, c.Partitions, reports, reports*msgs)
	}
	if c.StoredMessages != reports*msgs {
		t.Errorf("scratch state_messages held %d rows before the drop, want %d", c.StoredMessages, reports*msgs)
	}
	if cur := st.rows[c.Database+".current_state"]; cur == 0 || c.MinInsertRows != cur || c.MinInsertMsgsPerS <= 0 || st.rows[c.Database+"_min.current_state"] != cur {
		t.Errorf("the current state alone: %d rows (%d stored), %v msgs/s; want the %d of the full insert", c.MinInsertRows, st.rows[c.Database+"_min.current_state"], c.MinInsertMsgsPerS, cur)
	}
	if c.InsertBatches != 4 { // 100,000 messages in batches flushed at ≥ 30,000
		t.Errorf("insert batches = %d, want 4", c.InsertBatches)
	}
	if c.ProduceMsgsPerS != float64(c.Messages)/0.001 || c.ConsumeMsgsPerS != float64(c.Messages)/0.001 || c.InsertMsgsPerS <= 0 {
		t.Errorf("rates: produce %v, consume %v (want %v each, from the client's 1 ms), insert %v", c.ProduceMsgsPerS, c.ConsumeMsgsPerS, float64(c.Messages)/0.001, c.InsertMsgsPerS)
	}
	if len(c.Leftovers) > 0 {
		t.Errorf("leftovers: %v", c.Leftovers)
	}
	if len(k.deleted) != 1 || k.deleted[0] != c.Topic || len(k.topics) != 0 {
		t.Errorf("topics deleted %v, left %d; want %s deleted once", k.deleted, len(k.topics), c.Topic)
	}
	if last := st.execs[len(st.execs)-1]; last != "DROP DATABASE IF EXISTS "+c.Database {
		t.Errorf("last statement %q, want the scratch database dropped", last)
	}
	for _, stage := range []string{"produce", "consume", "insert"} {
		if !strings.Contains(progress.String(), "ceilings: "+stage) {
			t.Errorf("no progress line for %s in %q", stage, progress.String())
		}
	}
}

func TestMeasureCeilingsKeepsLeftovers(t *testing.T) {
	values, keys := ceilingRecords(t, 20, 5)
	k, st := newFakeKafka(), newFakeStore()
	k.deleteErr = errors.New("not allowed")
	c, err := MeasureCeilings(context.Background(), CeilingsConfig{Kafka: k, Store: st, Values: values, Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Leftovers) != 1 || !strings.Contains(c.Leftovers[0], "topic "+c.Topic+": not allowed") {
		t.Errorf("leftovers %q, want the topic that could not be deleted", c.Leftovers)
	}
	if len(k.deleted) != 1 {
		t.Errorf("delete tried %d times, want once", len(k.deleted))
	}
}

func TestMeasureCeilingsRefusesShortConsume(t *testing.T) {
	values, keys := ceilingRecords(t, 20, 5)
	k := newFakeKafka()
	k.lose = 1
	_, err := MeasureCeilings(context.Background(), CeilingsConfig{Kafka: k, Store: newFakeStore(), Values: values, Keys: keys})
	if err == nil || !strings.Contains(err.Error(), "read 19 records") {
		t.Fatalf("err = %v, want the records missing named", err)
	}
	if len(k.topics) != 0 {
		t.Error("the scratch topic was left behind after a failed consume")
	}
}

func TestMeasureCeilingsRefusesBadInput(t *testing.T) {
	values, keys := ceilingRecords(t, 3, 2)
	k, st := newFakeKafka(), newFakeStore()
	for name, cfg := range map[string]CeilingsConfig{
		"no records":   {Kafka: k, Store: st},
		"keys missing": {Kafka: k, Values: values, Keys: keys[:2], Store: st},
		"no store":     {Kafka: k, Values: values, Keys: keys},
		"no kafka":     {Values: values, Keys: keys, Store: st},
		"not a report": {Kafka: k, Values: [][]byte{{0xc1}}, Keys: keys[:1], Store: st},
	} {
		if _, err := MeasureCeilings(context.Background(), cfg); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if len(k.topics) != 0 || len(st.execs) != 0 {
		t.Errorf("bad input reached Kafka (%d topics) or the store (%d statements)", len(k.topics), len(st.execs))
	}
}
