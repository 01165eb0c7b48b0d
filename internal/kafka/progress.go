package kafka

import (
	"context"
	"fmt"
	"sync"
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
//
// It joins the group only once the topic exists. kafka-go's group reader that joins before
// its topic is made (a child site started before its parent's broker, or before the parent
// made ref.<parent>) is assigned no partition and never reads, even once the topic appears —
// its partition watch misses a topic made between the join and the watch's first look — so
// the first Fetch waits for the topic's partitions, and returns an error to log every 30 s
// while they are not there.
type GroupReader struct {
	c            Config
	group, topic string

	mu     sync.Mutex
	r      *kafkago.Reader
	closed bool
}

// groupReaderPatience is how long the first Fetch waits for the topic before it returns an
// error (the caller logs it and calls again).
var groupReaderPatience = 30 * time.Second

// NewGroupReader reads topic in group, starting at the topic's first record when the group
// has committed nothing; it joins the group at the first Fetch that finds the topic.
func NewGroupReader(c Config, group, topic string) *GroupReader {
	return &GroupReader{c: c, group: group, topic: topic}
}

// reader returns the kafka-go reader, made once the topic has partitions.
func (g *GroupReader) reader(ctx context.Context) (*kafkago.Reader, error) {
	g.mu.Lock()
	r, closed := g.r, g.closed
	g.mu.Unlock()
	switch {
	case closed:
		return nil, fmt.Errorf("group reader of %s is closed", g.topic)
	case r != nil:
		return r, nil
	}
	wait, cancel := context.WithTimeout(ctx, groupReaderPatience)
	defer cancel()
	for {
		_, err := Partitions(wait, g.c, g.topic)
		if err == nil {
			break
		}
		select {
		case <-wait.Done():
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("topic %s is not there yet (waited %s): %w", g.topic, groupReaderPatience, err)
		case <-time.After(time.Second):
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil, fmt.Errorf("group reader of %s is closed", g.topic)
	}
	if g.r == nil {
		g.r = kafkago.NewReader(kafkago.ReaderConfig{
			Brokers:           g.c.Brokers,
			Dialer:            g.c.dialer(),
			GroupID:           g.group,
			Topic:             g.topic,
			MinBytes:          1,
			MaxBytes:          4 << 20,
			MaxWait:           g.c.FetchMaxWait,
			StartOffset:       kafkago.FirstOffset,
			SessionTimeout:    10 * time.Second,
			RebalanceTimeout:  10 * time.Second,
			HeartbeatInterval: time.Second,
			JoinGroupBackoff:  time.Second,
			CommitInterval:    0, // commits are synchronous: Commit returns once the broker has them
		})
	}
	return g.r, nil
}

// Fetch returns the next record.
func (g *GroupReader) Fetch(ctx context.Context) (Record, error) {
	r, err := g.reader(ctx)
	if err != nil {
		return Record{}, err
	}
	m, err := r.FetchMessage(ctx)
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
	g.mu.Lock()
	r := g.r
	g.mu.Unlock()
	if r == nil {
		return fmt.Errorf("cannot commit to group %s: nothing was fetched", g.group)
	}
	if err := r.CommitMessages(ctx, msgs...); err != nil {
		return fmt.Errorf("cannot commit to group %s: %w", g.group, err)
	}
	return nil
}

// Close leaves the group (if it joined).
func (g *GroupReader) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = true
	if g.r == nil {
		return nil
	}
	return g.r.Close()
}
