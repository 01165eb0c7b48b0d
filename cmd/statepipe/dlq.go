package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/statepipe/statepipe/ingest"
	"github.com/statepipe/statepipe/internal/kafka"
	"github.com/statepipe/statepipe/schema"
)

// dlqRecord is one dead letter as `statepipe dlq list --json` prints it.
type dlqRecord struct {
	Partition int    `json:"partition"`
	Offset    int64  `json:"offset"`
	Client    string `json:"client"`
	Reason    string `json:"reason"`
	Source    string `json:"source"` // topic/partition/offset the projector read it from
	Bytes     int    `json:"bytes"`
	Replayed  string `json:"replayed,omitempty"`
}

func header(m kafka.Record, key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// cmdDLQ lists a site's dead letters or replays them into its state topic.
func cmdDLQ(ctx context.Context, args []string) error {
	const usage = "usage: statepipe dlq list|replay --site S [--kafka.brokers B] [--reason PREFIX] [--json]"
	if len(args) == 0 || (args[0] != "list" && args[0] != "replay") {
		return errors.New(usage)
	}
	fs := flag.NewFlagSet("dlq "+args[0], flag.ContinueOnError)
	kc := kafka.DefaultConfig()
	kc.RegisterFlags("kafka.", fs)
	site := fs.String("site", "P01", "site code")
	reason := fs.String("reason", "", "only dead letters whose reason starts with this (e.g. undecodable, invalid)")
	asJSON := fs.Bool("json", false, "list: one JSON object a line")
	vouchWith := fs.String("vouch-with", "", "replay: vouch for each record with this site key (PEM), as ingest would — for records an administrator decided to trust, e.g. those produced by an ingest of a version that did not vouch (--reason unvouched)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	var vouch ed25519.PrivateKey
	if *vouchWith != "" {
		if args[0] != "replay" {
			return errors.New("--vouch-with is for dlq replay")
		}
		k, err := ingest.LoadSiteKey(*vouchWith, false)
		if err != nil {
			return err
		}
		vouch = k
	}
	if len(kc.Brokers) == 0 {
		kc.Brokers = []string{"127.0.0.1:9092"} // statepipe run's embedded broker
	}
	return runDLQ(ctx, args[0], kc, *site, *reason, *asJSON, vouch, os.Stdout)
}

// runDLQ lists (op "list") or replays (op "replay") the dead letters of site that exist now.
// A replay produces each record's value again to the topic it came from (state.<site>, or
// ref.<site> for reference data), keyed as it was, with a statepipe-dlq-replayed header naming
// where it came from; the projector folds it, or dead-letters it again if it is still bad. The
// record keeps the vouch and the acceptance time of the ingest that accepted it (a record no
// ingest vouched for is dead-lettered "unvouched" again, unless vouch — a site key an
// administrator chose — vouches for it now). Replaying is safe to repeat: serials make a
// report folded once.
func runDLQ(ctx context.Context, op string, kc kafka.Config, site, reason string, asJSON bool, vouch ed25519.PrivateKey, out io.Writer) error {
	topic := kafka.StateTopic(site) + ".dlq"
	writers := map[string]*kafka.Producer{}
	defer func() {
		for _, w := range writers {
			_ = w.Close()
		}
	}()
	writer := func(t string) *kafka.Producer {
		if writers[t] == nil {
			writers[t] = kafka.NewProducer(kc, t)
		}
		return writers[t]
	}
	n := 0
	enc := json.NewEncoder(out)
	err := kafka.ReadAll(ctx, kc, topic, func(m kafka.Record) error {
		r := dlqRecord{Partition: m.Partition, Offset: m.Offset, Client: string(m.Key), Reason: header(m, "statepipe-dlq-reason"),
			Source: header(m, "statepipe-dlq-source"), Bytes: len(m.Value), Replayed: header(m, "statepipe-dlq-replayed")}
		if !strings.HasPrefix(r.Reason, reason) {
			return nil
		}
		n++
		if op == "list" {
			if asJSON {
				return enc.Encode(r)
			}
			_, err := fmt.Fprintf(out, "%s/%d/%d client=%s bytes=%d source=%s reason=%s\n", topic, r.Partition, r.Offset, r.Client, r.Bytes, r.Source, r.Reason)
			return err
		}
		dest := kafka.StateTopic(site)
		if src, _, _ := strings.Cut(r.Source, "/"); src == kafka.RefTopic(site) {
			dest = src
		}
		headers := []kafka.Header{{Key: "statepipe-dlq-replayed", Value: []byte(fmt.Sprintf("%s/%d/%d", topic, m.Partition, m.Offset))}}
		accepted := m.Time.UnixMilli()
		for _, h := range m.Headers {
			switch h.Key {
			case schema.HeaderOrigin:
				headers = append(headers, h) // reference data owned by a site above stays read-only here
			case schema.HeaderAccepted:
				if ms, err := schema.ParseAccepted(h.Value); err == nil && ms != 0 {
					accepted = ms
				}
				fallthrough
			case schema.HeaderVouch:
				if vouch == nil {
					// The ingest's vouch covers the topic, the key, the value and the
					// acceptance time, all unchanged: the replayed record is still the one
					// ingest accepted.
					headers = append(headers, h)
				}
			}
		}
		if vouch != nil {
			if dest == kafka.RefTopic(site) {
				accepted = 0 // reference data carries no acceptance time
			} else {
				headers = append(headers, kafka.Header{Key: schema.HeaderAccepted, Value: schema.AcceptedHeader(accepted)})
			}
			headers = append(headers, kafka.Header{Key: schema.HeaderVouch, Value: schema.Vouch(vouch, dest, m.Key, m.Value, accepted)})
		}
		return writer(dest).Produce(ctx, kafka.Record{Key: m.Key, Value: m.Value, Headers: headers})
	})
	if err != nil {
		return err
	}
	if op == "replay" {
		fmt.Fprintf(out, "replayed %d dead letters of %s into %s\n", n, topic, kafka.StateTopic(site)+" (ref."+site+" for reference data)")
	} else if !asJSON {
		fmt.Fprintf(out, "%d dead letters\n", n)
	}
	return nil
}
