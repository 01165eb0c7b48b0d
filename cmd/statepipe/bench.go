package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/statepipe/statepipe/bench"
	"github.com/statepipe/statepipe/ingest"
	"github.com/statepipe/statepipe/internal/kafka"
	"github.com/statepipe/statepipe/projector"
)

func cmdBench(ctx context.Context, args []string) error {
	if len(args) > 0 && args[0] == "ingest" {
		return cmdBenchIngest(ctx, args[1:])
	}
	if len(args) == 0 || args[0] != "smoke" {
		return errors.New("usage: statepipe bench smoke [--url URL] [--clients N] [--updates M] [--signed]\n" +
			"       statepipe bench ingest [--kafka.brokers B] [--clients N] [--messages M] [--concurrency 4,16,64] [--unsigned] [--out DIR]")
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

// cmdBenchIngest is the bounded loopback load test of ingest alone: it starts the ingest role
// as a child process of this binary (so its RSS is its own) against the given Kafka or an
// embedded broker in this process, and loads it over HTTP (bench.IngestLoad).
func cmdBenchIngest(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench ingest", flag.ContinueOnError)
	var cfg bench.IngestLoadConfig
	fs.StringVar(&cfg.Site, "site", "P01", "site code")
	fs.IntVar(&cfg.Clients, "clients", 10000, "enrolled clients the load cycles through")
	fs.IntVar(&cfg.Messages, "messages", 20, "state messages per report")
	conc := fs.String("concurrency", "4,16,64", "closed-loop phases: requests in flight")
	fs.IntVar(&cfg.Overload, "overload", 512, "requests in flight in the overload phase (0: skip)")
	maxInFlight := fs.Int("ingest.max-in-flight", 64, "ingest's in-flight limit (the overload phase goes past it)")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "length of each phase")
	fs.IntVar(&cfg.MaxRequests, "max-requests", 200000, "most requests per phase")
	unsigned := fs.Bool("unsigned", false, "run ingest with --ingest.auth off and send unsigned reports")
	brokers := fs.String("kafka.brokers", "", "use this Kafka instead of an embedded broker")
	out := fs.String("out", "", "write result.json and report.md to this directory")
	if err := fs.Parse(args); err != nil {
		return err
	}
	for _, f := range strings.Split(*conc, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return fmt.Errorf("--concurrency: %q is not a positive number", f)
		}
		cfg.Concurrency = append(cfg.Concurrency, n)
	}
	cfg.Signed = !*unsigned
	cfg.Progress = os.Stderr
	dir, err := os.MkdirTemp("", "statepipe-bench-ingest-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	kafkaKind := "real Apache Kafka at " + *brokers
	if *brokers == "" {
		b, err := kafka.StartEmbedded(kafka.EmbeddedConfig{})
		if err != nil {
			return err
		}
		defer b.Close()
		*brokers = strings.Join(b.Addrs(), ",")
		kafkaKind = "embedded broker (kfake) in the load generator's process"
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	auth := "required"
	if *unsigned {
		auth = "off"
	}
	child := exec.CommandContext(ctx, self, "ingest", "--kafka.brokers", *brokers, "--site", cfg.Site, "--listen", "127.0.0.1:0",
		"--ingest.site-key", filepath.Join(dir, "site.key"), "--ingest.auth", auth, "--ingest.max-in-flight", strconv.Itoa(*maxInFlight))
	stderr, _ := child.StderrPipe()
	if err := child.Start(); err != nil {
		return err
	}
	defer func() { _ = child.Process.Kill(); _ = child.Wait() }()
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		re := regexp.MustCompile(`url=(http://[0-9.:]+)/v1/reports`)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
			} else if strings.Contains(sc.Text(), "level=ERROR") {
				fmt.Fprintln(os.Stderr, "ingest:", sc.Text())
			}
		}
	}()
	select {
	case cfg.URL = <-found:
	case <-time.After(60 * time.Second):
		return errors.New("the ingest process did not start")
	}
	cfg.PID = child.Process.Pid
	started := time.Now()
	res, err := bench.IngestLoad(ctx, cfg)
	if res == nil {
		return err
	}
	doc := struct {
		*bench.IngestLoadResult
		Kafka       string `json:"kafka"`
		MaxInFlight int    `json:"ingest_max_in_flight"`
		Machine     string `json:"machine"`
		Started     string `json:"started"`
	}{res, kafkaKind, *maxInFlight, machine(), started.UTC().Format(time.RFC3339)}
	b, _ := json.MarshalIndent(doc, "", "  ")
	fmt.Println(string(b))
	if *out != "" {
		if werr := os.MkdirAll(*out, 0o755); werr != nil {
			return werr
		}
		if werr := os.WriteFile(filepath.Join(*out, "result.json"), append(b, '\n'), 0o644); werr != nil {
			return werr
		}
		if werr := os.WriteFile(filepath.Join(*out, "report.md"), []byte(bench.IngestLoadMarkdown(res, kafkaKind, doc.Machine, *maxInFlight)), 0o644); werr != nil {
			return werr
		}
	}
	return err
}

// machine describes this machine for results: CPU model, cores and memory.
func machine() string {
	model := runtime.GOARCH
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	mem := bench.ProcMeminfo("MemTotal")
	return fmt.Sprintf("%s, %d cores, %.1f GiB, %s/%s", model, runtime.NumCPU(), float64(mem)/(1<<30), runtime.GOOS, runtime.GOARCH)
}
