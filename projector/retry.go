package projector

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// firstBackoff is the wait after a first failure; it doubles after each failure up to
// Config.RetryMax.
const firstBackoff = 100 * time.Millisecond

// retrier runs what the projector cannot go on without — an insert, a read of the store, a
// produce, a fetch, a join — until it succeeds, backing off while the store or the broker is
// unavailable. It is the projector's one back-off: nothing it must not lose is dropped on a
// failure, it waits.
type retrier struct {
	max time.Duration // longest back-off (Config.RetryMax)
	log *slog.Logger
}

// do runs op until it returns nil, returns a permanent error (unwrapped), or ctx ends (ctx's
// error). After each failure it counts it in failures (nil: not counted), logs "cannot <what>;
// retrying" with the attempt, the back-off, the error and attrs, and waits: 100 ms, doubling
// up to max.
func (r retrier) do(ctx context.Context, what string, failures prometheus.Counter, op func() error, attrs ...any) error {
	backoff := firstBackoff
	for attempt := 1; ; attempt++ {
		err := op()
		if err == nil {
			return nil
		}
		if p, ok := err.(permanent); ok {
			return p.error
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if failures != nil {
			failures.Inc()
		}
		r.log.Warn("cannot "+what+"; retrying", append([]any{"attempt", attempt, "backoff", backoff, "err", err}, attrs...)...)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, r.max)
	}
}

// permanent is an error retrier.do does not retry.
type permanent struct{ error }
