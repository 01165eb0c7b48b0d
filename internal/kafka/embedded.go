package kafka

import (
	"cmp"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Embedded is the in-process Kafka-protocol broker of embedded mode.
type Embedded struct {
	c *kfake.Cluster
}

// EmbeddedConfig configures the embedded broker.
type EmbeddedConfig struct {
	// Dir persists topics, records and committed offsets; empty keeps them in memory.
	Dir string
	// Port to listen on at 127.0.0.1 (0 picks a free one).
	Port int
	// Users, when set, enable SASL: each is "MECHANISM:user:password" (PLAIN, SCRAM-SHA-256,
	// SCRAM-SHA-512). Tests use it to run statepipe against an authenticating broker.
	Users []string
	// TLS, when set, makes the broker listen with TLS only (SASL_SSL with Users).
	TLS *tls.Config
	// MaxRequest bounds one request's size in bytes (0: MaxEmbeddedRequest). Set it from the
	// producers' batch size (EmbeddedMaxRequest) so that no produce request they send is
	// refused.
	MaxRequest int64
}

// EmbeddedMaxRequest is the request bound for producers whose batches reach batchBytes: Kafka's
// default (MaxEmbeddedRequest), or a batch and 1 MiB for the request's framing when batches are
// larger.
func EmbeddedMaxRequest(batchBytes int64) int64 {
	return max(MaxEmbeddedRequest, batchBytes+1<<20)
}

// StartEmbedded starts a single-broker kfake cluster.
func StartEmbedded(cfg EmbeddedConfig) (*Embedded, error) {
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.Ports(cfg.Port),
		kfake.ClusterID("statepipe-embedded"),
		kfake.DefaultNumPartitions(8),
	}
	if len(cfg.Users) > 0 {
		opts = append(opts, kfake.EnableSASL())
		for _, u := range cfg.Users {
			parts := strings.SplitN(u, ":", 3)
			if len(parts) != 3 {
				return nil, fmt.Errorf("embedded kafka user %q: want MECHANISM:user:password", u)
			}
			opts = append(opts, kfake.Superuser(parts[0], parts[1], parts[2]))
		}
	}
	// The listener bounds every request's size (boundedConn); TLS, when set, is layered under
	// that bound here rather than by kfake, so that the bound reads the decrypted stream.
	opts = append(opts, kfake.ListenFn(func(network, address string) (net.Listener, error) {
		l, err := net.Listen(network, address)
		if err != nil {
			return nil, err
		}
		if cfg.TLS != nil {
			l = tls.NewListener(l, cfg.TLS)
		}
		return boundedListener{Listener: l, max: cmp.Or(cfg.MaxRequest, MaxEmbeddedRequest)}, nil
	}))
	if cfg.Dir != "" {
		if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
			return nil, fmt.Errorf("cannot create kafka data dir %s: %w", cfg.Dir, err)
		}
		opts = append(opts, kfake.DataDir(cfg.Dir))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("cannot start embedded kafka (port %d, dir %q): %w", cfg.Port, cfg.Dir, err)
	}
	return &Embedded{c: c}, nil
}

// Addrs returns the broker addresses (host:port).
func (e *Embedded) Addrs() []string { return e.c.ListenAddrs() }

// Close stops the broker; with a Dir its state is on disk for the next start.
func (e *Embedded) Close() { e.c.Close() }

// MaxEmbeddedRequest bounds one request to the embedded broker by default, as Kafka's
// socket.request.max.bytes does (its default): the broker allocates a request's whole size,
// read from its first four bytes, before reading it, so without a bound any connection could
// make it allocate up to 4 GiB (an HTTP request's "GET " reads as 1.1 GiB).
const MaxEmbeddedRequest = 100 << 20

// errRequestTooLarge closes a connection whose request claims more than the bound.
var errRequestTooLarge = errors.New("kafka request larger than the embedded broker accepts")

type boundedListener struct {
	net.Listener
	max int64
}

func (l boundedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &boundedConn{Conn: c, max: l.max}, nil
}

// boundedConn follows the Kafka framing of what it reads (a 4-byte big-endian size, then that
// many bytes) and fails the read that would hand over a size above max, before the broker
// allocates it.
type boundedConn struct {
	net.Conn
	max  int64
	size [4]byte
	have int   // bytes of the size prefix read so far
	body int64 // bytes of the current request's body still to come
}

func (c *boundedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	for i := 0; i < n; {
		if c.body > 0 {
			step := min(int64(n-i), c.body)
			c.body -= step
			i += int(step)
			continue
		}
		c.size[c.have] = p[i]
		c.have++
		i++
		if c.have == len(c.size) {
			c.have = 0
			c.body = int64(binary.BigEndian.Uint32(c.size[:]))
			if c.body > c.max {
				_ = c.Conn.Close()
				return 0, fmt.Errorf("%w: %d bytes claimed, at most %d", errRequestTooLarge, c.body, c.max)
			}
		}
	}
	return n, err
}
