package kafka

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

// GroupConsumer is a member of a consumer group that hands out one generation of the group at
// a time, with the partitions the group assigned to this member (kafka-go's ConsumerGroup,
// which its Reader hides): the projector needs to know which partitions it owns, because
// only their owner may write their aggregate cells.
//
// A generation ends when the group rebalances (a member joins or leaves, the coordinator
// moves). Its readers stop at once, and this member does not rejoin the group until the
// caller has released the generation: the group does not hand this member's partitions to
// another member before the caller stopped working on them, unless the caller takes longer
// than the rebalance timeout (then the group evicts it; the projector's epochs make what it
// writes afterwards invisible, see package projector).
type GroupConsumer struct {
	c      Config
	group  string
	topics []string
	cg     *kafkago.ConsumerGroup
	cl     *kafkago.Client
}

// NewGroupConsumer joins group on topics (records of every topic come through one fetch).
func NewGroupConsumer(c Config, group string, topics ...string) (*GroupConsumer, error) {
	cg, err := kafkago.NewConsumerGroup(kafkago.ConsumerGroupConfig{
		ID:      group,
		Brokers: c.Brokers,
		Dialer:  c.dialer(),
		Topics:  topics,
		// A consumer that dies is noticed after SessionTimeout; its partitions then move. A
		// member that does not come back to rejoin within RebalanceTimeout is evicted.
		SessionTimeout:    10 * time.Second,
		RebalanceTimeout:  10 * time.Second,
		HeartbeatInterval: time.Second,
		JoinGroupBackoff:  time.Second,
		StartOffset:       kafkago.FirstOffset,
		Timeout:           5 * time.Second,
	})
	if err != nil {
		return nil, fmt.Errorf("cannot join consumer group %s: %w", group, err)
	}
	return &GroupConsumer{c: c, group: group, topics: topics, cg: cg,
		cl: &kafkago.Client{Addr: kafkago.TCP(c.Brokers...), Timeout: 5 * time.Second, Transport: c.transport(topics...)}}, nil
}

// Close leaves the group.
func (g *GroupConsumer) Close() error { return g.cg.Close() }

// Next blocks until the group gives this member a generation, and starts reading its
// partitions from the group's committed offsets. Release the previous generation first.
func (g *GroupConsumer) Next(ctx context.Context) (*Generation, error) {
	gen, err := g.cg.Next(ctx)
	if err != nil {
		return nil, err
	}
	out := &Generation{g: g, gen: gen, msgs: make(chan kafkago.Message, 1000),
		ended: make(chan struct{}), released: make(chan struct{}), parts: map[string][]int{}}
	for topic, as := range gen.Assignments {
		for _, a := range as {
			out.parts[topic] = append(out.parts[topic], a.ID)
			gen.Start(func(ctx context.Context) { out.read(ctx, topic, a) })
		}
	}
	// The generation (and the group's next join) waits for this until the caller released it.
	gen.Start(func(ctx context.Context) {
		<-ctx.Done()
		close(out.ended)
		<-out.released
	})
	return out, nil
}

// Generation is one generation of the group as this member sees it.
type Generation struct {
	g        *GroupConsumer
	gen      *kafkago.Generation
	parts    map[string][]int
	msgs     chan kafkago.Message
	ended    chan struct{}
	released chan struct{}
	once     sync.Once
}

// ID is the group's generation id.
func (x *Generation) ID() int32 { return x.gen.ID }

// Member is this member's id in the group.
func (x *Generation) Member() string { return x.gen.MemberID }

// Partitions returns the partitions of topic assigned to this member.
func (x *Generation) Partitions(topic string) []int { return x.parts[topic] }

