package replicator

import (
	"context"
	"fmt"
	"time"

	"github.com/statepipe/statepipe/schema"
)

// Record is one Kafka record as the replicator reads and writes it. The Kafka adapter
// (internal/kafka, wired in cmd/statepipe) translates its client's records to and from it.
type Record struct {
	Topic     string
	Partition int
	Offset    int64
	Key       []byte
	Value     []byte
	Headers   []Header
	Time      time.Time
}

// Header is a record header: an alias of an unnamed struct type, so that an adapter's record
// type with the same fields converts to Record without copying.
type Header = struct {
	Key   string
	Value []byte
}

// Producer produces records to one topic and returns once Kafka acknowledged them all.
type Producer interface {
	Produce(ctx context.Context, recs ...Record) error
}

// Source reads a topic as a member of a consumer group.
type Source interface {
	Fetch(ctx context.Context) (Record, error)
	// Commit commits, per partition, the offset after the greatest of recs.
	Commit(ctx context.Context, recs ...Record) error
}

// Inserter writes a batch of rows and returns once the store acknowledged it.
type Inserter interface {
	Insert(ctx context.Context, rows schema.Rows) error
}

// Progress reads how far the site's projector has come: the end offsets of its topics and
// the offsets its consumer group committed, per topic and partition.
type Progress interface {
	Ends(ctx context.Context) (map[string]map[int]int64, error)
	Committed(ctx context.Context) (map[string]map[int]int64, error)
}

// Topic is the topic a site's children produce into: hier.<site>.
func Topic(site string) string { return "hier." + site }

// LinkThresholds say when a link is degraded or failed: when nothing came over it (a
// heartbeat, sent every interval) for that long.
type LinkThresholds struct {
	Degraded time.Duration
	Failed   time.Duration
}

// DefaultLinkThresholds: a link is degraded after 5 s without a heartbeat, failed after 20 s.
var DefaultLinkThresholds = LinkThresholds{Degraded: 5 * time.Second, Failed: 20 * time.Second}

// Link states.
const (
	LinkActive   = "active"
	LinkDegraded = "degraded"
	LinkFailed   = "failed"
)

// State is the state of a link that last carried something age ago.
func (t LinkThresholds) State(age time.Duration) string {
	switch {
	case age >= t.Failed:
		return LinkFailed
	case age >= t.Degraded:
		return LinkDegraded
	}
	return LinkActive
}

// Validate checks the thresholds.
func (t LinkThresholds) Validate(prefix string) error {
	if t.Degraded <= 0 || t.Failed <= t.Degraded {
		return fmt.Errorf("cannot use --%sdegraded-after %s and --%sfailed-after %s: want 0 < degraded < failed", prefix, t.Degraded, prefix, t.Failed)
	}
	return nil
}

// sleep waits d or until ctx is done; false when ctx is done.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
