package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

// Follow reads every partition of topic from its first offset until ctx ends, outside any
// consumer group, calling apply with each record in partition order (the partitions are read
// concurrently: apply must be safe for concurrent use). With fresh set, every freshEvery it
// asks the broker for the partitions' end offsets and, when every record before them has been
// applied, calls fresh with the time it asked: the caller then knows that what it holds is at
// least as new as the topic was at that time.
func Follow(ctx context.Context, c Config, topic string, apply func(Record), fresh func(time.Time), freshEvery time.Duration, log *slog.Logger) error {
	parts, err := Partitions(ctx, c, topic)
	if err != nil {
		return err
	}
	next := make(map[int]*atomic.Int64, len(parts)) // per partition: the offset after the last applied
	for _, p := range parts {
		next[p] = new(atomic.Int64)
	}
	var wg sync.WaitGroup
	for _, p := range parts {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			r := newPartitionReader(c, topic, p)
			defer r.Close()
			for {
				m, err := r.ReadMessage(ctx)
				if err != nil {
					if ctx.Err() != nil || errors.Is(err, context.Canceled) {
						return
					}
					log.Warn("cannot read topic; retrying", "topic", topic, "partition", p, "err", err)
					select {
					case <-ctx.Done():
						return
					case <-time.After(time.Second):
					}
					continue
				}
				apply(fromMessage(m))
				next[p].Store(m.Offset + 1)
			}
		}(p)
	}
	if fresh != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tc := newTopicClient(c, topic)
			t := time.NewTicker(freshEvery)
			defer t.Stop()
			for {
				asked := time.Now()
				if caughtUp, err := tc.caughtUp(ctx, parts, next); err == nil && caughtUp {
					fresh(asked)
				} else if err != nil && ctx.Err() == nil {
					log.Debug("cannot read end offsets", "topic", topic, "err", err)
				}
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
			}
		}()
	}
	wg.Wait()
	return nil
}

// caughtUp reports whether every record of parts before their end offsets has been applied.
func (t *topicClient) caughtUp(ctx context.Context, parts []int, next map[int]*atomic.Int64) (bool, error) {
	now, err := Partitions(ctx, t.c, t.topic)
	if err != nil {
		return false, err
	}
	reqs := make([]kafkago.OffsetRequest, 0, 2*len(now))
	for _, p := range now {
		reqs = append(reqs, kafkago.FirstOffsetOf(p), kafkago.LastOffsetOf(p))
	}
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := t.cl.ListOffsets(qctx, &kafkago.ListOffsetsRequest{Topics: map[string][]kafkago.OffsetRequest{t.topic: reqs}})
	if err != nil {
		return false, fmt.Errorf("cannot read end offsets of %s: %w", t.topic, err)
	}
	seen := 0
	for _, po := range resp.Topics[t.topic] {
		if po.Error != nil {
			return false, fmt.Errorf("cannot read end offset of %s/%d: %w", t.topic, po.Partition, po.Error)
		}
		n, ok := next[po.Partition]
		if !ok {
			// A partition added after the follower started is not read: never caught up.
			return false, fmt.Errorf("%s has partition %d, added after it was first read: restart to read it", t.topic, po.Partition)
		}
		seen++
		if max(n.Load(), po.FirstOffset) < po.LastOffset {
			return false, nil
		}
	}
	return seen == len(parts), nil
}
