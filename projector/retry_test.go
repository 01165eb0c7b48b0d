package projector

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestRetryBacksOffUntilItSucceeds(t *testing.T) {
	r := retrier{max: 150 * time.Millisecond, log: quiet()}
	failures := prometheus.NewCounter(prometheus.CounterOpts{Name: "f"})
	var at []time.Time
	err := r.do(context.Background(), "test", failures, func() error {
		at = append(at, time.Now())
		if len(at) < 4 {
			return errors.New("unavailable")
		}
		return nil
	})
	if err != nil || len(at) != 4 {
		t.Fatalf("err %v after %d attempts, want nil after 4", err, len(at))
	}
	if got := counterValue(t, failures); got != 3 {
		t.Errorf("%v failures counted, want 3", got)
	}
	// 100 ms, then doubling, capped at max: 100, 150, 150.
	for i, want := range []time.Duration{100 * time.Millisecond, 150 * time.Millisecond, 150 * time.Millisecond} {
		if got := at[i+1].Sub(at[i]); got < want || got > want+100*time.Millisecond {
			t.Errorf("wait %d: %v, want %v", i+1, got, want)
		}
	}
}

func TestRetryReturnsAPermanentErrorAtOnce(t *testing.T) {
	r := retrier{max: time.Second, log: quiet()}
	ended := errors.New("generation ended")
	calls := 0
	err := r.do(context.Background(), "test", nil, func() error { calls++; return permanent{ended} })
	if !errors.Is(err, ended) || calls != 1 {
		t.Errorf("err %v after %d calls, want the permanent error after 1", err, calls)
	}
}

func TestRetryStopsWithItsContext(t *testing.T) {
	r := retrier{max: time.Hour, log: quiet()}
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	done := make(chan error, 1)
	go func() {
		done <- r.do(ctx, "test", nil, func() error { calls++; return errors.New("unavailable") })
	}()
	time.Sleep(50 * time.Millisecond) // in the first back-off
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) || calls != 1 {
			t.Errorf("err %v after %d calls, want context.Canceled after 1", err, calls)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("retry did not stop when its context ended")
	}
}
