package kafka

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"runtime"
	"testing"
	"time"
)

// Anything that connects to the embedded broker and sends what is not Kafka (an HTTP request's
// "GET " reads as a 1.1 GiB request) is disconnected before the broker allocates the size it
// claims; the broker keeps serving Kafka clients.
func TestEmbeddedBrokerBoundsRequestSize(t *testing.T) {
	b, err := StartEmbedded(EmbeddedConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range 3 {
		c, err := net.Dial("tcp", b.Addrs()[0])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(c, "GET /metrics HTTP/1.1\r\nHost: statepipe\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if n, err := c.Read(make([]byte, 64)); err == nil {
			t.Errorf("the broker answered %d bytes to an HTTP request, want the connection closed", n)
		} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Error("the broker kept the connection of an HTTP request open (reading its 1.1 GiB claimed body)")
		}
		_ = c.Close()
	}
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if grew := int64(after.TotalAlloc - before.TotalAlloc); grew > 256<<20 {
		t.Errorf("the heap grew by %d MiB for three HTTP requests: the broker allocated what they claimed", grew>>20)
	}

	c := DefaultConfig()
	c.Brokers = b.Addrs()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := EnsureTopic(ctx, c, "state.T"); err != nil {
		t.Fatalf("the broker no longer serves Kafka clients: %v", err)
	}
	p := NewProducer(c, "state.T")
	defer p.Close()
	if err := p.Produce(ctx, Record{Key: []byte("k"), Value: make([]byte, 4<<20)}); err != nil {
		t.Fatalf("a 4 MiB record: %v", err)
	}
}

// The bound follows the producers' batch size: Kafka's default while batches fit in it, a batch
// and its framing above; a request within the bound passes, one over it is refused.
func TestEmbeddedRequestBoundFollowsTheBatchSize(t *testing.T) {
	for batch, want := range map[int64]int64{16 << 20: MaxEmbeddedRequest, 200 << 20: 201 << 20} {
		if got := EmbeddedMaxRequest(batch); got != want {
			t.Errorf("EmbeddedMaxRequest(%d) = %d, want %d", batch, got, want)
		}
	}
	frame := func(size uint32) []byte {
		return binary.BigEndian.AppendUint32(nil, size)
	}
	for _, tc := range []struct {
		size    uint32
		refused bool
	}{{200 << 20, false}, {201 << 20, false}, {201<<20 + 1, true}} {
		server, client := net.Pipe()
		c := &boundedConn{Conn: server, max: EmbeddedMaxRequest(200 << 20)}
		go func() { _, _ = client.Write(frame(tc.size)); _ = client.Close() }()
		_, err := io.ReadAll(c)
		if got := errors.Is(err, errRequestTooLarge); got != tc.refused {
			t.Errorf("a request claiming %d bytes: refused %v (%v), want %v", tc.size, got, err, tc.refused)
		}
		_ = server.Close()
	}
}
