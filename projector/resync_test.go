package projector

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/statepipe/statepipe/schema"
)

func TestTracker(t *testing.T) {
	t0 := time.Unix(1000, 0)
	type step struct {
		client   string
		serials  []uint64
		fullFrom uint64
		at       time.Duration // after t0
		answered bool
	}
	cases := []struct {
		name       string
		steps      []step
		dueAt      time.Duration
		after      time.Duration
		wantDue    []string
		contiguous map[string]uint64
	}{
		{name: "in order, no gap",
			steps: []step{{"a", []uint64{1, 2, 3}, 0, 0, false}, {"a", []uint64{4}, 0, time.Second, false}},
			dueAt: time.Hour, after: time.Minute, wantDue: nil, contiguous: map[string]uint64{"a": 4}},
		{name: "reordered across reports closes the gap",
			steps: []step{{"a", []uint64{1, 2}, 0, 0, false}, {"a", []uint64{5, 6}, 0, 0, false}, {"a", []uint64{3, 4}, 0, time.Second, false}},
			dueAt: time.Hour, after: time.Minute, wantDue: nil, contiguous: map[string]uint64{"a": 6}},
		{name: "gap younger than resync-after is not due",
			steps: []step{{"a", []uint64{1, 2}, 0, 0, false}, {"a", []uint64{4}, 0, 0, false}},
			dueAt: 30 * time.Second, after: time.Minute, wantDue: nil, contiguous: map[string]uint64{"a": 2}},
		{name: "gap older than resync-after is due",
			steps: []step{{"a", []uint64{1, 2}, 0, 0, false}, {"a", []uint64{4}, 0, 0, false}, {"b", []uint64{7}, 0, 0, false}},
			dueAt: 2 * time.Minute, after: time.Minute, wantDue: []string{"a"}, contiguous: map[string]uint64{"a": 2, "b": 7}},
		{name: "serials out of order within a report",
			steps: []step{{"a", []uint64{3, 1, 2}, 0, 0, false}, {"a", []uint64{6, 4}, 0, 0, false}, {"a", []uint64{5}, 0, 0, false}},
			dueAt: time.Hour, after: time.Minute, wantDue: nil, contiguous: map[string]uint64{"a": 6}},
		{name: "a client may start at any serial",
			steps: []step{{"a", []uint64{500, 501}, 0, 0, false}},
			dueAt: time.Hour, after: time.Minute, wantDue: nil, contiguous: map[string]uint64{"a": 501}},
		{name: "a full report supersedes the gap",
			steps: []step{{"a", []uint64{1, 2}, 0, 0, false}, {"a", []uint64{4}, 0, 0, false}, {"a", []uint64{10, 11}, 10, time.Second, false}},
			dueAt: time.Hour, after: time.Minute, wantDue: nil, contiguous: map[string]uint64{"a": 11}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tr := NewTracker()
			for i, s := range c.steps {
				if got := tr.Observe(s.client, s.serials, s.fullFrom, t0.Add(s.at)); got != s.answered {
					t.Errorf("step %d answered = %v", i, got)
				}
			}
			if got := tr.Due(t0.Add(c.dueAt), c.after); !reflect.DeepEqual(got, c.wantDue) {
				t.Errorf("due = %v, want %v", got, c.wantDue)
			}
			for client, want := range c.contiguous {
				if got, _ := tr.Contiguous(client); got != want {
					t.Errorf("%s contiguous = %d, want %d", client, got, want)
				}
			}
			// Without an open gap a client keeps no map: Go maps never shrink, and 100,000
			// clients each keeping one of its largest report's size held 640 MB in the storm.
			for client, st := range tr.clients {
				if len(st.pending) == 0 && st.pending != nil {
					t.Errorf("%s keeps an empty map of pending serials", client)
				}
			}
		})
	}
}

