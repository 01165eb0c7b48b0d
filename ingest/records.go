package ingest

import (
	"context"
	"errors"
	"time"

	"github.com/statepipe/statepipe/schema"
)

// Record is one Kafka record as ingest produces it (and reads the identity log back). The
// Kafka adapter (internal/kafka, wired in cmd/statepipe) translates it to its client's type.
type Record struct {
	Key     []byte
	Value   []byte // nil: a tombstone
	Headers []Header
	Time    time.Time // the record timestamp; zero: the producer's clock
}

// Header is a record header: an alias of an unnamed struct type, so that an adapter's header
// type with the same fields is the same type and headers pass through without copying.
type Header = struct {
	Key   string
	Value []byte
}

// header returns the value of a record header, nil when absent (empty when present without a
// value).
func (r *Record) header(key string) []byte { return schema.HeaderValue(r.Headers, key) }

// Producer produces records to one topic and returns only once Kafka acknowledged them with
// acks=all: ingest answers its client after that.
type Producer interface {
	Produce(ctx context.Context, recs ...Record) error
}

// ErrRecordTooLarge is wrapped by a Producer's error when the producer or the broker refused a
// record for its size (the topic's max.message.bytes): the report can never be accepted as it
// is, so ingest answers 413 rather than 503.
var ErrRecordTooLarge = errors.New("ingest: the record is larger than the topic accepts")
