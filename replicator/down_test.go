package replicator

import (
	"context"
	"crypto/ed25519"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/statepipe/statepipe/schema"
)

// fakeSource hands out its records once each, then waits; it keeps what was committed.
type fakeSource struct {
	mu        sync.Mutex
	recs      []Record
	committed []Record
	commits   int
}

func (s *fakeSource) Fetch(ctx context.Context) (Record, error) {
	for {
		s.mu.Lock()
		if len(s.recs) > 0 {
			r := s.recs[0]
			s.recs = s.recs[1:]
			s.mu.Unlock()
			return r, nil
		}
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return Record{}, ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
}

func (s *fakeSource) Commit(_ context.Context, recs ...Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.commits++
	s.committed = append(s.committed, recs...)
	return nil
}

func (s *fakeSource) committedN() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.committed)
}

// fakeProducer keeps what it was given; it refuses the first fail calls, and notes how many
// records the source had committed at each call.
type fakeProducer struct {
	mu       sync.Mutex
	fail     int
	calls    int
	produced []Record
	src      *fakeSource
	seen     []int // committed records at each call
}

func (p *fakeProducer) Produce(_ context.Context, recs ...Record) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls++
	if p.src != nil {
		p.seen = append(p.seen, p.src.committedN())
	}
	if p.calls <= p.fail {
		return errors.New("broker down")
	}
	p.produced = append(p.produced, recs...)
	return nil
}

func (p *fakeProducer) snapshot() (calls int, produced []Record, seen []int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls, append([]Record(nil), p.produced...), append([]int(nil), p.seen...)
}

func newKey(t testing.TB) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

// refRecord is a record of ref.<topicSite>, vouched with key for topic (nil key: unvouched),
// with extra headers.
func refRecord(offset int64, key, value string, priv ed25519.PrivateKey, topic string, headers ...Header) Record {
	r := Record{Topic: "ref.P01", Offset: offset, Key: []byte(key), Value: []byte(value), Time: time.UnixMilli(1_800_000_000_000 + offset)}
	r.Headers = append(r.Headers, headers...)
	if priv != nil {
		r.Headers = append(r.Headers, Header{Key: schema.HeaderVouch, Value: schema.Vouch(priv, topic, r.Key, r.Value, 0)})
	}
	return r
}

// runDown runs d until the source has committed want records (or fails the test after 10 s),
// then stops it and waits for Run to return.
func runDown(t *testing.T, d *Down, src *fakeSource, want int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for src.committedN() < want && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	if n := src.committedN(); n < want {
		t.Fatalf("committed %d records within 10 s, want %d", n, want)
	}
}

