// Command hostile is the repeatable hostile run of a site: it starts `statepipe run` as a
// child process (loopback only, --ingest.auth required), keeps a legitimate signed load of
// enrolled machines running through the SDK, and throws at the site, one bounded attempt after
// another, what a hostile or broken client can send: handler bugs and non-UTF-8 ids, deep
// nesting, amplification bodies, wrapped integers, expensive and writing SQL, slow and idle
// connections, identity races, and records produced behind ingest's back — with a kill -9 and
// a restart on the same data directory in the middle. For every attempt it records what was
// sent, the answers, whether the process stayed alive, whether /healthz and a signed report
// still answered within their deadlines during and after, the legitimate load's latency and
// the site's RSS; at checkpoints it compares the site with an oracle computed from every
// acknowledged report (state_messages FINAL per client, the compliance report per update).
//
//	go run ./bench/hostile --bin ./bin/statepipe --out bench/results/hostile-YYYYMMDD
//
// README.md in this directory lists the attacks.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/statepipe/statepipe/schema"
)

const site = "P01"

// Run is one hostile run.
type Run struct {
	ctx     context.Context
	site    *Site
	hc      *http.Client // attacks: no timeout of its own (contexts bound each request)
	probeHC *http.Client // probes: a connection pool of their own
	oracle  *Oracle
	mon     *Monitor
	fleet   *Fleet
	down    atomic.Bool // the site is down on purpose

	out      string
	logMu    sync.Mutex
	logFile  *os.File
	attempts []*Attempt
	checks   []OracleCheck
	only     map[string]bool

	canary, after *Agent
	during        *Agent
	attackers     []*Agent
	sqlDir        string   // target directory of the writing-SQL attack
	witnesses     []*Agent // credentials whose answers a restart must not change
	loadStart     string   // /proc/loadavg when the run began
	started       time.Time
}

// Attempt is one row of the results table.
type Attempt struct {
	ID       string         `json:"id"`
	Attack   string         `json:"attack"`
	Sent     string         `json:"sent"`
	Bound    string         `json:"bound"`
	Expect   string         `json:"expect"`
	Requests int            `json:"requests"`
	Seconds  float64        `json:"seconds"`
	Answers  map[string]int `json:"answers"`
	Probes   []Probe        `json:"probes,omitempty"`

	Alive         bool        `json:"alive"`
	HealthAfterOK bool        `json:"health_after_ok"`
	ReportAfterOK bool        `json:"report_after_ok"`
	After         string      `json:"after"`
	Window        WindowStats `json:"during"`
	OthersCPU     float64     `json:"host_others_cpu_pct"` // of the machine's CPUs, by processes other than the site and this program
	RSSBefore     int64       `json:"rss_before_bytes"`
	RSSPeak       int64       `json:"rss_peak_bytes"`
	RSSAfter      int64       `json:"rss_after_bytes"`
	Verdict       string      `json:"verdict"`
	Failures      []string    `json:"failures,omitempty"`
	Notes         []string    `json:"notes,omitempty"`

	mu sync.Mutex
}

// Probe is one request of an attempt whose answer is judged on its own.
type Probe struct {
	Name string `json:"name"`
	Want string `json:"want"`
	Got  string `json:"got"`
	OK   bool   `json:"ok"`
}

// cutByServer, among the statuses a probe wants, accepts the server closing or resetting the
// connection instead of answering (net/http answers 431 to headers past its limit and closes
// while the client still writes, which the client sees as a reset).
const cutByServer = -1

func (a *Attempt) answer(res Resp) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.Requests++
	a.Answers[res.Key()]++
}

func (a *Attempt) count(key string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.Requests++
	a.Answers[key]++
}

func (a *Attempt) fail(format string, args ...any) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.Failures = append(a.Failures, fmt.Sprintf(format, args...))
}

func (a *Attempt) note(format string, args ...any) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.Notes = append(a.Notes, fmt.Sprintf(format, args...))
}

