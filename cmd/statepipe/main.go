// Command statepipe is the one binary of statepipe: `run` hosts a whole site in one process
// (embedded broker and engine by default), the role subcommands run one role against a real
// Kafka cluster and ClickHouse server, and the rest are the scriptable client side (report,
// sql, client send, bench). This package is the composition root: the only place that
// imports every component and adapter and wires them.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/statepipe/statepipe/ingest"
	"github.com/statepipe/statepipe/projector"
	"github.com/statepipe/statepipe/schema"
)

type command struct {
	name, summary string
	run           func(ctx context.Context, args []string) error
}

var commands []command

func init() {
	commands = []command{
		{"run", "host a whole site in one process (embedded Kafka and ClickHouse by default)", cmdRun},
		{"ingest", "run the ingest role against Kafka", cmdIngest},
		{"projector", "run the projector role: Kafka → ClickHouse", cmdProjector},
		{"report", "print a named report from a running site", cmdReport},
		{"sql", "run read-only SQL against a running site", cmdSQL},
		{"client", "client enroll | send [--identity] | revoke: a machine's side", cmdClient},
		{"catalog", "catalog import --url URL FILE.jsonl: import update catalog entries", refCommand(schema.RefCatalog, "import")},
		{"lists", "lists apply --url URL FILE.jsonl: create or replace update lists", refCommand(schema.RefUpdateLists, "apply")},
		{"collections", "collections apply --url URL FILE.jsonl: create or replace collections", refCommand(schema.RefCollections, "apply")},
		{"deployments", "deployments apply --url URL FILE.jsonl: create or replace deployments", refCommand(schema.RefDeployments, "apply")},
		{"resync", "resync --url URL --site S | --collection C: ask clients for full reports", cmdResync},
		{"dlq", "dlq list|replay --site S: show a site's dead letters, or produce them again after a fix", cmdDLQ},
		{"bench", "load harness: bench smoke posts clients × updates and measures end to end", cmdBench},
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: statepipe COMMAND [flags]\n\ncommands:")
	for _, c := range commands {
		fmt.Fprintf(os.Stderr, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(os.Stderr, "\n`statepipe COMMAND -h` lists a command's flags.")
}

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	name := os.Args[1]
	for _, c := range commands {
		if c.name == name {
			stopProfile := profileFromEnv()
			err := c.run(ctx, os.Args[2:])
			stopProfile()
			if errors.Is(err, flag.ErrHelp) {
				os.Exit(0)
			}
			if err != nil {
				fmt.Fprintln(os.Stderr, "statepipe "+name+": "+err.Error())
				os.Exit(1)
			}
			return
		}
	}
	if name == "-h" || name == "--help" || name == "help" {
		usage()
		return
	}
	fmt.Fprintf(os.Stderr, "statepipe: unknown command %q\n\n", name)
	usage()
	os.Exit(2)
}

func logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

func cmdRun(ctx context.Context, args []string) error {
	var cfg runConfig
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	cfg.registerFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	embeddedKafka := len(cfg.Kafka.Brokers) == 0
	n, err := startRun(ctx, cfg, nil, logger())
	if err != nil {
		return err
	}
	cfg.Kafka.Brokers = n.sites[0].cfg.Kafka.Brokers
	if cfg.Store.ChdbPath == "" {
		cfg.Store.ChdbPath = filepath.Join(cfg.Data, "chdb")
	}
	go func() {
		// Once the site serves everything (its ingest has read the identity log), not before:
		// the URLs printed are ready for the examples.
		n.waitReady(ctx, 30*time.Second)
		printWelcome(os.Stdout, n.url(), cfg, embeddedKafka)
	}()
	return n.run(ctx)
}

// parseRole parses the flags of a server-mode role.
func parseRole(name string, args []string, cfg *runConfig) error {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	cfg.registerSiteFlags(fs, ingest.AuthRequired)
	fs.StringVar(&cfg.Store.ChdbPath, "chdb.path", "data/chdb", "embedded engine's data directory when no --clickhouse.dsn is given")
	return fs.Parse(args)
}

func cmdIngest(ctx context.Context, args []string) error {
	var cfg runConfig
	if err := parseRole("ingest", args, &cfg); err != nil {
		return err
	}
	log := logger()
	n := newNode(log)
	if err := n.configureHTTP(cfg.HTTP); err != nil {
		return err
	}
	if err := n.listen(cfg.Listen, cfg.TLSCert, cfg.TLSKey); err != nil {
		return err
	}
	s, err := newSite(ctx, siteConfig{Code: cfg.Site, Kafka: cfg.Kafka, Ingest: cfg.Ingest, Auth: cfg.Auth, AdminToken: cfg.AdminToken, ReaderToken: cfg.ReaderToken, RunIngest: true}, nil, n.reg, log)
	if err != nil {
		return err
	}
	n.addSite(s)
	log.Info("ingest serving", "url", n.url()+"/v1/reports", "site", cfg.Site, "brokers", cfg.Kafka.Brokers)
	return n.run(ctx)
}

func cmdProjector(ctx context.Context, args []string) error {
	if len(args) > 0 && args[0] == "rebuild" {
		return cmdRebuild(ctx, args[1:])
	}
	var cfg runConfig
	if err := parseRole("projector", args, &cfg); err != nil {
		return err
	}
	log := logger()
	n := newNode(log)
	if err := n.configureHTTP(cfg.HTTP); err != nil {
		return err
	}
	if err := n.listen(cfg.Listen, cfg.TLSCert, cfg.TLSKey); err != nil {
		return err
	}
	st, err := cfg.Store.open(ctx)
	if err != nil {
		return err
	}
	n.onClose(func() { _ = st.Close() })
	s, err := newSite(ctx, siteConfig{Code: cfg.Site, Kafka: cfg.Kafka, Projector: cfg.Projector, Auth: cfg.Auth, AdminToken: cfg.AdminToken, ReaderToken: cfg.ReaderToken,
		ExpiredCleanup: cfg.ExpiredCleanup, RunProjector: true, RunReports: true}, st, n.reg, log)
	if err != nil {
		_ = st.Close()
		return err
	}
	n.addSite(s)
	log.Info("projector running", "site", cfg.Site, "brokers", cfg.Kafka.Brokers, "reports", n.url()+"/v1/reports/compliance")
	return n.run(ctx)
}

// quietLogger logs warnings and errors only (bench and tests).
func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// cmdRebuild re-folds a site's projections from its raw log (the projector must be stopped).
func cmdRebuild(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("projector rebuild", flag.ContinueOnError)
	var st storeConfig
	site := fs.String("site", "P01", "site code")
	cleanup := fs.Duration("reports.expired-cleanup", 7*24*time.Hour, "how long an expired update stays in update lists (as the site's setting)")
	st.registerFlags(fs)
	fs.StringVar(&st.ChdbPath, "chdb.path", "data/chdb", "embedded engine's data directory when no --clickhouse.dsn is given")
	if err := fs.Parse(args); err != nil {
		return err
	}
	store, err := st.open(ctx)
	if err != nil {
		return err
	}
	defer store.Close()
	if _, err := schema.Migrate(ctx, store, database(*site)); err != nil {
		return err
	}
	stats, err := projector.Rebuild(ctx, store, database(*site), *cleanup)
	if err != nil {
		return err
	}
	fmt.Printf("rebuilt %s from %d raw messages in %s (%.0f messages/s)\n",
		database(*site), stats.Messages, stats.Duration.Round(time.Millisecond), stats.MessagesPerSecond())
	return nil
}

func cmdResync(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("resync", flag.ContinueOnError)
	base := fs.String("url", "http://127.0.0.1:8080", "base URL of the site")
	site := fs.String("site", "", "ask every client of this site")
	collection := fs.String("collection", "", "ask every member of this collection")
	tokens := addTokenFlags(fs, false)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if (*site == "") == (*collection == "") {
		return errors.New("usage: statepipe resync --url URL --site S | --collection C")
	}
	body, _ := json.Marshal(ingest.ResyncRequest{Site: *site, Collection: *collection})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(*base, "/")+"/v1/resync", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	tokens.set(req)
	var ack ingest.ResyncAck
	if err := doJSON(req, &ack); err != nil {
		return fmt.Errorf("cannot request resync: %w", err)
	}
	fmt.Printf("asked %d client(s) for a full report; each is asked in its next ingest answer\n", ack.Requested)
	return nil
}

// profileFromEnv writes a CPU profile of the whole command to $STATEPIPE_CPUPROFILE, when set:
// how the harness profiles the site process it starts (bench run --site-cpuprofile).
func profileFromEnv() (stop func()) {
	path := os.Getenv("STATEPIPE_CPUPROFILE")
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "statepipe: cannot write a CPU profile: "+err.Error())
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintln(os.Stderr, "statepipe: cannot start a CPU profile: "+err.Error())
		_ = f.Close()
		return func() {}
	}
	return func() { pprof.StopCPUProfile(); _ = f.Close() }
}
