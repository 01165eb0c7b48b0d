package kafka

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

func TestRecordTranslation(t *testing.T) {
	m := kafkago.Message{Topic: "t", Partition: 3, Offset: 9, Key: []byte("k"), Value: []byte("v"), Time: time.UnixMilli(1000),
		Headers: []kafkago.Header{{Key: "a", Value: []byte("1")}, {Key: "b"}}}
	r := fromMessage(m)
	want := Record{Topic: "t", Partition: 3, Offset: 9, Key: []byte("k"), Value: []byte("v"), Time: time.UnixMilli(1000),
		Headers: []Header{{Key: "a", Value: []byte("1")}, {Key: "b"}}}
	if !reflect.DeepEqual(r, want) {
		t.Errorf("fromMessage = %+v, want %+v", r, want)
	}
	back := toMessage(r)
	m.Topic, m.Partition, m.Offset = "", 0, 0 // the producer's topic and partitioner decide
	if !reflect.DeepEqual(back, m) {
		t.Errorf("toMessage = %+v, want %+v", back, m)
	}
}

func TestTooLarge(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{kafkago.MessageTooLargeError{}, true},
		{fmt.Errorf("write: %w", kafkago.MessageSizeTooLarge), true},
		{kafkago.WriteErrors{nil, kafkago.MessageSizeTooLarge}, true},
		{kafkago.WriteErrors{kafkago.LeaderNotAvailable}, false},
		{errors.New("timeout"), false},
	} {
		if got := tooLarge(c.err); got != c.want {
			t.Errorf("tooLarge(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

// Against the embedded broker: what Producer writes, ReadAll and a GroupConsumer's generation
// read back as the same records, in the partition PartitionOf names; a commit leaves no lag;
// a record over the topic's size is ErrRecordTooLarge.
func TestProduceAndConsume(t *testing.T) {
	b, err := StartEmbedded(EmbeddedConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	c := DefaultConfig()
	c.Brokers, c.Partitions, c.BatchBytes = b.Addrs(), 4, 64<<10
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const topic = "state.T"
	if err := EnsureTopic(ctx, c, topic); err != nil {
		t.Fatal(err)
	}
	p := NewProducer(c, topic)
	defer p.Close()
	sent := map[string]Record{}
	var recs []Record
	for i := range 5 {
		r := Record{Key: []byte(fmt.Sprint("client-", i)), Value: []byte(fmt.Sprint("report ", i)), Time: time.UnixMilli(int64(1000 + i)),
			Headers: []Header{{Key: "v", Value: []byte("1")}}}
		sent[string(r.Key)] = r
		recs = append(recs, r)
	}
	if err := p.Produce(ctx, recs...); err != nil {
		t.Fatal(err)
	}
	if err := p.Produce(ctx, Record{Key: []byte("big"), Value: bytes.Repeat([]byte("x"), 128<<10)}); !errors.Is(err, ErrRecordTooLarge) {
		t.Errorf("a record over the topic's size: %v, want ErrRecordTooLarge", err)
	}
	check := func(how string, r Record) {
		t.Helper()
		want, ok := sent[string(r.Key)]
		switch {
		case !ok:
			t.Errorf("%s: unexpected record %+v", how, r)
		case r.Topic != topic || !bytes.Equal(r.Value, want.Value) || !reflect.DeepEqual(r.Headers, want.Headers) || !r.Time.Equal(want.Time):
			t.Errorf("%s: %+v, want %+v", how, r, want)
		case r.Partition != PartitionOf(r.Key, c.Partitions):
			t.Errorf("%s: %s in partition %d, want %d", how, r.Key, r.Partition, PartitionOf(r.Key, c.Partitions))
		}
	}
	n := 0
	if err := ReadAll(ctx, c, topic, func(r Record) error { n++; check("ReadAll", r); return nil }); err != nil || n != len(sent) {
		t.Fatalf("ReadAll read %d records (err %v), want %d", n, err, len(sent))
	}

	g, err := NewGroupConsumer(c, "group", topic)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	gen, err := g.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(gen.Partitions(topic)); got != c.Partitions {
		t.Errorf("assigned %d partitions, want all %d", got, c.Partitions)
	}
	var fetched []Record
	for range sent {
		r, err := gen.Fetch(ctx)
		if err != nil {
			t.Fatal(err)
		}
		check("Fetch", r)
		fetched = append(fetched, r)
	}
	if err := gen.Commit(ctx, fetched...); err != nil {
		t.Fatal(err)
	}
	lag, err := GroupLag(c, "group", topic)(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for part, l := range lag[topic] {
		if l != 0 {
			t.Errorf("lag of partition %d is %d after the commit, want 0", part, l)
		}
	}
	if len(lag[topic]) != c.Partitions {
		t.Errorf("lag of %d partitions, want %d", len(lag[topic]), c.Partitions)
	}
	gen.Release()
}
