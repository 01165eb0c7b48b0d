package kafka

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

// A GroupReader made while its broker is down (a child site started before its parent) reads
// the topic once the broker is up and the topic is made, however late: the reader neither gives
// up after its dials fail nor stays in a generation that joined before the topic existed.
func TestGroupReaderOfABrokerThatStartsLate(t *testing.T) {
	for _, c := range []struct {
		name                    string
		brokerAfter, topicAfter time.Duration
	}{
		{"broker and topic there", 0, 0},
		{"broker 8 s late", 8 * time.Second, 0},
		{"topic 8 s after the broker", 0, 8 * time.Second},
	} {
		t.Run(c.name, func(t *testing.T) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			port := l.Addr().(*net.TCPAddr).Port
			_ = l.Close()
			cfg := DefaultConfig()
			cfg.Brokers, cfg.Partitions = []string{l.Addr().String()}, 2
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			const topic = "ref.LATE"
			start := func() *Embedded {
				b, err := StartEmbedded(EmbeddedConfig{Port: port})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(b.Close)
				return b
			}
			if c.brokerAfter == 0 {
				start()
			}
			r := NewGroupReader(cfg, "late-group", topic)
			defer r.Close()
			got := make(chan Record, 1)
			go func() {
				rec, err := r.Fetch(ctx)
				if err == nil {
					got <- rec
				}
			}()
			if c.brokerAfter > 0 {
				time.Sleep(c.brokerAfter)
				start()
			}
			time.Sleep(c.topicAfter)
			if err := EnsureTopic(ctx, cfg, topic); err != nil {
				t.Fatal(err)
			}
			p := NewProducer(cfg, topic)
			defer p.Close()
			if err := p.Produce(ctx, Record{Key: []byte("k"), Value: []byte("v")}); err != nil {
				t.Fatal(err)
			}
			select {
			case rec := <-got:
				if string(rec.Value) != "v" {
					t.Errorf("read %q, want v", rec.Value)
				}
			case <-time.After(45 * time.Second):
				t.Fatal("the reader read nothing 45 s after the record was written")
			}
		})
	}
}

// A topic that never comes: Fetch says so, naming it, and does not hang past its patience.
func TestGroupReaderOfATopicThatNeverComes(t *testing.T) {
	b, err := StartEmbedded(EmbeddedConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	defer func(p time.Duration) { groupReaderPatience = p }(groupReaderPatience)
	groupReaderPatience = 2 * time.Second
	cfg := DefaultConfig()
	cfg.Brokers = b.Addrs()
	r := NewGroupReader(cfg, "never-group", "ref.NEVER")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := r.Fetch(ctx); err == nil || !strings.Contains(err.Error(), "topic ref.NEVER is not there yet") {
		t.Errorf("Fetch: %v, want the topic named", err)
	}
	if err := r.Close(); err != nil {
		t.Error(err)
	}
	if _, err := r.Fetch(ctx); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Fetch after Close: %v, want closed", err)
	}
}
