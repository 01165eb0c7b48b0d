package kafka

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrStop, returned by a ReadAll or ReadPartition callback, ends the read early without an
// error.
var ErrStop = errors.New("kafka: stop reading")

// ReadAll calls fn for every record of topic that exists when it starts, partition by
// partition in offset order (outside any consumer group), and returns when it reached the
// end it saw at the start: records written meanwhile are left for the next call.
func ReadAll(ctx context.Context, c Config, topic string, fn func(Record) error) error {
	parts, err := Partitions(ctx, c, topic)
	if err != nil {
		return err
	}
	for _, p := range parts {
		if err := readPartition(ctx, c, topic, p, fn); err != nil {
			return stopped(err)
		}
	}
	return nil
}

// ReadPartition is ReadAll for one partition. With PartitionOf, a reader of one key's records
// reads only the partition they are produced to.
func ReadPartition(ctx context.Context, c Config, topic string, partition int, fn func(Record) error) error {
	return stopped(readPartition(ctx, c, topic, partition, fn))
}

// stopped turns ErrStop into the end of a read without error.
func stopped(err error) error {
	if errors.Is(err, ErrStop) {
		return nil
	}
	return err
}

func readPartition(ctx context.Context, c Config, topic string, partition int, fn func(Record) error) error {
	conn, err := c.dialer().DialLeader(ctx, "tcp", c.Brokers[0], topic, partition)
	if err != nil {
		return fmt.Errorf("cannot reach the leader of %s/%d: %w", topic, partition, err)
	}
	first, last, err := conn.ReadOffsets()
	_ = conn.Close()
	if err != nil {
		return fmt.Errorf("cannot read the offsets of %s/%d: %w", topic, partition, err)
	}
	if last <= first {
		return nil
	}
	r := newPartitionReader(c, topic, partition)
	defer r.Close()
	for {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		m, err := r.ReadMessage(rctx)
		cancel()
		if err != nil {
			return fmt.Errorf("cannot read %s/%d: %w", topic, partition, err)
		}
		if err := fn(fromMessage(m)); err != nil {
			return err
		}
		if m.Offset >= last-1 {
			return nil
		}
	}
}
