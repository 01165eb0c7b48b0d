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
	"io"
	"log/slog"
	"net/http"
	neturl "net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/statepipe/statepipe/bench"
	"github.com/statepipe/statepipe/ingest"
	"github.com/statepipe/statepipe/projector"
	"github.com/statepipe/statepipe/replicator"
	"github.com/statepipe/statepipe/schema"
)

var commands []command

func init() {
	commands = []command{
		{name: "run", summary: "host a whole site in one process (embedded Kafka and ClickHouse by default)", run: cmdRun},
		{name: "ingest", summary: "run the ingest role: HTTP → Kafka", run: cmdIngest},
		{name: "projector", summary: "run the projector role: Kafka → ClickHouse, reports and SQL; projector rebuild",
			run: subcommands("projector", []command{
				{name: "rebuild", summary: "re-fold every projection from the site's raw log and swap them in (projector stopped)", run: cmdRebuild},
			}, cmdProjector)},
		{name: "replicator", summary: "run a site's replicator (server mode): its cells up to the parent's Kafka, reference data down", run: cmdReplicator},
		{name: "report", summary: "print a named report from a running site", run: cmdReport},
		{name: "sql", summary: "run read-only SQL against a running site", run: cmdSQL},
		{name: "client", summary: "a machine's side: client enroll | send | rotate | revoke", run: subcommands("client", clientCommands(), nil)},
		{name: "configmgr", summary: "ConfigMgr coexistence: configmgr import DIR relays a state-system inbox's .smx files", run: subcommands("configmgr", configMgrCommands(), nil)},
		{name: "catalog", summary: "catalog import FILE.jsonl: import update catalog entries", run: refCommand(schema.RefCatalog, "import")},
		{name: "lists", summary: "lists apply FILE.jsonl: create or replace update lists", run: refCommand(schema.RefUpdateLists, "apply")},
		{name: "collections", summary: "collections apply FILE.jsonl: create or replace collections", run: refCommand(schema.RefCollections, "apply")},
		{name: "deployments", summary: "deployments apply FILE.jsonl: create or replace deployments; deployments phases: a phased deployment's phases", run: deploymentsCommand()},
		{name: "resync", summary: "resync --site S | --collection C: ask clients for full reports", run: cmdResync},
		{name: "pacing", summary: "pacing status | pause | resume | set --rate N: the site's pacing of new clients", run: subcommands("pacing", pacingCommands(), nil)},
		{name: "dlq", summary: "dlq list | replay: show a site's dead letters, or produce them again after a fix",
			run: subcommands("dlq", []command{
				{name: "list", summary: "show each dead letter with its reason and source offset", run: withArgs(cmdDLQ, "list")},
				{name: "replay", summary: "produce the dead letters again into the topic they came from", run: withArgs(cmdDLQ, "replay")},
			}, nil)},
		{name: "bench", summary: "load harness: bench run | capacity | rollout | compare | smoke | ingest | replot",
			run: subcommands("bench", []command{
				{name: "run", summary: "simulate a scenario's enterprise against a site and check it with an oracle", run: withArgs(cmdBench, "run")},
				{name: "capacity", summary: "bisect the largest client count that keeps the backlog under a target", run: withArgs(cmdBench, "capacity")},
				{name: "rollout", summary: "run a rollout-wave scenario with pacing off, then on, and compare the two", run: withArgs(cmdBench, "rollout")},
				{name: "compare", summary: "draw two rollout runs side by side (pacing off | on) with a report.md table", run: withArgs(cmdBench, "compare")},
				{name: "smoke", summary: "post clients × updates and measure end to end", run: withArgs(cmdBench, "smoke")},
				{name: "ingest", summary: "bounded load test of ingest alone", run: withArgs(cmdBench, "ingest")},
				{name: "replot", summary: "render a results directory's plots and report.md again from its result.json", run: cmdBenchReplot},
			}, nil)},
	}
}

