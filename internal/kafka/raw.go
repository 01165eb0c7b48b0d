package kafka

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/statepipe/statepipe/schema"
)

// RawClient is the bare kafka-go client statepipe's roles use, with nothing of statepipe
// around it, on throwaway topics: the harness's raw ceilings (bench.RawKafka) time it, so that
// a stage's rate can be read as a share of what the client alone does with the same records.
// It writes with ingest's writer (NewWriter: acks=all, murmur2 by key, lz4) and reads every
// partition outside any consumer group.
type RawClient struct {
	c     Config
	admin *kafkago.Client
	parts []int // 0 … Partitions-1, what the balancer chooses among
}

// NewRawClient returns a raw client on the config's brokers and security. Close releases its
// connections.
func NewRawClient(c Config) (*RawClient, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("cannot make a raw Kafka client: %w", err)
	}
	r := &RawClient{c: c, admin: &kafkago.Client{Addr: kafkago.TCP(c.Brokers...), Timeout: 30 * time.Second, Transport: c.transport()}}
	for p := range c.Partitions {
		r.parts = append(r.parts, p)
	}
	return r, nil
}

// Close releases the client's idle connections.
func (r *RawClient) Close() error {
	r.admin.Transport.(*kafkago.Transport).CloseIdleConnections()
	return nil
}

// CreateTopic creates topic with a state topic's partitions (Config.Partitions) and returns
// their count.
func (r *RawClient) CreateTopic(ctx context.Context, topic string) (int, error) {
	if err := EnsureTopic(ctx, r.c, topic); err != nil {
		return 0, err
	}
	return r.c.Partitions, nil
}

// DeleteTopic deletes topic; a topic already gone is not an error. statepipe never deletes a
// site's topics, so this exists for throwaway topics only.
func (r *RawClient) DeleteTopic(ctx context.Context, topic string) error {
	resp, err := r.admin.DeleteTopics(ctx, &kafkago.DeleteTopicsRequest{Topics: []string{topic}})
	if err != nil {
		return fmt.Errorf("cannot delete topic %s: %w", topic, err)
	}
	if err := resp.Errors[topic]; err != nil && !errors.Is(err, kafkago.UnknownTopicOrPartition) {
		return fmt.Errorf("cannot delete topic %s: %w", topic, err)
	}
	return nil
}

// Partition returns the partition the writer's murmur2 balancer gives key in a topic
// CreateTopic made.
func (r *RawClient) Partition(key []byte) int {
	var bal kafkago.Murmur2Balancer
	return bal.Balance(kafkago.Message{Key: key}, r.parts...)
}