// judge records a probe: res must have one of the statuses want lists and, when field is
// not empty, name that field.
func (a *Attempt) judge(name string, res Resp, field string, want ...int) bool {
	a.answer(res)
	ok := res.Err == nil && slices.Contains(want, res.Status) && (field == "" || res.Field == field)
	if slices.Contains(want, cutByServer) && res.Err != nil {
		c := errClass(res.Err)
		ok = c == "connection reset" || c == "connection closed (EOF)" || c == "broken pipe"
	}
	var ws []string
	for _, s := range want {
		if s == cutByServer {
			ws = append(ws, "cut by the server")
		} else {
			ws = append(ws, fmt.Sprint(s))
		}
	}
	w := strings.Join(ws, "|")
	if field != "" {
		w += " field=" + field
	}
	got := res.Key()
	if res.Message != "" {
		got += ": " + clipped(res.Message, 160)
	}
	a.mu.Lock()
	a.Probes = append(a.Probes, Probe{Name: name, Want: w, Got: got, OK: ok})
	a.mu.Unlock()
	if !ok {
		a.fail("%s: want %s, got %s", name, w, got)
	}
	return ok
}

func (r *Run) logf(format string, args ...any) {
	line := fmt.Sprintf("%s %s", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
	r.logMu.Lock()
	defer r.logMu.Unlock()
	fmt.Println(line)
	if r.logFile != nil {
		fmt.Fprintln(r.logFile, line)
	}
}

// get sends a GET with a bearer token.
func (r *Run) get(ctx context.Context, token, path string) Resp {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	h := map[string]string{}
	if token != "" {
		h["Authorization"] = "Bearer " + token
	}
	return do(ctx, r.hc, http.MethodGet, r.site.URL()+path, nil, h)
}

// sqlRaw posts a query to /v1/sql.
func (r *Run) sqlRaw(ctx context.Context, token, query string) Resp {
	b, _ := json.Marshal(map[string]string{"query": query})
	return r.sqlBody(ctx, token, b)
}

func (r *Run) sqlBody(ctx context.Context, token string, body []byte) Resp {
	h := map[string]string{"Content-Type": "application/json"}
	if token != "" {
		h["Authorization"] = "Bearer " + token
	}
	return do(ctx, r.hc, http.MethodPost, r.site.URL()+"/v1/sql", bodyOf(body), h)
}

// sql runs a query and decodes the answer.
func (r *Run) sql(ctx context.Context, token, query string) (*schema.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	res := r.sqlRaw(ctx, token, query)
	if res.Err != nil || res.Status != 200 {
		return nil, fmt.Errorf("sql %q: %s %s", clipped(query, 80), res.Key(), clipped(res.Message, 300))
	}
	var out schema.Result
	if err := json.Unmarshal(res.Body, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// metric sums the samples of a metric whose labels include every one of want.
func (r *Run) metric(ctx context.Context, name string, want map[string]string) (float64, error) {
	res := r.get(ctx, r.site.ReaderToken, "/metrics")
	if res.Err != nil || res.Status != 200 {
		return 0, fmt.Errorf("/metrics: %s", res.Key())
	}
	var sum float64
	found := false
	for _, line := range strings.Split(string(res.Body), "\n") {
		if !strings.HasPrefix(line, name) || strings.HasPrefix(line, "#") {
			continue
		}
		rest := line[len(name):]
		labels := ""
		if strings.HasPrefix(rest, "{") {
			i := strings.Index(rest, "}")
			labels, rest = rest[1:i], rest[i+1:]
		} else if !strings.HasPrefix(rest, " ") {
			continue // another metric with this prefix
		}
		match := true
		for k, v := range want {
			if !strings.Contains(","+labels+",", ","+k+"=\""+v+"\",") {
				match = false
			}
		}
		if !match {
			continue
		}
		var v float64
		fmt.Sscan(strings.TrimSpace(rest), &v)
		sum += v
		found = true
	}
	if !found {
		return 0, nil
	}
	return sum, nil
}

// attempt runs one bounded attack and judges the site during and after it.
func (r *Run) attempt(id, attack, sent, bound, expect string, limit time.Duration, fn func(ctx context.Context, a *Attempt)) *Attempt {
	a := &Attempt{ID: id, Attack: attack, Sent: sent, Bound: bound, Expect: expect, Answers: map[string]int{}}
	if len(r.only) > 0 && !r.only[id] && !r.only[id[:2]] {
		return nil
	}
	r.logf("=== %s %s", id, attack)
	r.attempts = append(r.attempts, a)
	panics0, _ := r.metric(r.ctx, "statepipe_http_panics_total", nil)
	a.RSSBefore = r.site.MarkPeak()
	cpu0 := r.cpuSnapshot()
	start := time.Now()
	ctx, cancel := context.WithTimeout(r.ctx, limit)
	stopProbe := r.probeDuring(ctx)
	func() {
		defer func() {
			if v := recover(); v != nil {
				a.fail("the tool itself panicked: %v", v)
			}
		}()
		fn(ctx, a)
	}()
	if ctx.Err() == context.DeadlineExceeded {
		a.note("stopped at its time bound (%s)", limit)
	}
	stopProbe()
	cancel()
	end := time.Now()
	a.Seconds = end.Sub(start).Seconds()
	a.OthersCPU = r.cpuSnapshot().othersSince(cpu0, end.Sub(start))
	a.RSSPeak = r.site.Peak()
	r.judgeAfter(a, start, end)
	if panics1, err := r.metric(r.ctx, "statepipe_http_panics_total", nil); err == nil && panics1 > panics0 {
		a.fail("statepipe_http_panics_total rose by %.0f: a handler panicked (recovered as 500, see the site log)", panics1-panics0)
	}
	a.Verdict = "PASS"
	if len(a.Failures) > 0 {
		a.Verdict = "FAIL"
	}
	r.logf("--- %s %s in %.1fs: %s answers=%v rss %s/%s/%s legit p99 %.0f ms failures=%v notes=%v",
		id, a.Verdict, a.Seconds, a.Expect, a.Answers, mib(a.RSSBefore), mib(a.RSSPeak), mib(a.RSSAfter), a.Window.LegitP99Ms, a.Failures, a.Notes)
	return a
}

// judgeAfter checks the site after an attempt: still the same process, /healthz 200 within
// 2 s, a signed report acknowledged within 5 s; and the probes of the window.
func (r *Run) judgeAfter(a *Attempt, start, end time.Time) {
	a.Alive = r.site.Alive()
	if !a.Alive {
		a.fail("the site process died: %s", strings.Join(r.site.Crashes(), " | "))
		r.logf("site died during %s: restarting it", a.ID)
		r.down.Store(true)
		if err := r.site.Start(); err == nil {
			if _, err := r.site.WaitHealthy(180 * time.Second); err != nil {
				a.fail("and did not restart: %v", err)
			}
		}
		r.down.Store(false)
	}
	ctx, cancel := context.WithTimeout(r.ctx, 2*time.Second)
	h := do(ctx, r.probeHC, http.MethodGet, r.site.URL()+"/healthz", nil, nil)
	cancel()
	a.HealthAfterOK = h.Err == nil && h.Status == 200
	var rep Resp
	for range 3 { // a 429 of the after-probe itself is not the attack's doing
		ctx, cancel = context.WithTimeout(r.ctx, 5*time.Second)
		rep = r.after.report(ctx, nil, r.after.msg("KB-AFTER", 3))
		cancel()
		if rep.Status != 429 {
			break
		}
		time.Sleep(time.Second)
	}
	a.ReportAfterOK = rep.Err == nil && rep.Status == 200
	a.After = fmt.Sprintf("healthz %s in %d ms; signed report %s in %d ms", h.Key(), h.Latency.Milliseconds(), rep.Key(), rep.Latency.Milliseconds())
	if !a.HealthAfterOK {
		a.fail("after: /healthz did not answer 200 within 2 s (%s)", h.Key())
	}
	if !a.ReportAfterOK {
		a.fail("after: a signed report was not acknowledged within 5 s (%s %s)", rep.Key(), rep.Message)
	}
	time.Sleep(1500 * time.Millisecond)
	a.RSSAfter = r.site.RSS()
	a.Window = r.mon.window(start, end.Add(2*time.Second))
	w := a.Window
	if w.HealthN > 0 && w.HealthOK < w.HealthN {
		a.fail("during: /healthz failed %d of %d probes (2 s deadline): %v", w.HealthN-w.HealthOK, w.HealthN, w.HealthErrors)
	}
	if w.CanaryN > 0 && w.CanaryOK < w.CanaryN {
		a.fail("during: the canary's signed report failed %d of %d times (5 s deadline): %v", w.CanaryN-w.CanaryOK, w.CanaryN, w.CanaryErrors)
	}
	if w.LegitFail > 0 {
		a.fail("during: %d legitimate reports were refused for good: %v", w.LegitFail, w.LegitErrors)
	}
}

// probeDuring probes the site while an attempt runs, from its first moment: /healthz and a
// signed report of the during-probe agent every 250 ms (each probe started before the attack
// ended is waited for and counted, so an attack of a few milliseconds is probed too).
func (r *Run) probeDuring(ctx context.Context) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			var pw sync.WaitGroup
			pw.Add(2)
			go func() {
				defer pw.Done()
				c, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				down := r.down.Load()
				res := do(c, r.probeHC, http.MethodGet, r.site.URL()+"/healthz", nil, nil)
				r.mon.add(&r.mon.health, sample{at: time.Now().Add(-res.Latency), lat: res.Latency, ok: res.Err == nil && res.Status == 200, down: down || r.down.Load(), what: "during-probe " + res.Key()})
			}()
			go func() {
				defer pw.Done()
				c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				down := r.down.Load()
				start := time.Now()
				res := r.during.report(c, nil, r.during.msg("KB-DURING", 2))
				if res.Status == 429 { // its own pace, not the attack's doing
					return
				}
				r.mon.add(&r.mon.canary, sample{at: start, lat: time.Since(start), ok: res.Err == nil && res.Status == 200, down: down || r.down.Load(),
					what: "during-probe " + res.Key() + " " + clipped(res.Message, 120)})
			}()
			pw.Wait()
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// cpuSnap is the CPU time used so far by the whole machine, the site and this program.
type cpuSnap struct{ host, site, self float64 }

func (r *Run) cpuSnapshot() cpuSnap {
	return cpuSnap{host: hostBusyCPU(), site: procCPU(r.site.PID()), self: procCPU(os.Getpid())}
}

// othersSince returns the share (percent of every CPU) that processes other than the site and
// this program used since c0: other work on the machine competing with the site. A restart
// of the site in between makes its share unknown (then 0 is reported for it, and the site's
// CPU may count as others').
func (c cpuSnap) othersSince(c0 cpuSnap, d time.Duration) float64 {
	site := c.site - c0.site
	if site < 0 {
		site = 0
	}
	others := (c.host - c0.host) - site - (c.self - c0.self)
	if d <= 0 || others < 0 {
		return 0
	}
	return others / d.Seconds() / float64(runtime.NumCPU()) * 100
}

// hostBusyCPU returns the CPU seconds the machine spent not idle (from /proc/stat).
func hostBusyCPU() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	var total, idle float64
	for i, v := range f[1:] {
		var x float64
		fmt.Sscan(v, &x)
		if i < 8 { // user nice system idle iowait irq softirq steal
			total += x
		}
		if i == 3 || i == 4 {
			idle += x
		}
	}
	return (total - idle) / 100 // USER_HZ
}

// freePort returns a loopback port nobody listens on now.
func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func randomToken() string {
	var b [16]byte
	_, _ = io.ReadFull(randReader, b[:])
	return fmt.Sprintf("%x", b)
}

func main() {
	var (
		bin      = flag.String("bin", "./bin/statepipe", "the statepipe binary to attack")
		out      = flag.String("out", "", "results directory (default bench/results/hostile-YYYYMMDD)")
		chdbLib  = flag.String("chdb-lib", os.Getenv("CHDB_LIB_PATH"), "libchdb.so for the site (default $CHDB_LIB_PATH, then .deps/chdb/libchdb.so)")
		port     = flag.Int("port", 0, "the site's HTTP port on 127.0.0.1 (0: a free one)")
		kport    = flag.Int("kafka-port", 0, "the embedded broker's port on 127.0.0.1 (0: a free one)")
		data     = flag.String("data", "", "the site's data directory, which must not exist (default a new /tmp/hostile-data-*)")
		clients  = flag.Int("clients", 32, "legitimate machines reporting throughout")
		only     = flag.String("only", "", "comma-separated attempt ids or families (A1,A5b,K1,…) to run; default all")
		skipLong = flag.Bool("quick", false, "shorter bounds (debugging the tool)")
	)
	flag.Parse()
	quick, legitMachines = *skipLong, *clients
	if *chdbLib == "" {
		*chdbLib, _ = filepath.Abs(".deps/chdb/libchdb.so")
	}
	if *out == "" {
		*out = filepath.Join("bench", "results", "hostile-"+time.Now().Format("20060102"))
	}
	binAbs, _ := filepath.Abs(*bin)
	stamp := time.Now().Format("150405")
	if *data == "" {
		*data = "/tmp/hostile-data-" + stamp
	}
	if *port == 0 {
		*port = freePort()
	}
	if *kport == 0 {
		*kport = freePort()
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	raiseFileLimit()
	r := &Run{ctx: ctx, out: *out, oracle: newOracle(), mon: &Monitor{}, only: map[string]bool{}, started: time.Now()}
	for _, o := range strings.Split(*only, ",") {
		if o = strings.TrimSpace(o); o != "" {
			r.only[o] = true
		}
	}
	r.logFile, _ = os.Create(filepath.Join(*out, "run.log"))
	r.hc = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, MaxConnsPerHost: 0, IdleConnTimeout: 10 * time.Second, DisableCompression: true}}
	r.probeHC = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4, IdleConnTimeout: 10 * time.Second}}
	cwd := "/tmp/hostile-cwd-" + stamp
	r.sqlDir = "/tmp/hostile-sqlw-" + stamp
	for _, d := range []string{cwd, r.sqlDir} {
		_ = os.MkdirAll(d, 0o755)
	}
	r.site = &Site{Bin: binAbs, ChdbLib: *chdbLib, Data: *data, Cwd: cwd, LogDir: *out,
		Listen: fmt.Sprintf("127.0.0.1:%d", *port), KafkaListen: fmt.Sprintf("127.0.0.1:%d", *kport),
		AdminToken: "admin-" + randomToken(), ReaderToken: "reader-" + randomToken()}
	if _, err := os.Stat(*data); err == nil {
		fmt.Fprintf(os.Stderr, "hostile: the data directory %s exists; give a new one\n", *data)
		os.Exit(2)
	}
	code := r.run()
	stop()
	os.Exit(code)
}