// usage writes the list of commands.
func usage(w io.Writer) { printCommands(w, "", commands) }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := runMain(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

// runMain runs a command line and returns the exit code: 0, 1 when the command failed, 2 for
// a command line that cannot run (unknown command, bad flag, missing argument).
func runMain(ctx context.Context, args []string) int {
	if len(args) == 0 {
		usage(os.Stderr)
		return 2
	}
	if isHelp(args[0]) {
		usage(os.Stdout)
		return 0
	}
	c, err := find(commands, "", args[0])
	if err == nil {
		stopProfile := profileFromEnv()
		stopHeap := heapProfileFromEnv(args[0])
		err = c.run(ctx, args[1:])
		stopHeap()
		stopProfile()
	}
	var ue *usageError
	switch {
	case err == nil || errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(os.Stderr, "%s: %s\n", strings.TrimSpace("statepipe "+ue.path), ue.msg)
		if ue.usage != "" {
			fmt.Fprintln(os.Stderr, ue.usage)
		}
		return 2
	default:
		fmt.Fprintf(os.Stderr, "statepipe %s: %s\n", c.name, err)
		return 1
	}
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
	if cfg.Hierarchy.TopologyFile != "" {
		listen := false
		fs.Visit(func(f *flag.Flag) {
			cfg.OneSite = cfg.OneSite || f.Name == "site"
			listen = listen || f.Name == "listen"
		})
		if err := cfg.Hierarchy.load(); err != nil {
			return err
		}
		if ss, ok := cfg.Hierarchy.Topology.Site(cfg.Site); cfg.OneSite && ok && ss.URL != "" && !listen {
			// One site of a server-mode topology listens where the topology says it does.
			if u, err := neturl.Parse(ss.URL); err == nil && u.Port() != "" {
				cfg.Listen = "127.0.0.1:" + u.Port()
			}
		}
	}
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
		if t := cfg.Hierarchy.Topology; t != nil && !cfg.OneSite {
			printTopologyWelcome(os.Stdout, n.url(), cfg, t)
			return
		}
		printWelcome(os.Stdout, n.url(), cfg, embeddedKafka)
	}()
	return n.run(ctx)
}

// parseRole parses the flags of a server-mode role.
func parseRole(name string, args []string, cfg *runConfig) error {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	cfg.registerSiteFlags(fs, ingest.AuthRequired)
	fs.StringVar(&cfg.Store.ChdbPath, "chdb.path", "data/chdb", "embedded engine's data directory when no --clickhouse.dsn is given")
	cfg.Hierarchy.registerFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := cfg.Hierarchy.load(); err != nil {
		return err
	}
	t := cfg.Hierarchy.Topology
	if t == nil {
		return nil
	}
	// The site's place in the topology: named, and its Kafka the topology's unless given.
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == "site" })
	if !given {
		return fmt.Errorf("cannot run %s with --topology: name the site (--site CODE; the topology has %s)", name, strings.Join(siteCodes(t), ", "))
	}
	ss, ok := t.Site(cfg.Site)
	if !ok {
		return fmt.Errorf("cannot run %s for site %s: it is not in %s (it has %s)", name, cfg.Site, cfg.Hierarchy.TopologyFile, strings.Join(siteCodes(t), ", "))
	}
	if len(cfg.Kafka.Brokers) == 0 && ss.Kafka != nil {
		cfg.Kafka.Brokers = ss.Kafka.Brokers
	}
	return nil
}

// roleNode is the node of a server role: its HTTP limits set and its listener open.
func roleNode(cfg *runConfig, log *slog.Logger) (*node, error) {
	n := newNode(log)
	if err := n.configureHTTP(cfg.HTTP); err != nil {
		return nil, err
	}
	return n, n.listen(cfg.Listen, cfg.TLSCert, cfg.TLSKey)
}

// roleNodeWithStore is roleNode with the site's store open (closed with the node).
func roleNodeWithStore(ctx context.Context, cfg *runConfig, log *slog.Logger) (*node, siteStore, error) {
	n, err := roleNode(cfg, log)
	if err != nil {
		return nil, nil, err
	}
	st, err := cfg.Store.open(ctx)
	if err != nil {
		return nil, nil, err
	}
	n.onClose(func() { _ = st.Close() })
	return n, st, nil
}

