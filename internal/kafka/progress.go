package kafka

import (
	"context"
	"fmt"
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

// Progress reads how far a consumer group has come on some topics: their end offsets and the
// group's committed offsets, per topic and partition. The replicator takes the end offsets at
// a moment T and, once the group committed past them, knows that every record written before T
// is folded (its watermark).
type Progress struct {
	group string
	tcs   []*topicClient
}

// NewProgress watches group on topics.
func NewProgress(c Config, group string, topics ...string) *Progress {
	p := &Progress{group: group}
	for _, t := range topics {
		p.tcs = append(p.tcs, newTopicClient(c, t))
	}
	return p
}

// Ends returns the next offset of every partition of the topics, per topic.
func (p *Progress) Ends(ctx context.Context) (map[string]map[int]int64, error) {
	out := make(map[string]map[int]int64, len(p.tcs))
	for _, tc := range p.tcs {
		ends, err := tc.endOffsets(ctx, nil)
		if err != nil {
			return nil, err
		}
		out[tc.topic] = ends
	}
	return out, nil
}

// Committed returns the group's committed offset of every partition of the topics it
// committed on, per topic.
func (p *Progress) Committed(ctx context.Context) (map[string]map[int]int64, error) {
	out := make(map[string]map[int]int64, len(p.tcs))
	for _, tc := range p.tcs {
		parts, err := tc.partitions(ctx)
		if err != nil {
			return nil, err
		}
		c, err := committedOffsets(ctx, tc.cl, p.group, tc.topic, parts)
		if err != nil {
			return nil, err
		}
		out[tc.topic] = c
	}
	return out, nil
}

// GroupReader reads a topic as a member of a consumer group and commits what its caller
// processed (kafka-go's Reader with a group): for consumers whose work is idempotent and
// needs no partition ownership, such as the replicator's fold of what the sites below sent.
type GroupReader struct {
	r *kafkago.Reader
}

// NewGroupReader joins group on topic, starting at the topic's first record when the group
// has committed nothing.
func NewGroupReader(c Config, group, topic string) *GroupReader {
	return &GroupReader{r: kafkago.NewReader(kafkago.ReaderConfig{
		Brokers:           c.Brokers,
		Dialer:            c.dialer(),
		GroupID:           group,
		Topic:             topic,
		MinBytes:          1,
		MaxBytes:          4 << 20,
		MaxWait:           c.FetchMaxWait,
		StartOffset:       kafkago.FirstOffset,
		SessionTimeout:    10 * time.Second,
		RebalanceTimeout:  10 * time.Second,
		HeartbeatInterval: time.Second,
		JoinGroupBackoff:  time.Second,
		CommitInterval:    0, // commits are synchronous: Commit returns once the broker has them
	})}
}

// Fetch returns the next record.
func (g *GroupReader) Fetch(ctx context.Context) (Record, error) {
	m, err := g.r.FetchMessage(ctx)
	if err != nil {
		return Record{}, err
	}
	return fromMessage(m), nil
}

// Commit commits, per partition, the offset after the greatest of recs.
func (g *GroupReader) Commit(ctx context.Context, recs ...Record) error {
	msgs := make([]kafkago.Message, len(recs))
	for i, r := range recs {
		msgs[i] = kafkago.Message{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset}
	}
	if err := g.r.CommitMessages(ctx, msgs...); err != nil {
		return fmt.Errorf("cannot commit to group %s: %w", g.r.Config().GroupID, err)
	}
	return nil
}

// Close leaves the group.
func (g *GroupReader) Close() error { return g.r.Close() }
