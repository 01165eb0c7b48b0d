package kafka

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

// newWriter returns a producer for topic that waits for every in-sync replica (acks=all)
// before WriteMessages returns, so a caller answers its client only after Kafka has the
// records. Records are partitioned by key with murmur2, the Java client's partitioner, so
// statepipe and other Kafka tools agree on where a client's records live.
func newWriter(c Config, topic string) *kafkago.Writer {
	return &kafkago.Writer{
		Addr:         kafkago.TCP(c.Brokers...),
		Topic:        topic,
		Balancer:     &kafkago.Murmur2Balancer{},
		RequiredAcks: kafkago.RequireAll, // kafka-go's zero value is acks=1 only if set; be explicit
		BatchTimeout: c.BatchTimeout,
		BatchBytes:   c.BatchBytes,
		// kafka-go allocates (and clears) a batch's message slice at its full BatchSize for
		// every batch: at 10,000 that was ~4 % of a storm's CPU, batches lasting 2 ms. 1,000
		// records of a few KiB already fill a batch to BatchBytes' order; a busier partition
		// sends more batches.
		BatchSize: 1000,
		// Retries are the caller's: ingest answers 503 and the client retries, so a slow
		// broker shows up as back-pressure rather than as a growing queue in memory.
		MaxAttempts:  3,
		WriteTimeout: 10 * time.Second,
		ReadTimeout:  10 * time.Second,
		Compression:  kafkago.Lz4,
		// A transport of its own: kafka-go's shared DefaultTransport caches the metadata of
		// every topic it has seen for 6 s, so a writer for a topic created after that cache was
		// filled (a second site, a new compacted topic) got UnknownTopicOrPartition until it
		// expired.
		Transport: c.transport(topic),
	}
}

// EnsureTopic creates topic with the config's partition count and replication factor unless
// it exists. It is safe to call from every role at start.
func EnsureTopic(ctx context.Context, c Config, topic string, extra ...TopicSetting) error {
	var lastErr error
	for attempt := 0; attempt < 20; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return fmt.Errorf("cannot create topic %s: %w (last error: %v)", topic, ctx.Err(), lastErr)
			case <-time.After(250 * time.Millisecond):
			}
		}
		if lastErr = ensureTopicOnce(ctx, c, topic, extra); lastErr == nil {
			// The controller accepted the topic; a KRaft broker lists it a moment later, and
			// producing before then fails with UnknownTopicOrPartition. Return when it is usable.
			_, err := Partitions(ctx, c, topic)
			return err
		}
	}
	return fmt.Errorf("cannot create topic %s on %v: %w", topic, c.Brokers, lastErr)
}

func ensureTopicOnce(ctx context.Context, c Config, topic string, extra []TopicSetting) error {
	d := c.dialer()
	conn, err := d.DialContext(ctx, "tcp", c.Brokers[0])
	if err != nil {
		return err
	}
	defer conn.Close()
	ctrl, err := conn.Controller()
	if err != nil {
		return err
	}
	cc, err := d.DialContext(ctx, "tcp", net.JoinHostPort(ctrl.Host, strconv.Itoa(ctrl.Port)))
	if err != nil {
		return err
	}
	defer cc.Close()
	entries := []kafkago.ConfigEntry{{ConfigName: "max.message.bytes", ConfigValue: strconv.FormatInt(c.BatchBytes, 10)}}
	for _, e := range extra {
		entries = append(entries, kafkago.ConfigEntry{ConfigName: e.Name, ConfigValue: e.Value})
	}
	err = cc.CreateTopics(kafkago.TopicConfig{
		Topic:             topic,
		NumPartitions:     c.Partitions,
		ReplicationFactor: c.ReplicationFactor,
		ConfigEntries:     entries,
	})
	if err != nil && !errors.Is(err, kafkago.TopicAlreadyExists) {
		return err
	}
	return nil
}

// newPartitionReader reads one partition of topic from its start, outside any consumer group
// (every reader sees every record: for small compacted topics each node mirrors in full).
func newPartitionReader(c Config, topic string, partition int) *kafkago.Reader {
	return kafkago.NewReader(kafkago.ReaderConfig{
		Brokers:     c.Brokers,
		Dialer:      c.dialer(),
		Topic:       topic,
		Partition:   partition,
		MinBytes:    1,
		MaxBytes:    1 << 20,
		MaxWait:     c.FetchMaxWait,
		StartOffset: kafkago.FirstOffset,
	})
}

