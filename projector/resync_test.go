package projector

import (
	"reflect"
	"testing"
	"time"
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
