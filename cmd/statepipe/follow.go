package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/statepipe/statepipe/internal/kafka"
)

// following is a topic a node keeps reading to its end for as long as it runs (identities,
// reference-data owners, phase releases, pacing statuses and commands).
type following struct {
	Kafka kafka.Config
	Topic string
	Apply func(kafka.Record)
	Fresh func(time.Time) // told when the follower has read the topic to its end; nil: not needed
	Every time.Duration   // how often Fresh is asked about
	// What it follows, in the log line a failure writes at Level before following again
	// after Retry.
	What  string
	Level slog.Level
	Retry time.Duration
}

// follow follows f's topic until ctx is done, starting again after any failure.
func (f following) follow(ctx context.Context, log *slog.Logger) {
	for ctx.Err() == nil {
		if err := kafka.Follow(ctx, f.Kafka, f.Topic, f.Apply, f.Fresh, f.Every, log); err != nil && ctx.Err() == nil {
			log.Log(ctx, f.Level, "cannot follow "+f.What+"; retrying", "topic", f.Topic, "err", err)
			pause(ctx, f.Retry)
		}
	}
}
