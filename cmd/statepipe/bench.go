package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/pprof"
	"slices"
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
	if len(args) > 0 && args[0] == "run" {
		return cmdBenchRun(ctx, args[1:])
	}
	if len(args) > 0 && args[0] == "rollout" {
		return cmdBenchRollout(ctx, args[1:])
	}
	if len(args) > 0 && args[0] == "compare" {
		return cmdBenchCompare(args[1:])
	}
	if len(args) > 0 && args[0] == "capacity" {
		return cmdBenchCapacity(ctx, args[1:])
	}
	if len(args) == 2 && args[0] == "replot" {
		// Render a results directory's plots and report.md again from its result.json.
		r, err := bench.ReadResult(filepath.Join(args[1], "result.json"))
		if err != nil {
			return err
		}
		return bench.WriteResults(args[1], r)
	}
	if len(args) == 0 || args[0] != "smoke" {
		return errors.New("usage: statepipe bench run --scenario FILE [--clients N] [--kafka.brokers B] [--out DIR] [--pacing on|off] [--site-arg FLAG]...\n" +
			"       statepipe bench rollout --scenario FILE [--out DIR] [--site-arg FLAG]...   (pacing off, then on, then compare)\n" +
			"       statepipe bench compare --out DIR RUN_DIR_A RUN_DIR_B\n" +
			"       statepipe bench capacity --scenario FILE --target-backlog 30s [--min N] [--max N] [--trials N]\n" +
			"       statepipe bench replot DIR\n" +
			"       statepipe bench smoke [--url URL] [--clients N] [--updates M] [--signed]\n" +
			"       statepipe bench ingest [--kafka.brokers B] [--clients N] [--messages M] [--concurrency 4,16,64] [--unsigned] [--out DIR]")
	}
	fs := flag.NewFlagSet("bench smoke", flag.ContinueOnError)
	var cfg bench.SmokeConfig
	fs.StringVar(&cfg.URL, "url", "", "a running site to load, one no smoke run loaded before (its clients and serials start from scratch; default: start an embedded one in a temp dir)")
	fs.StringVar(&cfg.Site, "site", "P01", "site code")
	fs.IntVar(&cfg.Clients, "clients", 2000, "simulated clients")
	fs.IntVar(&cfg.Updates, "updates", 100, "update-compliance states per client")
	fs.IntVar(&cfg.Concurrency, "concurrency", 32, "clients posting at once")
	fs.BoolVar(&cfg.Signed, "signed", false, "enrol every client first and sign every report (the embedded site then requires signatures)")
	fs.StringVar(&cfg.ReaderToken, "reader-token", os.Getenv("STATEPIPE_READER_TOKEN"), "with --url: the site's reader token, for its reports and /metrics (default $STATEPIPE_READER_TOKEN)")
	fs.StringVar(&cfg.EnrollToken, "token", os.Getenv("STATEPIPE_ENROLL_TOKEN"), "with --url --signed: the site's enrolment token (default $STATEPIPE_ENROLL_TOKEN)")
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
			Kafka: kafka.DefaultConfig(), Ingest: ingest.DefaultConfig(), Auth: ingest.DefaultAuthConfig(ingest.AuthOptional), Projector: projector.DefaultConfig()}
		if cfg.Signed {
			rc.Auth = ingest.DefaultAuthConfig(ingest.AuthRequired)
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
		"--ingest.site-key", filepath.Join(dir, "site.key"), "--ingest.site-key-create", "--ingest.auth", auth, "--ingest.max-in-flight", strconv.Itoa(*maxInFlight),
		"--ingest.enroll-rate", "0") // the load test enrols its clients first, as fast as it can
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
	}{res, kafkaKind, *maxInFlight, bench.Machine(), started.UTC().Format(time.RFC3339)}
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

