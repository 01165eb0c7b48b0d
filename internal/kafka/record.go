package kafka

import (
	"context"
	"errors"
	"fmt"
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

// Record is a Kafka record without kafka-go's types: what this package hands statepipe's
// components and takes from them. The components (projector, ingest) each define their own
// record type; cmd/statepipe converts between them, so that kafka-go stays inside this package.
type Record struct {
	Topic     string
	Partition int
	Offset    int64
	Key       []byte
	Value     []byte // nil: a tombstone
	Headers   []Header
	Time      time.Time
}

// Header is a record header. It is an alias of an unnamed struct type, as the components'
// header types are, so that a component's Record with the same fields converts to and from
// Record without copying its headers.
type Header = struct {
	Key   string
	Value []byte
}

// Errors the adapters wrap, for callers to test with errors.Is.
var (
	// ErrGenerationEnded is wrapped by a Generation's errors once the group has begun to
	// rebalance (kafka-go's own sentinel, so its errors match too).
	ErrGenerationEnded = kafkago.ErrGenerationEnded
	// ErrRecordTooLarge is wrapped by Producer.Produce when the producer or the broker refused a
	// record for its size (the topic's max.message.bytes): sending it again cannot succeed.
	ErrRecordTooLarge = errors.New("kafka: the record is larger than the topic accepts (max.message.bytes)")
)

// fromMessage translates a record kafka-go read.
func fromMessage(m kafkago.Message) Record {
	r := Record{Topic: m.Topic, Partition: m.Partition, Offset: m.Offset, Key: m.Key, Value: m.Value, Time: m.Time}
	if len(m.Headers) > 0 {
		r.Headers = make([]Header, len(m.Headers))
		for i, h := range m.Headers {
			r.Headers[i] = Header{Key: h.Key, Value: h.Value}
		}
	}
	return r
}

// toMessage translates a record to produce: the producer's topic and partitioner decide where
// it goes, so Topic, Partition and Offset are not carried.
func toMessage(r Record) kafkago.Message {
	m := kafkago.Message{Key: r.Key, Value: r.Value, Time: r.Time}
	if len(r.Headers) > 0 {
		m.Headers = make([]kafkago.Header, len(r.Headers))
		for i, h := range r.Headers {
			m.Headers[i] = kafkago.Header{Key: h.Key, Value: h.Value}
		}
	}
	return m
}

// Producer produces records to one topic, each acknowledged by every in-sync replica before
// Produce returns (newWriter).
type Producer struct {
	w *kafkago.Writer
}

// NewProducer returns a producer for topic with newWriter's settings.
func NewProducer(c Config, topic string) *Producer { return &Producer{w: newWriter(c, topic)} }

// Produce writes recs (their Topic, Partition and Offset are ignored: records are partitioned
// by key) and returns once Kafka acknowledged them all. A record refused for its size makes
// the error wrap ErrRecordTooLarge.
func (p *Producer) Produce(ctx context.Context, recs ...Record) error {
	msgs := make([]kafkago.Message, len(recs))
	for i, r := range recs {
		msgs[i] = toMessage(r)
	}
	err := p.w.WriteMessages(ctx, msgs...)
	if err != nil && tooLarge(err) {
		return fmt.Errorf("%w: %w", ErrRecordTooLarge, err)
	}
	return err
}

// Topic is the topic the producer writes to.
func (p *Producer) Topic() string { return p.w.Topic }

// Close flushes and releases the producer.
func (p *Producer) Close() error { return p.w.Close() }

// tooLarge reports whether the producer or the broker refused a record for its size.
func tooLarge(err error) bool {
	var big kafkago.MessageTooLargeError
	if errors.As(err, &big) || errors.Is(err, kafkago.MessageSizeTooLarge) {
		return true
	}
	var werrs kafkago.WriteErrors
	if errors.As(err, &werrs) {
		for _, e := range werrs {
			if e != nil && tooLarge(e) {
				return true
			}
		}
	}
	return false
}

// PartitionOf returns the partition of a topic with n partitions that a record keyed key is
// produced to: murmur2, the Java client's partitioner, as newWriter does.
func PartitionOf(key []byte, n int) int {
	ids := make([]int, n)
	for i := range ids {
		ids[i] = i
	}
	return (&kafkago.Murmur2Balancer{}).Balance(kafkago.Message{Key: key}, ids...)
}
