package replicator

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// The tracker keeps the snapshots the projector has not committed past and passes the newest
// it has, over every topic and partition.
func TestTrackerAdvance(t *testing.T) {
	p := &fakeProgress{}
	tr := tracker{progress: p}
	ctx := context.Background()
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	set := func(ends, committed map[string]map[int]int64) {
		p.mu.Lock()
		p.ends, p.committed = ends, committed
		p.mu.Unlock()
	}
	type offs = map[string]map[int]int64
	for i, c := range []struct {
		ends, committed offs
		passed          int // the second of the snapshot passed; -1: none
		behind          int64
	}{
		// Partition 1 of state.S01 is behind.
		{offs{"state.S01": {0: 5, 1: 5}, "ref.S01": {0: 2}}, offs{"state.S01": {0: 5, 1: 3}, "ref.S01": {0: 2}}, -1, 2},
		// ref.S01 is not committed at all.
		{offs{"state.S01": {0: 5, 1: 5}, "ref.S01": {0: 2}}, offs{"state.S01": {0: 5, 1: 5}}, -1, 2},
		// Past everything taken so far: the newest (second 2) wins.
		{offs{"state.S01": {0: 5, 1: 5}, "ref.S01": {0: 2}}, offs{"state.S01": {0: 5, 1: 5}, "ref.S01": {0: 2}}, 2, 0},
		// New records; committed past the end (a partition's offsets moved): not behind.
		{offs{"state.S01": {0: 9, 1: 5}, "ref.S01": {0: 2}}, offs{"state.S01": {0: 5, 1: 7}, "ref.S01": {0: 2}}, -1, 4},
		{offs{"state.S01": {0: 12, 1: 5}, "ref.S01": {0: 2}}, offs{"state.S01": {0: 10, 1: 5}, "ref.S01": {0: 2}}, 3, 2},
		// Nothing new and nothing committed: the snapshot of second 4 still waits, nothing passes.
		{offs{"state.S01": {0: 12, 1: 5}, "ref.S01": {0: 2}}, offs{"state.S01": {0: 11, 1: 5}, "ref.S01": {0: 2}}, -1, 1},
		{offs{"state.S01": {0: 12, 1: 5}, "ref.S01": {0: 2}}, offs{"state.S01": {0: 12, 1: 5}, "ref.S01": {0: 2}}, 6, 0},
	} {
		set(c.ends, c.committed)
		s, err := tr.advance(ctx, at(i))
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case c.passed < 0 && s.passed != nil:
			t.Errorf("step %d: passed the snapshot of %v, want none", i, s.passed.at)
		case c.passed >= 0 && (s.passed == nil || !s.passed.at.Equal(at(c.passed))):
			t.Errorf("step %d: passed %+v, want the snapshot of second %d", i, s.passed, c.passed)
		}
		if n := behind(s.ends, s.committed); n != c.behind {
			t.Errorf("step %d: %d records behind, want %d", i, n, c.behind)
		}
	}
	if len(tr.pending) != 0 {
		t.Errorf("%d snapshots pending after the projector caught up, want 0", len(tr.pending))
	}

	p.err = errors.New("kafka down")
	if _, err := tr.advance(ctx, at(10)); err == nil || !strings.Contains(err.Error(), "kafka down") {
		t.Errorf("progress unreadable: %v", err)
	}
}

