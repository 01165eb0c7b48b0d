package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	kafkago "github.com/segmentio/kafka-go"

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

func header(m kafkago.Message, key string) string {
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
	kc := kafka.Defaults()
	kc.RegisterFlags("kafka.", fs)
	site := fs.String("site", "P01", "site code")
	reason := fs.String("reason", "", "only dead letters whose reason starts with this (e.g. undecodable, invalid)")
	asJSON := fs.Bool("json", false, "list: one JSON object a line")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if len(kc.Brokers) == 0 {
		kc.Brokers = []string{"127.0.0.1:9092"} // statepipe run's embedded broker
	}
	return runDLQ(ctx, args[0], kc, *site, *reason, *asJSON, os.Stdout)
}

// runDLQ lists (op "list") or replays (op "replay") the dead letters of site that exist now.
// A replay produces each record's value again to state.<site>, keyed by its client, with a
// statepipe-dlq-replayed header naming where it came from; the projector folds it, or dead-
// letters it again if it is still bad. The record keeps the vouch of the ingest that accepted
// it (a record no ingest vouched for is dead-lettered "unvouched" again). Replaying is safe to repeat: serials make a report
// folded once.
func runDLQ(ctx context.Context, op string, kc kafka.Config, site, reason string, asJSON bool, out io.Writer) error {
	topic := kafka.StateTopic(site) + ".dlq"
	var w *kafkago.Writer
	if op == "replay" {
		w = kafka.NewWriter(kc, kafka.StateTopic(site))
		defer w.Close()
	}
	n := 0
	enc := json.NewEncoder(out)
	err := kafka.ReadAll(ctx, kc, topic, func(m kafkago.Message) error {
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
		headers := []kafkago.Header{{Key: "statepipe-dlq-replayed", Value: []byte(fmt.Sprintf("%s/%d/%d", topic, m.Partition, m.Offset))}}
		for _, h := range m.Headers {
			if h.Key == schema.HeaderVouch {
				// The ingest's vouch covers the state topic, the key and the value, all
				// unchanged: the replayed record is still the one ingest accepted.
				headers = append(headers, h)
			}
		}
		return w.WriteMessages(ctx, kafkago.Message{Key: m.Key, Value: m.Value, Headers: headers})
	})
	if err != nil {
		return err
	}
	if op == "replay" {
		fmt.Fprintf(out, "replayed %d dead letters of %s into %s\n", n, topic, kafka.StateTopic(site))
	} else if !asJSON {
		fmt.Fprintf(out, "%d dead letters\n", n)
	}
	return nil
}