// read feeds the records of one assigned partition, from the group's committed offset, until
// the generation ends.
func (x *Generation) read(ctx context.Context, topic string, a kafkago.PartitionAssignment) {
	r := kafkago.NewReader(kafkago.ReaderConfig{
		Brokers:   x.g.c.Brokers,
		Dialer:    x.g.c.dialer(),
		Topic:     topic,
		Partition: a.ID,
		MinBytes:  1,
		MaxBytes:  8 << 20, // per partition and fetch: eight partitions fetch at once
		MaxWait:   x.g.c.FetchMaxWait,
		// Records wait in the generation's queue (1,000, shared); each partition's own queue
		// stays short so that eight partitions do not hold eight times as many in memory.
		QueueCapacity:  100,
		StartOffset:    kafkago.FirstOffset,
		ReadBackoffMin: 10 * time.Millisecond,
		ReadBackoffMax: 250 * time.Millisecond,
	})
	defer r.Close()
	if err := r.SetOffset(a.Offset); err != nil {
		return // ends the generation; the member rejoins
	}
	for {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			select { // kafka-go retries most errors inside; back off on the rest
			case <-ctx.Done():
				return
			case <-time.After(250 * time.Millisecond):
			}
			continue
		}
		select {
		case x.msgs <- m:
		case <-ctx.Done():
			return
		}
	}
}

// Fetch returns the next record of this member's partitions (in order within each
// partition), or an error wrapping ErrGenerationEnded once the group has begun to rebalance:
// records fetched and not committed are then redelivered to whoever owns their partition next.
func (x *Generation) Fetch(ctx context.Context) (Record, error) {
	select {
	case <-x.ended:
		return Record{}, ErrGenerationEnded
	default:
	}
	select {
	case m := <-x.msgs:
		return fromMessage(m), nil
	case <-x.ended:
		return Record{}, ErrGenerationEnded
	case <-ctx.Done():
		return Record{}, ctx.Err()
	}
}

// Commit commits, for each partition of recs, the offset after its greatest record. The
// coordinator refuses it once the generation is over.
func (x *Generation) Commit(_ context.Context, recs ...Record) error {
	offsets := map[string]map[int]int64{}
	for _, r := range recs {
		if offsets[r.Topic] == nil {
			offsets[r.Topic] = map[int]int64{}
		}
		offsets[r.Topic][r.Partition] = max(offsets[r.Topic][r.Partition], r.Offset+1)
	}
	return x.gen.CommitOffsets(offsets)
}

// Alive asks the group coordinator whether this generation is still the group's current one
// and this member still in it (a heartbeat): false from the moment a rebalance begins.
func (x *Generation) Alive(ctx context.Context) error {
	fc, err := x.g.cl.FindCoordinator(ctx, &kafkago.FindCoordinatorRequest{Key: x.gen.GroupID, KeyType: kafkago.CoordinatorKeyTypeConsumer})
	if err == nil && fc.Error != nil {
		err = fc.Error
	}
	if err != nil {
		return fmt.Errorf("cannot find the coordinator of group %s: %w", x.gen.GroupID, err)
	}
	addr := kafkago.TCP(net.JoinHostPort(fc.Coordinator.Host, strconv.Itoa(fc.Coordinator.Port)))
	hb, err := x.g.cl.Heartbeat(ctx, &kafkago.HeartbeatRequest{Addr: addr, GroupID: x.gen.GroupID, GenerationID: x.gen.ID, MemberID: x.gen.MemberID})
	if err != nil {
		return fmt.Errorf("cannot ask the coordinator of group %s: %w", x.gen.GroupID, err)
	}
	switch {
	case hb.Error == nil:
	case errors.Is(hb.Error, kafkago.RebalanceInProgress), errors.Is(hb.Error, kafkago.IllegalGeneration),
		errors.Is(hb.Error, kafkago.UnknownMemberId), errors.Is(hb.Error, kafkago.FencedInstanceID):
		return fmt.Errorf("generation %d of group %s is over for member %s (%v): %w", x.gen.ID, x.gen.GroupID, x.gen.MemberID, hb.Error, ErrGenerationEnded)
	default:
		return fmt.Errorf("cannot ask the coordinator of group %s: %w", x.gen.GroupID, hb.Error)
	}
	select {
	case <-x.ended:
		return fmt.Errorf("generation %d of group %s is over: %w", x.gen.ID, x.gen.GroupID, ErrGenerationEnded)
	default:
	}
	return nil
}

// Release tells the group this member has stopped working on the generation, so it may
// rejoin (after the generation ended) — or ends it now (the caller stops).
func (x *Generation) Release() {
	x.once.Do(func() { close(x.released) })
}
