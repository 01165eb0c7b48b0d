package kafka

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"
)

// Security is how statepipe authenticates to Kafka and encrypts the connection: SASL PLAIN or
// SCRAM, and TLS. Every role and tool reaches Kafka through the dialer and transport built
// from it.
type Security struct {
	SASLMechanism string // "", PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512
	SASLUser      string
	SASLPassword  string // flag, or $STATEPIPE_KAFKA_PASSWORD
	TLS           bool
	TLSCAFile     string // PEM bundle trusted for the brokers' certificates; empty: the system's
	TLSInsecure   bool   // skip verification (tests only)
}

func (s Security) mechanism() (sasl.Mechanism, error) {
	switch s.SASLMechanism {
	case "":
		return nil, nil
	case "PLAIN":
		return plain.Mechanism{Username: s.SASLUser, Password: s.SASLPassword}, nil
	case "SCRAM-SHA-256":
		return scram.Mechanism(scram.SHA256, s.SASLUser, s.SASLPassword)
	case "SCRAM-SHA-512":
		return scram.Mechanism(scram.SHA512, s.SASLUser, s.SASLPassword)
	}
	return nil, fmt.Errorf("kafka: sasl-mechanism %q: want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", s.SASLMechanism)
}

func (s Security) tlsConfig() (*tls.Config, error) {
	if !s.TLS {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: s.TLSInsecure}
	if s.TLSCAFile != "" {
		pem, err := os.ReadFile(s.TLSCAFile)
		if err != nil {
			return nil, fmt.Errorf("kafka: tls-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("kafka: tls-ca %s: no PEM certificate", s.TLSCAFile)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

func (s Security) validate() error {
	if _, err := s.mechanism(); err != nil {
		return err
	}
	if s.SASLMechanism != "" && s.SASLUser == "" {
		return fmt.Errorf("kafka: sasl-mechanism %s needs --kafka.sasl-user", s.SASLMechanism)
	}
	_, err := s.tlsConfig()
	return err
}

// dialer returns a dialer with the config's security (validated by Config.Validate).
func (c Config) dialer() *kafkago.Dialer {
	m, _ := c.Security.mechanism()
	t, _ := c.Security.tlsConfig()
	return &kafkago.Dialer{Timeout: 5 * time.Second, DualStack: true, SASLMechanism: m, TLS: t}
}

// transport returns a transport of its own with the config's security.
func (c Config) transport(topics ...string) *kafkago.Transport {
	m, _ := c.Security.mechanism()
	t, _ := c.Security.tlsConfig()
	return &kafkago.Transport{MetadataTopics: topics, SASL: m, TLS: t}
}