// cmdBenchRun runs a capacity-planning scenario (bench.RunScenario) against a site it starts
// as a child process, and writes result.json, report.md and the plots.
func cmdBenchRun(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench run", flag.ContinueOnError)
	scenario := fs.String("scenario", "", "scenario file (bench/scenarios/*.yaml)")
	clients := fs.Int("clients", 0, "override the scenario's clients per site")
	brokers := fs.String("kafka.brokers", "", "run the site against this Kafka (default: its embedded broker)")
	brokerPID := fs.Int("kafka.pid", 0, "the broker's process id, to measure its memory (scripts/kafka.sh writes it to .deps/kafka/run/)")
	out := fs.String("out", "", "results directory (default bench/results/<scenario>-<yyyymmdd>[-kafka])")
	ceilings := fs.Bool("ceilings", true, "measure the raw ceilings (kafka-go produce and consume, engine insert) after the run")
	checkTimeout := fs.Duration("check-timeout", 10*time.Minute, "longest wait for the reports to equal the oracle at a checkpoint")
	siteProfile := fs.String("site-cpuprofile", "", "have the site process write a CPU profile of the run to this file")
	pacing := fs.String("pacing", "", "run the site with closed-loop pacing on or off (its --pacing.mode), over the scenario's pacing (default: the scenario's, else the site's)")
	var siteArgs stringsFlag
	fs.Var(&siteArgs, "site-arg", "one more flag for the site's `statepipe run`, as one argument (repeatable), e.g. --site-arg=--pacing.mode=off")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *scenario == "" {
		return errors.New("bench run: --scenario is required (see bench/scenarios/)")
	}
	sc, err := bench.LoadScenario(*scenario)
	if err != nil {
		return err
	}
	if *clients > 0 {
		sc.Clients, sc.Waves = *clients, nil
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if *out == "" {
		suffix := ""
		if *brokers != "" {
			suffix = "-kafka"
		}
		*out = filepath.Join("bench", "results", fmt.Sprintf("%s-%s%s", sc.Name, time.Now().UTC().Format("20060102"), suffix))
	}
	hc := bench.HarnessConfig{Scenario: sc, Bin: self, Brokers: *brokers, BrokerPID: *brokerPID,
		Progress: os.Stderr, CheckTimeout: *checkTimeout, SiteCPUProfile: *siteProfile, Pacing: *pacing, SiteArgs: siteArgs}
	if *ceilings {
		hc.Ceilings = benchCeilings("")
	}
	_, err = runScenarioTo(ctx, hc, *out)
	return err
}

// runScenarioTo runs a scenario and writes its results into out; an error also when the
// reports differed from the oracle.
func runScenarioTo(ctx context.Context, hc bench.HarnessConfig, out string) (*bench.HarnessResult, error) {
	res, err := bench.RunScenario(ctx, hc)
	if res == nil {
		return nil, err
	}
	if werr := bench.WriteResults(out, res); werr != nil {
		return res, errors.Join(err, werr)
	}
	fmt.Fprintf(os.Stderr, "results in %s\n", out)
	if err == nil && !res.OracleOK {
		err = fmt.Errorf("the reports differ from the oracle: %s", res.OracleError)
	}
	return res, err
}

// stringsFlag is a flag that may be given many times.
type stringsFlag []string

func (s *stringsFlag) String() string     { return strings.Join(*s, " ") }
func (s *stringsFlag) Set(v string) error { *s = append(*s, v); return nil }

// cmdBenchRollout runs a rollout-wave scenario twice on fresh sites, pacing off then on, each
// into a directory of its own under --out, and compares the two there (bench.CompareRollouts).
func cmdBenchRollout(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench rollout", flag.ContinueOnError)
	scenario := fs.String("scenario", "", "a scenario with an enrol_wave (bench/scenarios/rollout-wave*.yaml)")
	clients := fs.Int("clients", 0, "override the scenario's clients")
	brokers := fs.String("kafka.brokers", "", "run the sites against this Kafka (default: their embedded broker)")
	out := fs.String("out", "", "results directory: pacing-off/, pacing-on/, and the comparison (default bench/results/<scenario>-<yyyymmdd>)")
	ceilings := fs.Bool("ceilings", false, "measure the raw ceilings after each run")
	checkTimeout := fs.Duration("check-timeout", 10*time.Minute, "longest wait for the reports to equal the oracle")
	var siteArgs stringsFlag
	fs.Var(&siteArgs, "site-arg", "one more flag for both sites' `statepipe run` (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *scenario == "" {
		return errors.New("bench rollout: --scenario is required (bench/scenarios/rollout-wave-small.yaml, or rollout-wave.yaml: about 30 minutes with the machine alone)")
	}
	sc, err := bench.LoadScenario(*scenario)
	if err != nil {
		return err
	}
	if sc.EnrolWave == nil {
		return fmt.Errorf("bench rollout: %s has no enrol_wave (the clients would enrol before the run)", *scenario)
	}
	if *clients > 0 {
		sc.Clients = *clients
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if !bench.SiteHasPacing(self) {
		return fmt.Errorf("bench rollout: this statepipe (%s) has no closed-loop pacing (run --pacing.mode): only `bench run --pacing off` can run", self)
	}
	if *out == "" {
		*out = filepath.Join("bench", "results", fmt.Sprintf("%s-%s", sc.Name, time.Now().UTC().Format("20060102")))
	}
	var dirs [2]string
	var runs [2]*bench.HarnessResult
	for i, mode := range []string{"off", "on"} {
		dirs[i] = filepath.Join(*out, "pacing-"+mode)
		fmt.Fprintf(os.Stderr, "rollout: %s with pacing %s → %s\n", sc.Name, mode, dirs[i])
		run := *sc
		hc := bench.HarnessConfig{Scenario: &run, Bin: self, Brokers: *brokers, Progress: os.Stderr, CheckTimeout: *checkTimeout,
			Pacing: mode, SiteArgs: siteArgs}
		if *ceilings {
			hc.Ceilings = benchCeilings("")
		}
		if runs[i], err = runScenarioTo(ctx, hc, dirs[i]); err != nil {
			return err
		}
	}
	if _, err := bench.CompareRollouts(*out, runs[0], runs[1], dirs); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "comparison in %s\n", filepath.Join(*out, "report.md"))
	return nil
}

// cmdBenchCompare compares two rollout runs' result.json into --out (bench.CompareRollouts).
func cmdBenchCompare(args []string) error {
	fs := flag.NewFlagSet("bench compare", flag.ContinueOnError)
	out := fs.String("out", "", "directory for compare.png and report.md (required)")
	var dirs []string
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		dirs, rest = append(dirs, fs.Arg(0)), fs.Args()[1:]
	}
	if *out == "" || len(dirs) != 2 {
		return errors.New("usage: statepipe bench compare --out DIR RUN_DIR_A RUN_DIR_B (two results directories of rollout-wave runs; the one with pacing off is drawn on the left)")
	}
	var runs [2]*bench.HarnessResult
	for i, d := range dirs {
		r, err := bench.ReadResult(filepath.Join(d, "result.json"))
		if err != nil {
			return err
		}
		runs[i] = r
	}
	if _, err := bench.CompareRollouts(*out, runs[0], runs[1], [2]string(dirs)); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "comparison in %s\n", filepath.Join(*out, "report.md"))
	return nil
}

