package kafka

import (
	"errors"
	"flag"
	"os"
	"strings"
	"time"
)

// Config is how a role reaches Kafka.
type Config struct {
	// Brokers is the bootstrap list. Empty in embedded mode, where the composition root fills
	// it with the embedded broker's address.
	Brokers []string
	// Partitions is the partition count used when statepipe creates a state topic. More
	// partitions let more projector instances share a site's load (default 8).
	Partitions int
	// ReplicationFactor for created topics (default 1; use 3 on a production cluster).
	ReplicationFactor int
	// BatchTimeout is how long the producer waits to fill a batch. kafka-go's default is 1 s,
	// a trap for request/response ingest: every report would wait up to a second for its
	// acknowledgement (segmentio/kafka-go#326). 2 ms keeps latency low while concurrent
	// requests still share batches.
	BatchTimeout time.Duration
	// BatchBytes caps one produce batch per partition, and statepipe creates its topics with
	// max.message.bytes of the same value (default 16 MiB): a full scan of a 30,000-update
	// catalog is one ~2.5 MiB record, above Kafka's 1 MiB default record-batch limit. For
	// topics created by operators, set max.message.bytes to at least ingest's max body.
	BatchBytes int64
	// FetchMaxWait bounds how long a fetch waits for data (default 250 ms): low enough that a
	// quiet topic still folds promptly.
	FetchMaxWait time.Duration
	// Security: SASL and TLS towards the brokers.
	Security Security
}

// DefaultConfig returns the connection defaults (the flags' defaults): no brokers (embedded
// mode fills them in), no SASL or TLS.
func DefaultConfig() Config {
	return Config{
		Partitions:        8,
		ReplicationFactor: 1,
		BatchTimeout:      2 * time.Millisecond,
		BatchBytes:        16 << 20,
		FetchMaxWait:      250 * time.Millisecond,
	}
}

// RegisterFlags registers the config's flags under prefix (e.g. "kafka."), with DefaultConfig's
// values as defaults (and the SASL password from $STATEPIPE_KAFKA_PASSWORD).
func (c *Config) RegisterFlags(prefix string, fs *flag.FlagSet) {
	d := DefaultConfig()
	fs.Func(prefix+"brokers", "comma-separated Kafka bootstrap brokers (host:port); empty in embedded mode", func(s string) error {
		c.Brokers = nil
		for _, b := range strings.Split(s, ",") {
			if b = strings.TrimSpace(b); b != "" {
				c.Brokers = append(c.Brokers, b)
			}
		}
		return nil
	})
	fs.IntVar(&c.Partitions, prefix+"partitions", d.Partitions, "partitions of state topics statepipe creates")
	fs.IntVar(&c.ReplicationFactor, prefix+"replication-factor", d.ReplicationFactor, "replication factor of topics statepipe creates")
	fs.DurationVar(&c.BatchTimeout, prefix+"batch-timeout", d.BatchTimeout, "producer linger; kafka-go's 1s default would delay every acknowledgement")
	fs.Int64Var(&c.BatchBytes, prefix+"batch-bytes", d.BatchBytes, "largest produce request in bytes")
	fs.DurationVar(&c.FetchMaxWait, prefix+"fetch-max-wait", d.FetchMaxWait, "longest a fetch waits for data")
	fs.StringVar(&c.Security.SASLMechanism, prefix+"sasl-mechanism", d.Security.SASLMechanism, "SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (empty: none)")
	fs.StringVar(&c.Security.SASLUser, prefix+"sasl-user", d.Security.SASLUser, "SASL user")
	fs.StringVar(&c.Security.SASLPassword, prefix+"sasl-password", os.Getenv("STATEPIPE_KAFKA_PASSWORD"), "SASL password (default $STATEPIPE_KAFKA_PASSWORD)")
	fs.BoolVar(&c.Security.TLS, prefix+"tls", d.Security.TLS, "connect to the brokers over TLS")
	fs.StringVar(&c.Security.TLSCAFile, prefix+"tls-ca", d.Security.TLSCAFile, "PEM file of the CA that signed the brokers' certificates (default: the system's)")
}

// Validate reports a config that cannot work.
func (c *Config) Validate() error {
	switch {
	case len(c.Brokers) == 0:
		return errors.New("kafka: no brokers (set --kafka.brokers)")
	case c.Partitions < 1:
		return errors.New("kafka: partitions must be at least 1")
	case c.ReplicationFactor < 1:
		return errors.New("kafka: replication factor must be at least 1")
	case c.BatchTimeout <= 0:
		return errors.New("kafka: batch timeout must be positive")
	}
	return c.Security.validate()
}

// StateTopic is the topic a site's state messages land in.
func StateTopic(site string) string { return "state." + site }

// RefTopic is the compacted topic of a site's reference data (catalog, update lists,
// collections, deployments), keyed "<kind>/<id>".
func RefTopic(site string) string { return "ref." + site }

// ResyncTopic is the compacted topic of a site's resync requests, keyed by client: a value is
// an open request, no value an answered one.
func ResyncTopic(site string) string { return "resync." + site }

// IdentityTopic is a site's identity log: key client id, one enrolment, rotation or
// revocation event per record, kept forever (Forever): every ingest node derives who holds
// each id from the whole log, in its order, so it must not be compacted away.
func IdentityTopic(site string) string { return "identity." + site }

// TopicSetting is a topic-level config entry EnsureTopic sets on a topic it creates.
type TopicSetting struct{ Name, Value string }

// Compacted is the topic config of a compacted topic: Kafka keeps the latest record per key.
var Compacted = TopicSetting{"cleanup.policy", "compact"}

// Forever is the topic config of a log kept whole: no compaction, no time or size retention.
var Forever = []TopicSetting{{"cleanup.policy", "delete"}, {"retention.ms", "-1"}, {"retention.bytes", "-1"}}