// Partitions returns the partition ids of topic. A topic created a moment ago may not be in
// the broker's metadata yet (a KRaft broker answers UnknownTopicOrPartition until it is), so
// that answer is retried for up to 10 s.
func Partitions(ctx context.Context, c Config, topic string) ([]int, error) {
	d := c.dialer()
	var lastErr error
	for attempt := 0; attempt < 40; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return nil, fmt.Errorf("cannot read partitions of %s: %w (last error: %v)", topic, ctx.Err(), lastErr)
			case <-time.After(250 * time.Millisecond):
			}
		}
		conn, err := d.DialContext(ctx, "tcp", c.Brokers[0])
		if err != nil {
			return nil, fmt.Errorf("cannot read partitions of %s: %w", topic, err)
		}
		ps, err := conn.ReadPartitions(topic)
		_ = conn.Close()
		if err == nil && len(ps) > 0 && allLed(ps) {
			ids := make([]int, len(ps))
			for i, p := range ps {
				ids[i] = p.ID
			}
			return ids, nil
		}
		if err != nil && !errors.Is(err, kafkago.UnknownTopicOrPartition) && !errors.Is(err, kafkago.LeaderNotAvailable) {
			return nil, fmt.Errorf("cannot read partitions of %s: %w", topic, err)
		}
		lastErr = err
	}
	return nil, fmt.Errorf("cannot read partitions of %s: not in the broker's metadata after 10 s (last error: %v)", topic, lastErr)
}

// allLed reports whether every partition has a leader (a new topic's leaders are elected just
// after it appears in the metadata).
func allLed(ps []kafkago.Partition) bool {
	for _, p := range ps {
		if p.Leader.Host == "" || p.Leader.ID < 0 {
			return false
		}
	}
	return true
}

// topicClient is a kafka-go client for one topic whose partition list is looked up once
// (statepipe never changes a topic's partitions in place).
type topicClient struct {
	c     Config
	topic string
	cl    *kafkago.Client
	mu    sync.Mutex // guards parts: one topicClient may serve concurrent requests
	parts []int
}

func newTopicClient(c Config, topic string) *topicClient {
	return &topicClient{c: c, topic: topic,
		cl: &kafkago.Client{Addr: kafkago.TCP(c.Brokers...), Timeout: 5 * time.Second, Transport: c.transport(topic)}}
}

func (t *topicClient) partitions(ctx context.Context) ([]int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.parts == nil {
		p, err := Partitions(ctx, t.c, t.topic)
		if err != nil {
			return nil, err
		}
		t.parts = p
	}
	return t.parts, nil
}

func committedOffsets(ctx context.Context, cl *kafkago.Client, group, topic string, parts []int) (map[int]int64, error) {
	resp, err := cl.OffsetFetch(ctx, &kafkago.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: parts}})
	if err != nil {
		return nil, fmt.Errorf("cannot read committed offsets of group %s: %w", group, err)
	}
	if resp.Error != nil {
		return nil, fmt.Errorf("cannot read committed offsets of group %s: %w", group, resp.Error)
	}
	out := map[int]int64{}
	for _, p := range resp.Topics[topic] {
		if p.Error != nil {
			return nil, fmt.Errorf("cannot read committed offset of %s/%d: %w", topic, p.Partition, p.Error)
		}
		if p.CommittedOffset >= 0 {
			out[p.Partition] = p.CommittedOffset
		}
	}
	return out, nil
}

// GroupLag returns a function reading, per topic and partition, how many records group has
// yet to commit: the partition's end offset minus the group's committed offset (minus the
// first retained offset when the group has committed nothing there). This is the consumer lag
// a kafka-exporter would show, read from the broker, so it grows while the consumer is stuck.
func GroupLag(c Config, group string, topics ...string) func(ctx context.Context) (map[string]map[int]int64, error) {
	tcs := make([]*topicClient, len(topics))
	for i, t := range topics {
		tcs[i] = newTopicClient(c, t)
	}
	return func(ctx context.Context) (map[string]map[int]int64, error) {
		out := make(map[string]map[int]int64, len(tcs))
		for _, tc := range tcs {
			lag, err := tc.lag(ctx, group)
			if err != nil {
				return nil, err
			}
			out[tc.topic] = lag
		}
		return out, nil
	}
}

// GroupCaughtUp returns a function that returns once group has committed every record
// written to topic before it was called, on every partition. Read your writes: a caller that
// produced a record (acknowledged) and then calls it returns once the group's consumer
// processed the record and committed past it. An error only when ctx ends first, with the
// last state seen.
func GroupCaughtUp(c Config, group, topic string) func(ctx context.Context) error {
	g := newGroupWatch(c, group, topic)
	return func(ctx context.Context) error { return g.wait(ctx, nil) }
}

// GroupPastKey is GroupCaughtUp for the one partition a record keyed key is produced to:
// a reader of one record does not wait for the others of the topic.
func GroupPastKey(c Config, group, topic string) func(ctx context.Context, key []byte) error {
	g := newGroupWatch(c, group, topic)
	return g.wait
}

// groupWatch polls a group's committed offsets on a topic for every caller waiting on it at
// once: one request every 50 ms while anyone waits, however many wait.
type groupWatch struct {
	tc    *topicClient
	group string

	mu      sync.Mutex
	waiters map[*foldWaiter]struct{}
	polling bool
	last    string // what the last poll saw, for a waiter whose time ran out
}

type foldWaiter struct {
	ends map[int]int64 // partition → the offset the group must commit
	done chan struct{}
}