// realTime is the number of clients reporting in real time whose messages arrive at the rate
// n clients of sc do: sc compresses simulated time by TimeScale, so each of its clients
// sends, per real second, what TimeScale clients would.
func realTime(sc *bench.Scenario, n int) int { return int(math.Round(float64(n) * sc.TimeScale)) }

// capacityReport is the capacity search's report.md and its one-line answer, in real-time
// clients, with how they were converted.
func capacityReport(sc *bench.Scenario, target time.Duration, pts []bench.CapacityPoint, good, bad, lo int) (string, string) {
	var md strings.Builder
	fmt.Fprintf(&md, "# Capacity — %s\n\n%s\n\n- machine: %s\n- target backlog: %s (worst second's p99 from ingest acceptance to visible)\n",
		sc.Name, sc.Description, bench.Machine(), target)
	if every := sc.Behaviour.ReportEvery.D(); every > 0 {
		fmt.Fprintf(&md, "- reporting cadence: every client batches its state messages every %s (ConfigMgr's default is 15 minutes)\n", every)
	}
	fmt.Fprintf(&md, "- simulated time runs %g× faster than the wall clock\n\n", sc.TimeScale)
	fmt.Fprintf(&md, "| clients simulated | real-time clients (× %g) | backlog | within target |\n|---|---|---|---|\n", sc.TimeScale)
	for _, p := range pts {
		fmt.Fprintf(&md, "| %d | %d | %.1f s | %v |\n", p.Clients, realTime(sc, p.Clients), p.BacklogSeconds, p.OK)
	}
	answer := fmt.Sprintf("largest site within a %s backlog: %d real-time clients (%d simulated at %g×)", target, realTime(sc, good), good, sc.TimeScale)
	if bad == 0 && good > 0 {
		answer = fmt.Sprintf("a site holds at least %d real-time clients within a %s backlog (%d simulated at %g×, the most tried)", realTime(sc, good), target, good, sc.TimeScale)
	}
	if good == 0 {
		answer = fmt.Sprintf("no client count tried (down to %d simulated) kept the backlog within %s", lo, target)
	}
	switch {
	case bad == 0:
		fmt.Fprintf(&md, "\n**%s**: the largest count tried (`--max`) held; the site holds at least that many (raise `--max` for the limit).\n\n", answer)
	default:
		fmt.Fprintf(&md, "\n**%s**; the next count tried, %d (%d real-time), did not hold.\n\n", answer, bad, realTime(sc, bad))
	}
	fmt.Fprintf(&md, `How real-time clients are counted: the run compresses simulated time %gx, so each simulated
client sends, per second of the wall clock, what %g clients reporting in real time send — the
same reports, %gx as often — and the site sees the same arrival rate of reports and state
messages as from %gx as many clients in real time. What the compression does not scale is the
state the site holds: the run's clients hold %gx fewer live states than the real-time site would
(its index and tables are that much smaller). That side is measured apart, by the storm
(every client's full scan held at once): check the real-time count against it.

![capacity](capacity.png)
`, sc.TimeScale, sc.TimeScale, sc.TimeScale, sc.TimeScale, sc.TimeScale)
	return md.String(), answer
}