// counter reads a counter of reg with label parent=<parent>; -1 when absent.
func counter(t testing.TB, reg *prometheus.Registry, name, parent string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "parent" && l.GetValue() == parent {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return -1
}

// The parent's vouched records are copied with key, value and time unchanged, owned by the
// parent unless they name an owner further up, and vouched with the child's key for
// ref.<child>; forged, unvouched, moved and altered records are refused and counted; the
// whole batch is committed once the copies are acknowledged.
func TestDownCopiesWhatTheParentVouchedFor(t *testing.T) {
	parentPub, parentKey := newKey(t)
	_, forger := newKey(t)
	childPub, childKey := newKey(t)
	altered := refRecord(5, "catalog/U1", `{"id":"U1"}`, parentKey, "ref.P01")
	altered.Value = []byte(`{"id":"U1","expired":true}`)
	src := &fakeSource{recs: []Record{
		refRecord(0, "collections/local", `{"id":"local"}`, parentKey, "ref.P01"),
		refRecord(1, "collections/all-pcs", `{"id":"all-pcs"}`, parentKey, "ref.P01", Header{Key: schema.HeaderOrigin, Value: []byte("CEN")}),
		refRecord(2, "collections/forged", `{"id":"forged"}`, forger, "ref.P01"),
		refRecord(3, "collections/unvouched", `{"id":"unvouched"}`, nil, ""),
		refRecord(4, "collections/moved", `{"id":"moved"}`, parentKey, "ref.P02"),
		altered,
		{Topic: "ref.P01", Offset: 6, Key: []byte("collections/gone")}, // a tombstone: not copied, not refused
	}}
	dst := &fakeProducer{}
	reg := prometheus.NewRegistry()
	d := NewDown(DownConfig{Site: "S01", Parent: "P01"}, DownParams{Source: src, Child: dst,
		ParentKeys: []ed25519.PublicKey{parentPub}, Key: childKey, Registerer: reg})
	runDown(t, d, src, 7)

	_, got, _ := dst.snapshot()
	want := []struct{ key, owner string }{{"collections/local", "P01"}, {"collections/all-pcs", "CEN"}}
	if len(got) != len(want) {
		t.Fatalf("copied %d records, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		c := got[i]
		orig := src.committed[i]
		if string(c.Key) != w.key || string(c.Value) != string(orig.Value) || !c.Time.Equal(orig.Time) {
			t.Errorf("copy %d: %s %s %v, want %s unchanged (%s %v)", i, c.Key, c.Value, c.Time, w.key, orig.Value, orig.Time)
		}
		if o := schema.HeaderValue(c.Headers, schema.HeaderOrigin); string(o) != w.owner {
			t.Errorf("copy %d (%s): origin %q, want %q", i, c.Key, o, w.owner)
		}
		origins := 0
		for _, h := range c.Headers {
			if h.Key == schema.HeaderOrigin {
				origins++
			}
		}
		if origins != 1 {
			t.Errorf("copy %d (%s): %d origin headers, want 1", i, c.Key, origins)
		}
		v := schema.HeaderValue(c.Headers, schema.HeaderVouch)
		if err := schema.VerifyVouch([]ed25519.PublicKey{childPub}, "ref.S01", c.Key, c.Value, v, 0); err != nil {
			t.Errorf("copy %d (%s): the child's projector would refuse it: %v", i, c.Key, err)
		}
		if err := schema.VerifyVouch([]ed25519.PublicKey{parentPub}, "ref.P01", c.Key, c.Value, v, 0); err == nil {
			t.Errorf("copy %d (%s) still carries the parent's vouch", i, c.Key)
		}
	}
	if n := counter(t, reg, "statepipe_replicator_refdown_rejected_total", "P01"); n != 4 {
		t.Errorf("rejected_total %v, want 4 (forged, unvouched, moved, altered)", n)
	}
	if n := counter(t, reg, "statepipe_replicator_refdown_records_total", "P01"); n != 2 {
		t.Errorf("records_total %v, want 2", n)
	}
}

// A parent with auth off: its records are copied unchecked; a child with auth off vouches for
// none.
func TestDownAuthOff(t *testing.T) {
	_, someKey := newKey(t)
	src := &fakeSource{recs: []Record{
		refRecord(0, "catalog/U1", `{"id":"U1"}`, nil, ""),
		refRecord(1, "catalog/U2", `{"id":"U2"}`, someKey, "ref.P01"),
	}}
	dst := &fakeProducer{}
	runDown(t, NewDown(DownConfig{Site: "S01", Parent: "P01"}, DownParams{Source: src, Child: dst}), src, 2)
	_, got, _ := dst.snapshot()
	if len(got) != 2 {
		t.Fatalf("copied %d records, want 2", len(got))
	}
	for _, c := range got {
		if v := schema.HeaderValue(c.Headers, schema.HeaderVouch); v != nil {
			t.Errorf("%s: vouch %q without a site key", c.Key, v)
		}
		if o := schema.HeaderValue(c.Headers, schema.HeaderOrigin); string(o) != "P01" {
			t.Errorf("%s: origin %q, want P01", c.Key, o)
		}
	}
}

// Nothing is committed before the child's broker acknowledged the copies: a refused produce
// leaves the batch uncommitted and is tried again (after a second).
func TestDownCommitsOnlyAfterProduce(t *testing.T) {
	parentPub, parentKey := newKey(t)
	src := &fakeSource{recs: []Record{refRecord(0, "lists/L1", `{"id":"L1"}`, parentKey, "ref.P01")}}
	dst := &fakeProducer{fail: 2, src: src}
	start := time.Now()
	runDown(t, NewDown(DownConfig{Site: "S01", Parent: "P01"},
		DownParams{Source: src, Child: dst, ParentKeys: []ed25519.PublicKey{parentPub}}), src, 1)
	calls, got, seen := dst.snapshot()
	if calls != 3 || len(got) != 1 {
		t.Fatalf("%d produce calls, %d copies; want 3 calls (2 refused), 1 copy", calls, len(got))
	}
	for i, n := range seen {
		if n != 0 {
			t.Errorf("produce call %d: %d records already committed, want 0", i+1, n)
		}
	}
	if src.commits != 1 {
		t.Errorf("%d commits, want 1", src.commits)
	}
	if el := time.Since(start); el < 2*time.Second {
		t.Errorf("two retries in %v: want a second's pause each", el)
	}
}

func TestDownConfigValidate(t *testing.T) {
	for _, c := range []DownConfig{{Site: "S01", Parent: "P01"}} {
		if err := c.Validate(); err != nil {
			t.Errorf("%+v: %v", c, err)
		}
	}
	for _, c := range []DownConfig{{Site: "S01"}, {Parent: "P01"}, {Site: "P01", Parent: "P01"}, {Site: "s 1", Parent: "P01"}} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v: valid, want an error", c)
		}
	}
}