// run is the whole run; it returns the exit code (1 when any attempt failed).
func (r *Run) run() int {
	r.logf("statepipe %s %s", r.site.Bin, strings.Join(r.site.Args(), " "))
	if err := r.site.Start(); err != nil {
		r.logf("cannot start the site: %v", err)
		return 2
	}
	defer func() {
		if r.site.Alive() {
			r.site.Term(20 * time.Second)
		}
	}()
	took, err := r.site.WaitHealthy(180 * time.Second)
	if err != nil {
		r.logf("the site did not become healthy: %v", err)
		return 2
	}
	r.logf("site healthy after %s, pid %d, rss %s", took.Round(time.Millisecond), r.site.PID(), mib(r.site.RSS()))
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		r.loadStart = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	bg, cancelBG := context.WithCancel(r.ctx)
	defer cancelBG()
	go r.site.sampleRSS(bg)

	var res Resp
	if r.canary, res = r.newAgent(r.ctx, "probe-canary", nil); r.canary == nil {
		r.logf("cannot enrol the canary: %s %s", res.Key(), res.Message)
		return 2
	}
	if r.after, res = r.newAgent(r.ctx, "probe-after", nil); r.after == nil {
		r.logf("cannot enrol the after-probe: %s", res.Key())
		return 2
	}
	if r.during, res = r.newAgent(r.ctx, "probe-during", nil); r.during == nil {
		r.logf("cannot enrol the during-probe: %s", res.Key())
		return 2
	}
	for i := range 4 {
		ag, res := r.newAgent(r.ctx, fmt.Sprintf("hostile-attacker-%d", i), nil)
		if ag == nil {
			r.logf("cannot enrol an attacker: %s", res.Key())
			return 2
		}
		r.attackers = append(r.attackers, ag)
	}
	fleet, err := r.newFleet(r.ctx, legitMachines)
	if err != nil {
		r.logf("%v", err)
		return 2
	}
	r.fleet = fleet
	fleet.Start()
	go r.probe(bg, r.canary)
	r.logf("%d legitimate machines reporting; canary and probes running", len(fleet.clients))

	r.attempt("B0", "baseline: no attack", "nothing (legitimate load and probes only)", "15 s", "every probe and legitimate report answered",
		bounded(15*time.Second), func(ctx context.Context, a *Attempt) { <-ctx.Done() })
	r.attacksInput()
	r.attacksSQLWrite()
	r.attacksIdentity()
	r.attacksBehindIngest()
	r.killAndRestart()
	r.attacksExpensiveSQL()
	r.attacksConnections()
	r.attackOneAddress()
	r.finish()
	cancelBG()
	return r.write()
}

var (
	quick         bool
	legitMachines = 32
)

// bounded shortens a time bound with --quick.
func bounded(d time.Duration) time.Duration {
	if quick {
		return max(d/3, 5*time.Second)
	}
	return d
}

func raiseFileLimit() {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) == nil && l.Cur < l.Max {
		l.Cur = l.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
}