// cmdBenchCapacity finds the largest number of clients per site that keeps the backlog under a
// target: it runs the scenario at client counts chosen by bisection (each run a fresh site,
// checked against the oracle) and prints and plots backlog against clients. The backlog of a
// run is its worst second's p99 delay from ingest acceptance to visible.
func cmdBenchCapacity(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench capacity", flag.ContinueOnError)
	scenario := fs.String("scenario", "", "scenario file (bench/scenarios/*.yaml)")
	target := fs.Duration("target-backlog", 30*time.Second, "largest acceptable backlog (worst p99 delay to visible)")
	lo := fs.Int("min", 1000, "smallest client count tried")
	hi := fs.Int("max", 200000, "largest client count tried")
	trials := fs.Int("trials", 6, "most runs")
	brokers := fs.String("kafka.brokers", "", "run the sites against this Kafka (default: embedded)")
	out := fs.String("out", "", "results directory (default bench/results/capacity-<scenario>-<yyyymmdd>)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *scenario == "" {
		return errors.New("bench capacity: --scenario is required")
	}
	sc, err := bench.LoadScenario(*scenario)
	if err != nil {
		return err
	}
	if *lo < 1 || *hi < *lo || *trials < 1 {
		return errors.New("bench capacity: want 1 <= --min <= --max and --trials >= 1")
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if *out == "" {
		*out = filepath.Join("bench", "results", fmt.Sprintf("capacity-%s-%s", sc.Name, time.Now().UTC().Format("20060102")))
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	var pts []bench.CapacityPoint
	try := func(n int) (bool, error) {
		run := *sc
		run.Clients, run.Waves = n, nil
		fmt.Fprintf(os.Stderr, "capacity: %d clients …\n", n)
		res, err := bench.RunScenario(ctx, bench.HarnessConfig{Scenario: &run, Bin: self, Brokers: *brokers, Progress: os.Stderr})
		if err != nil {
			return false, err
		}
		ok := res.OracleOK && res.MaxBacklogSecs <= target.Seconds()
		pts = append(pts, bench.CapacityPoint{Clients: n, BacklogSeconds: res.MaxBacklogSecs, OK: ok})
		fmt.Fprintf(os.Stderr, "capacity: %d clients: backlog %.1f s (target %s), oracle %v\n", n, res.MaxBacklogSecs, *target, res.OracleOK)
		if !res.OracleOK {
			return false, fmt.Errorf("%d clients: the reports differ from the oracle: %s", n, res.OracleError)
		}
		return ok, nil
	}
	// Bisection on a log scale between the largest count known to hold and the smallest
	// known not to.
	good, bad := 0, 0
	for i := 0; i < *trials; i++ {
		var n int
		switch {
		case good == 0 && bad == 0:
			n = *hi
		case good == 0:
			n = max(*lo, bad/4)
		case bad == 0:
			n = min(*hi, good*4)
		default:
			n = int(math.Sqrt(float64(good) * float64(bad)))
		}
		if (good > 0 && n <= good) || (bad > 0 && n >= bad) || n < *lo {
			break
		}
		ok, err := try(n)
		if err != nil {
			return err
		}
		if ok {
			good = n
		} else {
			bad = n
		}
		if good > 0 && bad > 0 && float64(bad)/float64(good) < 1.15 {
			break
		}
	}
	slices.SortFunc(pts, func(a, b bench.CapacityPoint) int { return a.Clients - b.Clients })
	title := sc.Name
	if sc.TimeScale != 1 {
		title = fmt.Sprintf("%s — clients simulated at %g× (real-time clients: × %g)", sc.Name, sc.TimeScale, sc.TimeScale)
	}
	if err := bench.WriteCapacityPlot(filepath.Join(*out, "capacity.png"), title, target.Seconds(), pts); err != nil {
		return err
	}
	md, answer := capacityReport(sc, *target, pts, good, bad, *lo)
	b, _ := json.MarshalIndent(struct {
		Scenario        string                `json:"scenario"`
		Target          float64               `json:"target_backlog_seconds"`
		TimeScale       float64               `json:"time_scale"`
		ReportEvery     float64               `json:"report_every_seconds"`
		Clients         int                   `json:"max_clients"`
		RealTimeClients int                   `json:"max_real_time_clients"`
		Points          []bench.CapacityPoint `json:"points"`
	}{sc.Name, target.Seconds(), sc.TimeScale, sc.Behaviour.ReportEvery.D().Seconds(), good, realTime(sc, good), pts}, "", "  ")
	_ = os.WriteFile(filepath.Join(*out, "capacity.json"), append(b, '\n'), 0o644)
	if err := os.WriteFile(filepath.Join(*out, "report.md"), []byte(md), 0o644); err != nil {
		return err
	}
	fmt.Println(answer)
	return nil
}