// A request goes out once; the client's full report answers it; a new gap can be asked again.
func TestTrackerRequestLifecycle(t *testing.T) {
	t0 := time.Unix(1000, 0)
	tr := NewTracker()
	tr.Observe("a", []uint64{1}, 0, t0)
	tr.Observe("a", []uint64{3}, 0, t0)
	if due := tr.Due(t0.Add(time.Hour), time.Minute); len(due) != 1 {
		t.Fatalf("due = %v", due)
	}
	if due := tr.Due(t0.Add(2*time.Hour), time.Minute); len(due) != 0 {
		t.Fatalf("asked twice: %v", due)
	}
	if !tr.Observe("a", []uint64{4, 5}, 4, t0.Add(2*time.Hour)) {
		t.Fatal("full report did not answer the request")
	}
	tr.Observe("a", []uint64{7}, 0, t0.Add(3*time.Hour))
	if due := tr.Due(t0.Add(4*time.Hour), time.Minute); len(due) != 1 {
		t.Fatalf("new gap not asked: %v", due)
	}
}

// openSet is resync.<site> as mirrored: the clients with an open request.
type openSet map[string]bool

func (o openSet) Has(c string) bool { return o[c] }

func newResyncer(out Producer, open openSet) *resyncer {
	m := newMetrics(nil)
	return &resyncer{tracker: NewTracker(), out: out, open: open, after: time.Minute, retry: retrier{max: time.Millisecond, log: quiet()},
		published: m.resyncs, failures: m.kafkaErrors.WithLabelValues(opResync), log: quiet()}
}

func report(client string, full bool, serials ...uint64) *schema.Report {
	r := &schema.Report{Client: client}
	if full {
		r.FullTypes = []schema.TopicType{schema.TopicUpdateCompliance}
	}
	for _, s := range serials {
		r.Messages = append(r.Messages, schema.StateMessage{Serial: s})
	}
	return r
}

// A gap older than ResyncAfter is requested once, with the contiguous serial; publishing is
// retried until Kafka acknowledges, and the failures counted.
func TestResyncerRequestsAgedGaps(t *testing.T) {
	out := &fakeProducer{fail: 2}
	r := newResyncer(out, nil)
	t0 := time.Now().Add(-time.Hour)
	if err := r.track(context.Background(), []*schema.Report{report("a", false, 1, 2), report("a", false, 5), report("b", false, 1)}, t0); err != nil {
		t.Fatal(err)
	}
	got := out.produced()
	if len(got) != 1 || string(got[0].Key) != "a" || string(got[0].Value) != `{"client":"a","reason":"gap","contiguous":2}` {
		t.Fatalf("published %+v, want one request for a", got)
	}
	if err := r.requestDue(context.Background(), time.Now()); err != nil || len(out.produced()) != 1 {
		t.Errorf("asked again (%d records, err %v)", len(out.produced()), err)
	}
	if n := counterValue(t, r.failures); n != 2 {
		t.Errorf("%v failed publishes counted, want 2", n)
	}
	if n := counterValue(t, r.published.WithLabelValues(resyncGap)); n != 1 {
		t.Errorf("%v requests counted, want 1", n)
	}
}

// A full report answers its client's request — one the tracker made, or one only the topic
// knows (an administrator's, another process's) — with one tombstone; a delta report does not.
func TestResyncerAnswersWithFullReports(t *testing.T) {
	out := &fakeProducer{}
	r := newResyncer(out, openSet{"admin-asked": true, "delta": true})
	err := r.track(context.Background(), []*schema.Report{report("admin-asked", true, 3, 4), report("admin-asked", true, 5),
		report("delta", false, 9), report("never-asked", true, 1)}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	got := out.produced()
	if len(got) != 1 || string(got[0].Key) != "admin-asked" || got[0].Value != nil {
		t.Errorf("published %+v, want one tombstone for admin-asked", got)
	}
	if n := counterValue(t, r.published.WithLabelValues(resyncAnswered)); n != 1 {
		t.Errorf("%v answers counted, want 1", n)
	}
}

// Without a resync topic nothing is tracked or published.
func TestResyncerOff(t *testing.T) {
	r := newResyncer(nil, nil)
	if err := r.track(context.Background(), []*schema.Report{report("a", false, 1), report("a", false, 5)}, time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, gap := r.tracker.Contiguous("a"); gap {
		t.Error("tracked without a resync topic")
	}
}
