package kafka

import (
	"crypto/tls"
	"fmt"
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
	if cfg.TLS != nil {
		opts = append(opts, kfake.TLS(cfg.TLS))
	}
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
