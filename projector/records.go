package projector

import (
	"context"
	"errors"
	"time"

	"github.com/statepipe/statepipe/schema"
)

// Record is one Kafka record as the projector reads and writes it. The Kafka adapter
// (internal/kafka, wired in cmd/statepipe) translates its client's records to and from it.
type Record struct {
	Topic     string
	Partition int
	Offset    int64
	Key       []byte
	Value     []byte // nil: a tombstone
	Headers   []Header
	Time      time.Time // the record timestamp (set by whoever produced it)
}

// Header is a record header: an alias of an unnamed struct type, so that an adapter's record
// type with the same fields converts to Record without copying.
type Header = struct {
	Key   string
	Value []byte
}

// header returns the value of a record header, nil when absent (empty when present without a
// value).
func (r *Record) header(key string) []byte { return schema.HeaderValue(r.Headers, key) }

// ErrGenerationEnded is what a Generation's Fetch and Alive return (wrapped) once the consumer
// group has begun to rebalance: records fetched and not committed are redelivered to the
// partitions' next owners.
var ErrGenerationEnded = errors.New("projector: the consumer group's generation ended")

// Consumer is a member of the site's consumer group (kafka.GroupConsumer): it hands out one
// generation of the group at a time, with the partitions assigned to this member.
type Consumer interface {
	Next(ctx context.Context) (Generation, error)
}

// Generation is one generation of the consumer group as this member sees it.
type Generation interface {
	ID() int32
	Member() string
	// Partitions returns the partitions of topic the group assigned to this member.
	Partitions(topic string) []int
	// Fetch returns the next record of those partitions, or an error wrapping
	// ErrGenerationEnded once the group rebalances.
	Fetch(ctx context.Context) (Record, error)
	// Commit commits, per partition, the offset after the greatest of recs; refused once the
	// generation is over.
	Commit(ctx context.Context, recs ...Record) error
	// Alive returns nil while the generation is the group's current one with this member in
	// it, an error wrapping ErrGenerationEnded when it is over, another error when the
	// coordinator cannot be asked.
	Alive(ctx context.Context) error
	// Release lets the member rejoin the group once the generation ended.
	Release()
}

// Producer produces records to one topic and returns once Kafka acknowledged them (the
// dead-letter topic, the resync topic).
type Producer interface {
	Produce(ctx context.Context, recs ...Record) error
}

// Inserter writes a batch of rows and returns once the store acknowledged it.
type Inserter interface {
	Insert(ctx context.Context, rows schema.Rows) error
}