// While the projector stays behind, the tracker keeps at most maxPending snapshots, dropping
// the oldest.
func TestTrackerBoundsPending(t *testing.T) {
	p := &fakeProgress{}
	tr := tracker{progress: p}
	for i := range maxPending + 50 {
		p.set(int64(i+1), 0, 0, 0)
		if _, err := tr.advance(context.Background(), t0.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	if len(tr.pending) != maxPending || !tr.pending[0].at.Equal(t0.Add(50*time.Second)) {
		t.Errorf("%d pending from %v, want %d from %v", len(tr.pending), tr.pending[0].at, maxPending, t0.Add(50*time.Second))
	}
	// Committed past the 100th snapshot: that one passes, the older are dropped with it.
	p.set(int64(maxPending+50), 100, 0, 0)
	s, err := tr.advance(context.Background(), t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if s.passed == nil || !s.passed.at.Equal(t0.Add(99*time.Second)) || len(tr.pending) != maxPending+50-100+1 {
		t.Errorf("passed %+v with %d pending, want the snapshot of second 99, %d pending", s.passed, len(tr.pending), maxPending+50-100+1)
	}
}

// Watermark follows the projector: the time of the newest snapshot committed past, and the
// records not folded.
func TestWatermarkRun(t *testing.T) {
	p := &fakeProgress{}
	p.set(10, 4, 2, 2)
	w := NewWatermark(p, time.Millisecond)
	if w.interval != 50*time.Millisecond {
		t.Errorf("interval %v, want at least 50 ms", w.interval)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- w.Run(ctx) }()
	waitFor := func(what string, ok func(time.Time, int64) bool) (time.Time, int64) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if wm, lag := w.Get(); ok(wm, lag) {
				return wm, lag
			}
		}
		wm, lag := w.Get()
		t.Fatalf("%s: watermark %v, lag %d after 5 s", what, wm, lag)
		return wm, lag
	}
	waitFor("behind", func(wm time.Time, lag int64) bool { return lag == 6 })
	if wm, _ := w.Get(); !wm.IsZero() {
		t.Errorf("watermark %v before the projector passed a snapshot, want none", wm)
	}
	p.set(10, 10, 2, 2)
	caught := time.Now()
	wm, _ := waitFor("caught up", func(wm time.Time, lag int64) bool { return lag == 0 && !wm.IsZero() })
	if wm.Before(start) || wm.After(time.Now()) {
		t.Errorf("watermark %v, want a time of the run (started %v, caught up %v)", wm, start, caught)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return within 5 s of its context's end")
	}
	if w.Name() != "watermark" {
		t.Errorf("Name %q", w.Name())
	}
}

func TestLinkThresholds(t *testing.T) {
	th := LinkThresholds{Degraded: 5 * time.Second, Failed: 20 * time.Second}
	for age, want := range map[time.Duration]string{
		-time.Second: LinkActive, 0: LinkActive, 4999 * time.Millisecond: LinkActive,
		5 * time.Second: LinkDegraded, 19 * time.Second: LinkDegraded,
		20 * time.Second: LinkFailed, time.Hour: LinkFailed,
	} {
		if got := th.State(age); got != want {
			t.Errorf("State(%v) = %s, want %s", age, got, want)
		}
	}
	if DefaultLinkThresholds != th {
		t.Errorf("DefaultLinkThresholds %+v, want %+v as documented", DefaultLinkThresholds, th)
	}
	if err := th.Validate("replicator."); err != nil {
		t.Errorf("Validate: %v", err)
	}
	for _, bad := range []LinkThresholds{{}, {Degraded: 0, Failed: time.Second}, {Degraded: -time.Second, Failed: time.Second},
		{Degraded: time.Second, Failed: time.Second}, {Degraded: 2 * time.Second, Failed: time.Second}} {
		err := bad.Validate("replicator.")
		if err == nil {
			t.Errorf("Validate(%+v): no error", bad)
			continue
		}
		for _, want := range []string{"--replicator.degraded-after " + bad.Degraded.String(), "--replicator.failed-after " + bad.Failed.String()} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("Validate(%+v): %q does not name %q", bad, err, want)
			}
		}
	}
}

func TestTopicAndNames(t *testing.T) {
	if got := Topic("CEN"); got != "hier.CEN" {
		t.Errorf("Topic(CEN) = %q", got)
	}
	u, err := NewUp(UpConfig{Site: "S01", Parent: "CEN", Database: "d"}, UpParams{})
	if err != nil {
		t.Fatal(err)
	}
	if u.Name() != "replicator to CEN" || NewForward("CEN", ForwardParams{}).Name() != "forwarder to CEN" || NewFold(FoldConfig{}, FoldParams{}).Name() != "hierarchy fold" {
		t.Error("names changed")
	}
}
