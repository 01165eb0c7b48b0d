package kafka

import (
	"context"
	"fmt"
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

// ReadAll calls fn for every record of topic that exists when it starts, partition by
// partition in offset order (outside any consumer group), and returns when it reached the
// end it saw at the start: records written meanwhile are left for the next call.
func ReadAll(ctx context.Context, c Config, topic string, fn func(kafkago.Message) error) error {
	parts, err := Partitions(ctx, c, topic)
	if err != nil {
		return err
	}
	for _, p := range parts {
		conn, err := c.dialer().DialLeader(ctx, "tcp", c.Brokers[0], topic, p)
		if err != nil {
			return fmt.Errorf("cannot reach the leader of %s/%d: %w", topic, p, err)
		}
		first, last, err := conn.ReadOffsets()
		_ = conn.Close()
		if err != nil {
			return fmt.Errorf("cannot read the offsets of %s/%d: %w", topic, p, err)
		}
		if last <= first {
			continue
		}
		r := NewPartitionReader(c, topic, p)
		err = func() error {
			defer r.Close()
			for {
				rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				m, err := r.ReadMessage(rctx)
				cancel()
				if err != nil {
					return fmt.Errorf("cannot read %s/%d: %w", topic, p, err)
				}
				if err := fn(m); err != nil {
					return err
				}
				if m.Offset >= last-1 {
					return nil
				}
			}
		}()
		if err != nil {
			return err
		}
	}
	return nil
}
