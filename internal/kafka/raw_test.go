package kafka

import (
	"context"
	"fmt"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

func TestRawClient(t *testing.T) {
	broker, err := StartEmbedded(EmbeddedConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer broker.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := DefaultConfig()
	c.Brokers = broker.Addrs()
	r, err := NewRawClient(c)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	// One keyed record lands in the partition Partition names for its key.
	const probe = "raw-probe"
	if _, err := r.CreateTopic(ctx, probe); err != nil {
		t.Fatal(err)
	}
	key := []byte("client-0042")
	if _, err := r.Produce(ctx, probe, [][]byte{key}, [][]byte{[]byte("v")}, 1, 1); err != nil {
		t.Fatal(err)
	}
	ends, err := r.partitionRanges(ctx, probe)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ends {
		want := int64(0)
		if e.partition == r.Partition(key) {
			want = 1
		}
		if got := e.last - e.first; got != want {
			t.Errorf("partition %d holds %d records, want %d (Partition gives the key %d)", e.partition, got, want, r.Partition(key))
		}
	}

	const topic = "raw-ceiling"
	parts, err := r.CreateTopic(ctx, topic)
	if err != nil || parts != c.Partitions {
		t.Fatalf("CreateTopic = %d, %v; want %d partitions", parts, err, c.Partitions)
	}
	var keys, values [][]byte
	var size int64
	for i := range 2500 {
		keys = append(keys, fmt.Appendf(nil, "client-%04d", i%300))
		values = append(values, fmt.Appendf(nil, "value %d", i))
		size += int64(len(values[i]))
	}
	if took, err := r.Produce(ctx, topic, keys, values, 4, 1000); err != nil || took <= 0 {
		t.Fatalf("Produce = %v, %v", took, err)
	}
	took, n, bytes, err := r.Consume(ctx, topic)
	if err != nil || took <= 0 {
		t.Fatalf("Consume = %v, %v", took, err)
	}
	if n != int64(len(values)) || bytes != size {
		t.Errorf("consumed %d records of %d bytes, produced %d of %d", n, bytes, len(values), size)
	}

	for _, tp := range []string{topic, probe} {
		if err := r.DeleteTopic(ctx, tp); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.DeleteTopic(ctx, topic); err != nil {
		t.Errorf("deleting a topic already gone: %v", err)
	}
	// A client of its own: the raw client's transport caches the metadata it has seen.
	fresh := &kafkago.Client{Addr: kafkago.TCP(c.Brokers...), Transport: c.transport()}
	defer fresh.Transport.(*kafkago.Transport).CloseIdleConnections()
	md, err := fresh.Metadata(ctx, &kafkago.MetadataRequest{}) // every topic
	if err != nil {
		t.Fatal(err)
	}
	for _, tp := range md.Topics {
		if tp.Name == topic || tp.Name == probe {
			t.Errorf("topic %s still exists", tp.Name)
		}
	}
}