func cmdIngest(ctx context.Context, args []string) error {
	var cfg runConfig
	if err := parseRole("ingest", args, &cfg); err != nil {
		return err
	}
	log := logger()
	n, err := roleNode(&cfg, log)
	if err != nil {
		return err
	}
	s, err := newSite(ctx, siteConfig{Code: cfg.Site, Kafka: cfg.Kafka, Ingest: cfg.Ingest, Auth: cfg.Auth, AdminToken: cfg.AdminToken, ReaderToken: cfg.ReaderToken, Pacing: cfg.Pacing, RunIngest: true}, nil, n.reg, log)
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
	n, st, err := roleNodeWithStore(ctx, &cfg, log)
	if err != nil {
		return err
	}
	s, err := newSite(ctx, siteConfig{Code: cfg.Site, Kafka: cfg.Kafka, Projector: cfg.Projector, Auth: cfg.Auth, AdminToken: cfg.AdminToken, ReaderToken: cfg.ReaderToken,
		ExpiredCleanup: cfg.ExpiredCleanup, Hierarchy: cfg.Hierarchy, RunProjector: true, RunReports: true}, st, n.reg, log)
	if err != nil {
		_ = st.Close()
		return err
	}
	if t := cfg.Hierarchy.Topology; t != nil {
		if _, ok := t.Site(cfg.Site); !ok {
			return fmt.Errorf("cannot run site %s's projector: it is not in %s", cfg.Site, cfg.Hierarchy.TopologyFile)
		}
		// The sites below send their cells into this site's Kafka: the projector folds them.
		if err := s.hierarchyRoles(cfg.Hierarchy, cfg.Kafka, true, false, n.reg, log); err != nil {
			return err
		}
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
	fs := newFlags("projector rebuild", "[flags]")
	var st storeConfig
	site := fs.String("site", "P01", "site code")
	cleanup := fs.Duration("reports.expired-cleanup", schema.DefaultExpiredCleanup, "how long an expired update stays in update lists (as the site's setting)")
	st.registerFlags(fs.FlagSet)
	fs.StringVar(&st.ChdbPath, "chdb.path", "data/chdb", "embedded engine's data directory when no --clickhouse.dsn is given")
	if _, err := fs.parse(args); err != nil {
		return err
	}
	if c := st.ClickHouse.Cluster; c != "" {
		// The rebuild creates, swaps and drops tables on the node it is connected to.
		return fmt.Errorf("cannot rebuild %s on cluster %s (--clickhouse.cluster): the rebuild swaps tables on one node only", database(*site), c)
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
	// What the sites below sent is folded again from the site's incoming topic, hier.<site>.
	if err := replicator.ResetFold(ctx, store, database(*site)); err != nil {
		return err
	}
	fmt.Printf("emptied %s's cells of the sites below: the next start folds %s again from its start\n", database(*site), replicator.Topic(*site))
	return nil
}

func cmdResync(ctx context.Context, args []string) error {
	fs := newFlags("resync", "--site S | --collection C [--url URL] [--admin-token T]")
	base := fs.String("url", "http://127.0.0.1:8080", "base URL of the site (the projector's, where the roles run apart)")
	site := fs.String("site", "", "ask every client of this site")
	collection := fs.String("collection", "", "ask every member of this collection")
	tokens := addTokenFlags(fs.FlagSet, false)
	if _, err := fs.parse(args); err != nil {
		return err
	}
	if (*site == "") == (*collection == "") {
		return fs.fail("give one of --site and --collection")
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

// cmdBenchReplot renders a results directory's plots and report.md again from its result.json.
func cmdBenchReplot(_ context.Context, args []string) error {
	pos, err := newFlags("bench replot", "DIR").parse(args, "DIR")
	if err != nil {
		return err
	}
	r, err := bench.ReadResult(filepath.Join(pos[0], "result.json"))
	if err != nil {
		return err
	}
	return bench.WriteResults(pos[0], r)
}

// heapProfileFromEnv writes, when $STATEPIPE_HEAPPROFILE is set, a heap profile of the command
// to $STATEPIPE_HEAPPROFILE.<command> each time the heap in use reaches a new peak (looked at
// every 2 s): the profile of the command's largest heap, for a site whose memory grew (the
// harness's site process inherits the variable).
func heapProfileFromEnv(command string) (stop func()) {
	path := os.Getenv("STATEPIPE_HEAPPROFILE")
	if path == "" {
		return func() {}
	}
	path += "." + command
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		var peak uint64
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse <= peak+peak/20 {
				continue
			}
			peak = ms.HeapInuse
			if err := writeHeapProfile(path); err != nil {
				fmt.Fprintln(os.Stderr, "statepipe: cannot write a heap profile: "+err.Error())
				return
			}
		}
	}()
	return func() { close(done); <-finished }
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path + ".tmp")
	if err != nil {
		return err
	}
	if err := pprof.WriteHeapProfile(f); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(path+".tmp", path)
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
