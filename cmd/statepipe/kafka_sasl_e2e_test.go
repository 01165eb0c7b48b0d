package main

import (
	"context"
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"github.com/statepipe/statepipe/internal/kafka"
)

// Every role reaches a broker that speaks only TLS, with SASL over it (SASL_SSL, the usual
// production setting), trusting the broker's CA from --kafka.tls-ca; without that CA the site
// refuses to start, naming the certificate.
func TestSiteAgainstATLSBroker(t *testing.T) {
	t.Parallel()
	if realKafka() != nil {
		t.Skip("the TLS broker is an embedded kfake; the real-Kafka run covers plaintext")
	}
	dir := t.TempDir()
	certFile, _, cert, _ := selfSigned(t, dir)
	b, err := kafka.StartEmbedded(kafka.EmbeddedConfig{Users: []string{"SCRAM-SHA-512:statepipe:s3cret"},
		TLS: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	sec := kafka.Security{SASLMechanism: "SCRAM-SHA-512", SASLUser: "statepipe", SASLPassword: "s3cret", TLS: true, TLSCAFile: certFile}
	s := startSite(t, siteOpts{tune: func(c *runConfig) {
		c.Kafka.Brokers = b.Addrs()
		c.Kafka.Security = sec
	}})
	if err := s.client("tls-pc").Report(context.Background(), true, msg(0, "KB-TLS", 3)); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() string {
		if c := s.compliance("KB-TLS"); len(c.Updates) != 1 || c.Updates[0].Installed != 1 {
			return "the report was not folded through the TLS broker"
		}
		return ""
	})
	t.Run("without the CA", func(t *testing.T) {
		cfg := runConfig{Data: t.TempDir(), Listen: "127.0.0.1:0", Site: "TLSX", Kafka: kafka.DefaultConfig(), Ingest: ingestDefaults(),
			Auth: authDefaults("optional"), Projector: projectorDefaults()}
		cfg.Kafka.Brokers = b.Addrs()
		cfg.Kafka.Security = sec
		cfg.Kafka.Security.TLSCAFile = ""
		cfg.Store.ChdbPath = chdbDir
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := startRun(ctx, cfg, nil, quietLogger()); err == nil {
			t.Fatal("a site started trusting a broker certificate no CA it knows signed")
		} else if msg := err.Error(); !strings.Contains(msg, "certificate") {
			t.Errorf("error does not name the certificate: %v", err)
		}
	})
}

// Every role reaches an authenticating broker with SASL (SCRAM and PLAIN), and a wrong
// password is refused at start, naming the failure.
func TestSiteAgainstASASLBroker(t *testing.T) {
	t.Parallel()
	if realKafka() != nil {
		t.Skip("the SASL broker is an embedded kfake; the real-Kafka run covers plaintext")
	}
	b, err := kafka.StartEmbedded(kafka.EmbeddedConfig{Users: []string{"SCRAM-SHA-256:statepipe:s3cret", "PLAIN:plainuser:plainpass"}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, mech := range []kafka.Security{
		{SASLMechanism: "SCRAM-SHA-256", SASLUser: "statepipe", SASLPassword: "s3cret"},
		{SASLMechanism: "PLAIN", SASLUser: "plainuser", SASLPassword: "plainpass"},
	} {
		t.Run(mech.SASLMechanism, func(t *testing.T) {
			s := startSite(t, siteOpts{tune: func(c *runConfig) {
				c.Kafka.Brokers = b.Addrs()
				c.Kafka.Security = mech
			}})
			if err := s.client("sasl-pc").Report(context.Background(), true, msg(0, "KB-SASL", 3)); err != nil {
				t.Fatal(err)
			}
			eventually(t, func() string {
				if c := s.compliance("KB-SASL"); len(c.Updates) != 1 || c.Updates[0].Installed != 1 {
					return "the report was not folded through the SASL broker"
				}
				return ""
			})
		})
	}
	t.Run("wrong password", func(t *testing.T) {
		cfg := runConfig{Data: t.TempDir(), Listen: "127.0.0.1:0", Site: "SASLX", Kafka: kafka.DefaultConfig(), Ingest: ingestDefaults(),
			Auth: authDefaults("optional"), Projector: projectorDefaults()}
		cfg.Kafka.Brokers = b.Addrs()
		cfg.Kafka.Security = kafka.Security{SASLMechanism: "SCRAM-SHA-256", SASLUser: "statepipe", SASLPassword: "wrong"}
		cfg.Store.ChdbPath = chdbDir
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := startRun(ctx, cfg, nil, quietLogger()); err == nil {
			t.Fatal("a site started with a wrong SASL password")
		} else if msg := strings.ToLower(err.Error()); !strings.Contains(msg, "sasl") && !strings.Contains(msg, "auth") {
			t.Errorf("error does not say authentication failed: %v", err)
		}
	})
}
