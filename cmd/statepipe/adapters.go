package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/statepipe/statepipe/ingest"
	"github.com/statepipe/statepipe/internal/kafka"
	"github.com/statepipe/statepipe/projector"
)

// The components speak Kafka in their own terms (projector.Record, ingest.Record, their
// Producer and Generation interfaces); the Kafka adapter in its own (kafka.Record). These
// adapters translate, so that neither side imports the other and kafka-go stays inside
// internal/kafka. The record types have the same fields (their headers are the same type), so
// converting one costs no copy.

// groupConsumer hands the projector the generations of a kafka.GroupConsumer.
type groupConsumer struct{ g *kafka.GroupConsumer }

func (c groupConsumer) Next(ctx context.Context) (projector.Generation, error) {
	gen, err := c.g.Next(ctx)
	if err != nil {
		return nil, err
	}
	return generation{gen}, nil
}

// generation is a kafka.Generation as the projector sees it.
type generation struct{ *kafka.Generation }

func (g generation) Fetch(ctx context.Context) (projector.Record, error) {
	r, err := g.Generation.Fetch(ctx)
	return projector.Record(r), generationErr(err)
}

func (g generation) Commit(ctx context.Context, recs ...projector.Record) error {
	return g.Generation.Commit(ctx, kafkaRecords(recs)...)
}

func (g generation) Alive(ctx context.Context) error { return generationErr(g.Generation.Alive(ctx)) }

// generationErr makes the end of a generation the projector's ErrGenerationEnded.
func generationErr(err error) error {
	if errors.Is(err, kafka.ErrGenerationEnded) {
		return fmt.Errorf("%w: %w", projector.ErrGenerationEnded, err)
	}
	return err
}

// projectorProducer is a kafka.Producer for the projector (the dead-letter and resync topics).
type projectorProducer struct{ p *kafka.Producer }

func (a projectorProducer) Produce(ctx context.Context, recs ...projector.Record) error {
	return a.p.Produce(ctx, kafkaRecords(recs)...)
}

func kafkaRecords(recs []projector.Record) []kafka.Record {
	out := make([]kafka.Record, len(recs))
	for i, r := range recs {
		out[i] = kafka.Record(r)
	}
	return out
}

// ingestProducer is a kafka.Producer for ingest: a record refused for its size is ingest's
// ErrRecordTooLarge (413, not 503).
type ingestProducer struct{ p *kafka.Producer }

func (a ingestProducer) Produce(ctx context.Context, recs ...ingest.Record) error {
	out := make([]kafka.Record, len(recs))
	for i, r := range recs {
		out[i] = kafka.Record{Key: r.Key, Value: r.Value, Headers: r.Headers, Time: r.Time}
	}
	err := a.p.Produce(ctx, out...)
	if errors.Is(err, kafka.ErrRecordTooLarge) {
		return fmt.Errorf("%w: %w", ingest.ErrRecordTooLarge, err)
	}
	return err
}

// ingestRecord is a record read from Kafka (the identity log) as ingest reads it.
func ingestRecord(r kafka.Record) ingest.Record {
	return ingest.Record{Key: r.Key, Value: r.Value, Headers: r.Headers, Time: r.Time}
}