func newGroupWatch(c Config, group, topic string) *groupWatch {
	return &groupWatch{tc: newTopicClient(c, topic), group: group, waiters: map[*foldWaiter]struct{}{},
		last: "no answer from the broker yet"}
}

// wait reads the end offsets of the topic's partitions (key's only, when key is not nil)
// now, and returns once the group committed up to each.
func (g *groupWatch) wait(ctx context.Context, key []byte) error {
	var ends map[int]int64
	for {
		var err error
		if ends, err = g.tc.endOffsets(ctx, key); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %v", ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	w := &foldWaiter{ends: ends, done: make(chan struct{})}
	g.mu.Lock()
	g.waiters[w] = struct{}{}
	if !g.polling {
		g.polling = true
		go g.poll()
	}
	g.mu.Unlock()
	select {
	case <-w.done:
		return nil
	case <-ctx.Done():
		g.mu.Lock()
		defer g.mu.Unlock()
		if _, waiting := g.waiters[w]; !waiting {
			return nil // released meanwhile
		}
		delete(g.waiters, w)
		return fmt.Errorf("%w: %s", ctx.Err(), g.last)
	}
}

// poll reads the committed offsets every 50 ms and releases the waiters they satisfy; it
// ends when nobody waits.
func (g *groupWatch) poll() {
	for {
		g.mu.Lock()
		if len(g.waiters) == 0 {
			g.polling = false
			g.mu.Unlock()
			return
		}
		parts := map[int]bool{}
		for w := range g.waiters {
			for p := range w.ends {
				parts[p] = true
			}
		}
		g.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		committed, err := committedOffsets(ctx, g.tc.cl, g.group, g.tc.topic, slices.Sorted(maps.Keys(parts)))
		cancel()
		g.mu.Lock()
		if err != nil {
			g.last = err.Error()
		} else {
			var behind int64
			for w := range g.waiters {
				if n := recordsBehind(committed, w.ends); n == 0 {
					close(w.done)
					delete(g.waiters, w)
				} else {
					behind = max(behind, n)
				}
			}
			g.last = fmt.Sprintf("group %s has up to %d record(s) of %s to fold", g.group, behind, g.tc.topic)
		}
		g.mu.Unlock()
		time.Sleep(50 * time.Millisecond)
	}
}

// recordsBehind counts the records between committed and ends, over ends' partitions.
func recordsBehind(committed, ends map[int]int64) (n int64) {
	for p, end := range ends {
		if c := committed[p]; c < end {
			n += end - c
		}
	}
	return n
}

// endOffsets returns the next offset of each partition of the topic (of key's only, when key
// is not nil).
func (t *topicClient) endOffsets(ctx context.Context, key []byte) (map[int]int64, error) {
	parts, err := t.partitions(ctx)
	if err != nil {
		return nil, err
	}
	if key != nil {
		parts = []int{PartitionOf(key, len(parts))}
	}
	offs, err := t.listOffsets(ctx, parts, false)
	if err != nil {
		return nil, err
	}
	ends := make(map[int]int64, len(offs))
	for p, po := range offs {
		ends[p] = po.LastOffset
	}
	return ends, nil
}

// listOffsets reads the end offset (and the first retained one, when first) of each of parts.
func (t *topicClient) listOffsets(ctx context.Context, parts []int, first bool) (map[int]kafkago.PartitionOffsets, error) {
	reqs := make([]kafkago.OffsetRequest, 0, 2*len(parts))
	for _, p := range parts {
		if first {
			reqs = append(reqs, kafkago.FirstOffsetOf(p))
		}
		reqs = append(reqs, kafkago.LastOffsetOf(p))
	}
	resp, err := t.cl.ListOffsets(ctx, &kafkago.ListOffsetsRequest{Topics: map[string][]kafkago.OffsetRequest{t.topic: reqs}})
	if err != nil {
		return nil, fmt.Errorf("cannot read end offsets of %s: %w", t.topic, err)
	}
	out := make(map[int]kafkago.PartitionOffsets, len(parts))
	for _, po := range resp.Topics[t.topic] {
		if po.Error != nil {
			return nil, fmt.Errorf("cannot read end offset of %s/%d: %w", t.topic, po.Partition, po.Error)
		}
		out[po.Partition] = po
	}
	return out, nil
}

// lag reads group's lag on each partition of the topic.
func (t *topicClient) lag(ctx context.Context, group string) (map[int]int64, error) {
	parts, err := t.partitions(ctx)
	if err != nil {
		return nil, err
	}
	committed, err := committedOffsets(ctx, t.cl, group, t.topic, parts)
	if err != nil {
		return nil, err
	}
	offs, err := t.listOffsets(ctx, parts, true)
	if err != nil {
		return nil, err
	}
	lag := map[int]int64{}
	for _, po := range offs {
		from, ok := committed[po.Partition]
		if !ok {
			from = po.FirstOffset
		}
		lag[po.Partition] = max(po.LastOffset-from, 0)
	}
	return lag, nil
}
