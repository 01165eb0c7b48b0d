package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"time"

	"github.com/statepipe/statepipe/bench"
	"github.com/statepipe/statepipe/ingest"
	"github.com/statepipe/statepipe/internal/kafka"
	"github.com/statepipe/statepipe/projector"
)

func cmdBench(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "smoke" {
		return errors.New("usage: statepipe bench smoke [--url URL] [--clients N] [--updates M] [--signed]")
	}
	fs := flag.NewFlagSet("bench smoke", flag.ContinueOnError)
	var cfg bench.SmokeConfig
	fs.StringVar(&cfg.URL, "url", "", "a running site to load (default: start an embedded one in a temp dir)")
	fs.StringVar(&cfg.Site, "site", "P01", "site code")
	fs.IntVar(&cfg.Clients, "clients", 2000, "simulated clients")
	fs.IntVar(&cfg.Updates, "updates", 100, "update-compliance states per client")
	fs.IntVar(&cfg.Concurrency, "concurrency", 32, "clients posting at once")
	fs.BoolVar(&cfg.Signed, "signed", false, "enrol every client first and sign every report (the embedded site then requires signatures)")
	brokers := fs.String("kafka.brokers", "", "use this Kafka instead of the embedded broker")
	out := fs.String("out", "", "also write the result as JSON to this file")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run (harness and site) to this file")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	cfg.Progress = os.Stderr
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if cfg.URL == "" {
		dir, err := os.MkdirTemp("", "statepipe-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		rc := runConfig{Data: dir, Listen: "127.0.0.1:0", KafkaListen: "127.0.0.1:0", Site: cfg.Site,
			Kafka: kafka.Defaults(), Ingest: ingestDefaults(), Auth: authDefaults(ingest.AuthOptional), Projector: projectorDefaults()}
		if cfg.Signed {
			rc.Auth = authDefaults(ingest.AuthRequired)
		}
		if *brokers != "" {
			rc.Kafka.Brokers = []string{*brokers}
		}
		n, err := startRun(ctx, rc, nil, quietLogger())
		if err != nil {
			return err
		}
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- n.run(rctx) }()
		defer func() { cancel(); <-done }()
		cfg.URL = n.url()
	}
	start := time.Now()
	res, err := bench.Smoke(ctx, cfg)
	if err != nil {
		return err
	}
	out2 := struct {
		*bench.SmokeResult
		Clients int    `json:"clients"`
		Updates int    `json:"updates"`
		Machine string `json:"machine"`
		Started string `json:"started"`
	}{res, cfg.Clients, cfg.Updates, fmt.Sprintf("%s/%s, %d cores", runtime.GOOS, runtime.GOARCH, runtime.NumCPU()), start.UTC().Format(time.RFC3339)}
	b, _ := json.MarshalIndent(out2, "", "  ")
	fmt.Println(string(b))
	if *out != "" {
		return os.WriteFile(*out, append(b, '\n'), 0o644)
	}
	return nil
}

func ingestDefaults() ingest.Config {
	var c ingest.Config
	c.RegisterFlags("", flag.NewFlagSet("", flag.ContinueOnError))
	return c
}

func authDefaults(mode string) ingest.AuthConfig {
	var c ingest.AuthConfig
	c.RegisterFlags("", flag.NewFlagSet("", flag.ContinueOnError), mode)
	return c
}

func projectorDefaults() projector.Config {
	var c projector.Config
	c.RegisterFlags("", flag.NewFlagSet("", flag.ContinueOnError))
	return c
}