// Produce writes every value with its key to topic, batch records to a WriteMessages call from
// producers goroutines at once, and returns the time from the first call to the last
// acknowledgement. The records carry what ingest's carry: key, value, the format-version
// header and a timestamp set when the batch is handed over; they are built before the clock
// starts.
func (r *RawClient) Produce(ctx context.Context, topic string, keys, values [][]byte, producers, batch int) (time.Duration, error) {
	w := newWriter(r.c, topic)
	defer func() {
		_ = w.Close()
		w.Transport.(*kafkago.Transport).CloseIdleConnections()
	}()
	header := []kafkago.Header{{Key: "v", Value: []byte(strconv.Itoa(schema.Version))}}
	msgs := make([]kafkago.Message, len(values))
	for i := range msgs {
		msgs[i] = kafkago.Message{Key: keys[i], Value: values[i], Headers: header}
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	chunks := (len(msgs) + batch - 1) / batch
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range min(producers, chunks) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= chunks || ctx.Err() != nil {
					return
				}
				lo, hi := i*batch, min((i+1)*batch, len(msgs))
				at := time.Now()
				for j := lo; j < hi; j++ {
					msgs[j].Time = at
				}
				if err := w.WriteMessages(ctx, msgs[lo:hi]...); err != nil {
					cancel(fmt.Errorf("cannot produce records %d–%d to %s: %w", lo, hi-1, topic, err))
					return
				}
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	if err := context.Cause(ctx); err != nil {
		return 0, err
	}
	return took, nil
}

// offsetRange is a partition's first and next-to-write offset.
type offsetRange struct {
	partition   int
	first, last int64
}

// partitionRanges returns the offset range of every partition of topic.
func (r *RawClient) partitionRanges(ctx context.Context, topic string) ([]offsetRange, error) {
	reqs := make([]kafkago.OffsetRequest, 0, 2*r.c.Partitions)
	for p := range r.c.Partitions {
		reqs = append(reqs, kafkago.FirstOffsetOf(p), kafkago.LastOffsetOf(p))
	}
	resp, err := r.admin.ListOffsets(ctx, &kafkago.ListOffsetsRequest{Topics: map[string][]kafkago.OffsetRequest{topic: reqs}})
	if err != nil {
		return nil, fmt.Errorf("cannot read the offsets of %s: %w", topic, err)
	}
	var out []offsetRange
	for _, po := range resp.Topics[topic] {
		if po.Error != nil {
			return nil, fmt.Errorf("cannot read the offsets of %s/%d: %w", topic, po.Partition, po.Error)
		}
		out = append(out, offsetRange{po.Partition, po.FirstOffset, po.LastOffset})
	}
	if len(out) != r.c.Partitions {
		return nil, fmt.Errorf("cannot read the offsets of %s: %d of %d partitions answered", topic, len(out), r.c.Partitions)
	}
	return out, nil
}

// consumeStall is how long Consume waits without a single record before it gives up.
const consumeStall = 30 * time.Second

// Consume reads every record topic holds, a reader per partition outside any consumer group
// (a group's join would be timed too and is the projector's cost, not kafka-go's), with 32 MiB
// fetches and a queue of 1,000 records, and returns the time until the last record was in hand
// with the records and value bytes read. It decodes nothing.
func (r *RawClient) Consume(ctx context.Context, topic string) (took time.Duration, records int64, bytes int64, err error) {
	ends, err := r.partitionRanges(ctx, topic)
	if err != nil {
		return 0, 0, 0, err
	}
	var held int64
	for _, e := range ends {
		held += e.last - e.first
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var readers []*kafkago.Reader
	defer func() {
		for _, rd := range readers {
			_ = rd.Close()
		}
	}()
	var ranges []offsetRange
	for _, e := range ends {
		if e.last <= e.first {
			continue
		}
		// NewPartitionReader carries the config's dialer (SASL, TLS); its 1 MiB fetches are
		// for small compacted topics, so take its config with a state topic's sizes.
		tmpl := newPartitionReader(r.c, topic, e.partition)
		rc := tmpl.Config()
		_ = tmpl.Close()
		rc.MaxBytes = 32 << 20
		rc.QueueCapacity = 1000
		readers = append(readers, kafkago.NewReader(rc))
		ranges = append(ranges, e)
	}
	var n, nbytes atomic.Int64
	stop := make(chan struct{})
	defer close(stop)
	go func() { // a stalled partition fails the read instead of hanging it
		t := time.NewTicker(time.Second)
		defer t.Stop()
		seen, since := int64(-1), time.Now()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			if cur := n.Load(); cur != seen {
				seen, since = cur, time.Now()
			} else if time.Since(since) > consumeStall {
				cancel(fmt.Errorf("cannot consume %s: no record for %s after %d of %d", topic, consumeStall, cur, held))
				return
			}
		}
	}()
	var wg sync.WaitGroup
	start := time.Now()
	for i, rd := range readers {
		e := ranges[i]
		wg.Go(func() {
			for {
				m, err := rd.ReadMessage(ctx)
				if err != nil {
					cancel(fmt.Errorf("cannot consume %s/%d: %w", topic, e.partition, err))
					return
				}
				n.Add(1)
				nbytes.Add(int64(len(m.Value)))
				if m.Offset >= e.last-1 {
					return
				}
			}
		})
	}
	wg.Wait()
	took = time.Since(start)
	if err := context.Cause(ctx); err != nil {
		return 0, 0, 0, err
	}
	return took, n.Load(), nbytes.Load(), nil
}
