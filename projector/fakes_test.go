package projector

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/statepipe/statepipe/schema"
)

// In-memory stand-ins for the projector's collaborators: a consumer group that hands out the
// generations a test prepared, a store that keeps (or refuses) what is inserted, producers
// that keep what is produced. They log every call to a shared journal, so a test can check the
// order of inserts and commits.

// journal records the calls of the fakes in order.
type journal struct {
	mu      sync.Mutex
	entries []string
}

func (j *journal) add(format string, args ...any) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.entries = append(j.entries, fmt.Sprintf(format, args...))
}

func (j *journal) all() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]string(nil), j.entries...)
}

// fakeConsumer hands out gens one after another; once they are used up, Next blocks until
// ctx ends. fail makes that many calls fail first.
type fakeConsumer struct {
	mu   sync.Mutex
	gens []*fakeGeneration
	fail int
	next int
}

func (c *fakeConsumer) Next(ctx context.Context) (Generation, error) {
	c.mu.Lock()
	if c.fail > 0 {
		c.fail--
		c.mu.Unlock()
		return nil, errors.New("coordinator not available")
	}
	if c.next < len(c.gens) {
		g := c.gens[c.next]
		c.next++
		c.mu.Unlock()
		return g, nil
	}
	c.mu.Unlock()
	<-ctx.Done()
	return nil, ctx.Err()
}

// fakeGeneration serves the records put into it, in order, until it is ended.
type fakeGeneration struct {
	id         int32
	partitions []int
	j          *journal
	recs       chan Record
	ended      chan struct{}
	endOnce    sync.Once
	released   chan struct{}
	relOnce    sync.Once

	mu          sync.Mutex
	committed   []Record // every record of every successful commit
	fetchErrs   int      // fetches to fail first
	commitErrs  int      // commits to fail first
	alive       error    // what Alive answers
	fetchesDone int
}

func newGeneration(id int32, j *journal, partitions ...int) *fakeGeneration {
	return &fakeGeneration{id: id, partitions: partitions, j: j, recs: make(chan Record, 1000),
		ended: make(chan struct{}), released: make(chan struct{})}
}

func (g *fakeGeneration) ID() int32               { return g.id }
func (g *fakeGeneration) Member() string          { return "member-1" }
func (g *fakeGeneration) Partitions(string) []int { return g.partitions }

func (g *fakeGeneration) Fetch(ctx context.Context) (Record, error) {
	g.mu.Lock()
	if g.fetchErrs > 0 {
		g.fetchErrs--
		g.mu.Unlock()
		return Record{}, errors.New("broker connection reset")
	}
	g.mu.Unlock()
	select {
	case <-g.ended:
		return Record{}, fmt.Errorf("generation %d: %w", g.id, ErrGenerationEnded)
	default:
	}
	select {
	case r := <-g.recs:
		g.mu.Lock()
		g.fetchesDone++
		g.mu.Unlock()
		return r, nil
	case <-g.ended:
		return Record{}, fmt.Errorf("generation %d: %w", g.id, ErrGenerationEnded)
	case <-ctx.Done():
		return Record{}, ctx.Err()
	}
}

func (g *fakeGeneration) Commit(_ context.Context, recs ...Record) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.commitErrs > 0 {
		g.commitErrs--
		g.j.add("commit failed")
		return errors.New("not the coordinator")
	}
	g.committed = append(g.committed, recs...)
	g.j.add("commit %d", len(recs))
	return nil
}

func (g *fakeGeneration) Alive(context.Context) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.alive
}

func (g *fakeGeneration) Release() { g.relOnce.Do(func() { close(g.released) }) }

func (g *fakeGeneration) end() { g.endOnce.Do(func() { close(g.ended) }) }

// offsets returns the committed offsets, in order.
func (g *fakeGeneration) offsets() []int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []int64
	for _, r := range g.committed {
		out = append(out, r.Offset)
	}
	return out
}

// fakeStore keeps the tables inserted into; the first fail inserts fail.
type fakeStore struct {
	j    *journal
	mu   sync.Mutex
	fail int
	rows map[string]int // rows inserted, by table
}

func (s *fakeStore) Insert(_ context.Context, rows schema.Rows) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail > 0 {
		s.fail--
		s.j.add("insert failed")
		return errors.New("store unavailable")
	}
	if s.rows == nil {
		s.rows = map[string]int{}
	}
	s.rows[rows.Table()] += rows.Len()
	s.j.add("insert %s", rows.Table())
	return nil
}

func (s *fakeStore) count(table string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rows[table]
}

// fakeProducer keeps what is produced; the first fail produces fail.
type fakeProducer struct {
	name string
	j    *journal
	mu   sync.Mutex
	fail int
	recs []Record
}

func (p *fakeProducer) Produce(_ context.Context, recs ...Record) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fail > 0 {
		p.fail--
		return errors.New("broker unavailable")
	}
	p.recs = append(p.recs, recs...)
	if p.j != nil {
		p.j.add("produce %s %d", p.name, len(recs))
	}
	return nil
}

func (p *fakeProducer) produced() []Record {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Record(nil), p.recs...)
}

// reportRecord is a record of the state topic holding a report of client with one message
// per serial.
func reportRecord(t testing.TB, topic string, partition int, offset int64, client string, full bool, serials ...uint64) Record {
	t.Helper()
	r := &schema.Report{V: 1, Client: client, Site: "P01"}
	if full {
		r.FullTypes = []schema.TopicType{schema.TopicUpdateCompliance}
	}
	for _, s := range serials {
		r.Messages = append(r.Messages, schema.StateMessage{Serial: s, Time: 1764100000000, TopicType: schema.TopicUpdateCompliance,
			TopicID: fmt.Sprintf("KB%d", s), State: 3})
	}
	var b bytes.Buffer
	if err := schema.EncodeReport(&b, r); err != nil {
		t.Fatal(err)
	}
	return Record{Topic: topic, Partition: partition, Offset: offset, Key: []byte(client), Value: b.Bytes(), Time: time.Now()}
}

// counterValue reads a counter.
func counterValue(t testing.TB, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// wantCount checks that counter name (c) counts want.
func wantCount(t testing.TB, name string, c prometheus.Counter, want float64) {
	t.Helper()
	if got := counterValue(t, c); got != want {
		t.Errorf("%s %v, want %v", name, got, want)
	}
}

// gaugeValue reads a gauge.
func gaugeValue(t testing.TB, g prometheus.Gauge) float64 {
	t.Helper()
	var m dto.Metric
	if err := g.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetGauge().GetValue()
}

// quiet is a logger for tests that expect warnings.
func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// eventually polls cond until it returns "" or 10 s passed.
func eventually(t *testing.T, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		msg := cond()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(msg)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
