package main

import (
	"context"
	"errors"
	"os"

	"github.com/statepipe/statepipe/bench"
	"github.com/statepipe/statepipe/internal/chdb"
	"github.com/statepipe/statepipe/internal/kafka"
)

// The harness's wiring: package bench measures, this binary opens the adapters it measures
// with (bench opens none of its own).

// benchCeilings returns how `bench run` opens what the raw ceilings are measured with, once
// the run is over: the bare kafka-go client (kafka.RawClient: ingest's writer, the Kafka
// defaults) on the site's brokers, and a chDB store of this process at chdbPath (a temporary
// directory when empty, removed on close). The site under test is a child process, so this
// process's one chDB session is free for it: the same engine, another process.
func benchCeilings(chdbPath string) func(ctx context.Context, brokers []string) (bench.CeilingsDeps, error) {
	return func(ctx context.Context, brokers []string) (bench.CeilingsDeps, error) {
		kc := kafka.DefaultConfig()
		kc.Brokers = brokers
		raw, err := kafka.NewRawClient(kc)
		if err != nil {
			return bench.CeilingsDeps{}, err
		}
		dir, tmp := chdbPath, false
		if dir == "" {
			if dir, err = os.MkdirTemp("", "statepipe-ceiling-"); err != nil {
				return bench.CeilingsDeps{}, errors.Join(err, raw.Close())
			}
			tmp = true
		}
		removeDir := func() error {
			if tmp {
				return os.RemoveAll(dir)
			}
			return nil
		}
		st, err := chdb.New(chdb.Config{Path: dir})
		if err != nil {
			return bench.CeilingsDeps{}, errors.Join(err, raw.Close(), removeDir())
		}
		return bench.CeilingsDeps{Kafka: raw, Store: st, Close: func() error {
			return errors.Join(st.Close(), raw.Close(), removeDir())
		}}, nil
	}
}
