package main

// Faults under load, with real processes (issue 4): the statepipe binary runs ingest and the
// projector as separate processes against a real Apache Kafka broker of the test's own, while
// signed clients report through the SDK. The projector is SIGKILLed mid-batch and restarted;
// the broker is SIGKILLed and restarted (ingest answers 503 with Retry-After meanwhile, the SDK
// retries). At the end the reports must equal the oracle of every acknowledged report, with
// every message in the raw log exactly once.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/statepipe/statepipe/client"
	"github.com/statepipe/statepipe/report"
	"github.com/statepipe/statepipe/schema"
)

// testBroker is a single-node Kafka started by scripts/kafka.sh on its own port, with a data
// dir that survives restarts.
type testBroker struct {
	port int
	data string
}

func (b *testBroker) env() []string {
	return append(os.Environ(), "KAFKA_PORT="+strconv.Itoa(b.port), "KAFKA_DATA="+b.data, "KAFKA_HEAP_OPTS=-Xmx384m")
}

func (b *testBroker) start(t *testing.T) {
	t.Helper()
	cmd := exec.Command("../../scripts/kafka.sh", "start")
	cmd.Env = b.env()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kafka.sh start: %v\n%s", err, out)
	}
}

// kill SIGKILLs the broker: no controlled shutdown, as in a power cut of the process.
func (b *testBroker) kill(t *testing.T) {
	t.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("../../.deps/kafka/run/broker-%d.pid", b.port))
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for syscall.Kill(pid, 0) == nil {
		time.Sleep(50 * time.Millisecond)
	}
}

func (b *testBroker) stop() {
	cmd := exec.Command("../../scripts/kafka.sh", "stop")
	cmd.Env = b.env()
	_ = cmd.Run()
}

// proc is one statepipe process whose stderr goes to a log file.
type proc struct {
	cmd *exec.Cmd
	url string
	log string
}

var procURL = regexp.MustCompile(`(https?://127\.0\.0\.1:[0-9]+)/v1/reports`)

func startProc(t *testing.T, bin, logFile string, args ...string) *proc {
	t.Helper()
	f, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	found := make(chan string, 1)
	go func() {
		defer f.Close()
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			fmt.Fprintln(f, sc.Text())
			if m := procURL.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
		}
	}()
	p := &proc{cmd: cmd, log: logFile}
	t.Cleanup(func() { p.kill() })
	select {
	case p.url = <-found:
	case <-time.After(60 * time.Second):
		t.Fatalf("%s did not start; its log: %s", args[0], logFile)
	}
	return p
}

func (p *proc) kill() {
	if p.cmd.ProcessState == nil {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		_ = p.cmd.Wait()
	}
}

// promValue sums the samples of a metric whose line starts with prefix.
func promValue(t *testing.T, url, prefix string) float64 {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var sum float64
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, prefix) {
			f := strings.Fields(line)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			sum += v
		}
	}
	return sum
}

func TestFaultsUnderLoadLoseAndDoubleNothing(t *testing.T) {
	if realKafka() == nil {
		t.Skip("needs real Apache Kafka (scripts/kafka.sh): the test SIGKILLs and restarts its own broker")
	}
	requireChdb(t)
	bin := buildBinary(t)
	broker := &testBroker{port: 19392, data: t.TempDir()}
	broker.start(t)
	t.Cleanup(broker.stop)
	brokers := fmt.Sprintf("127.0.0.1:%d", broker.port)
	site := fmt.Sprintf("F%04d", rand.IntN(10000))
	dir := t.TempDir()
	logs := filepath.Join(dir, "logs")
	_ = os.MkdirAll(logs, 0o755)
	t.Logf("process logs in %s", logs)
	defer func() {
		if t.Failed() {
			for _, f := range []string{"ingest.log", "projector.log"} {
				b, _ := os.ReadFile(filepath.Join(logs, f))
				t.Logf("--- %s (last 4 KiB)\n%s", f, b[max(0, len(b)-4096):])
			}
		}
	}()

	ing := startProc(t, bin, filepath.Join(logs, "ingest.log"), "ingest", "--kafka.brokers", brokers, "--site", site,
		"--listen", "127.0.0.1:0", "--ingest.site-key", filepath.Join(dir, "site.key"), "--ingest.site-key-create",
		"--ingest.produce-timeout", "2s", "--ingest.retry-after", "1", "--kafka.partitions", "4")
	projArgs := []string{"projector", "--kafka.brokers", brokers, "--site", site, "--listen", "127.0.0.1:0",
		"--chdb.path", filepath.Join(dir, "chdb"), "--projector.batch-wait", "50ms", "--kafka.partitions", "4",
		"--ingest.site-key", filepath.Join(dir, "site.key")} // the projector folds what ingest vouched for
	var projMu sync.Mutex
	proj := startProc(t, bin, filepath.Join(logs, "projector.log"), projArgs...)
	restartProjector := func() {
		projMu.Lock()
		defer projMu.Unlock()
		proj.kill()
		proj = startProc(t, bin, filepath.Join(logs, "projector.log"), projArgs...)
	}

	// An update list of every update, so the aggregates (what the list's compliance report
	// reads) are checked too, not only the live states.
	var ids []string
	for u := range 12 {
		ids = append(ids, fmt.Sprintf("%q", fmt.Sprintf("KB%02d", u)))
	}
	if code, err := httpPost(ing.url+"/v1/ref/lists", "application/x-ndjson", []byte(`{"id":"ALL","name":"all","updates":[`+strings.Join(ids, ",")+`]}`)); err != nil || code != 200 {
		t.Fatalf("list import: %d %v", code, err)
	}
	// Signed clients, enrolled first.
	const nClients, nUpdates = 120, 12
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	clients := make([]*client.Client, nClients)
	for i := range clients {
		c, err := client.Enroll(ctx, client.Config{URL: ing.url, Site: site, ClientID: fmt.Sprintf("pc-%03d", i),
			MaxAttempts: 200, BackoffMax: time.Second})
		if err != nil {
			t.Fatalf("enrol: %v", err)
		}
		clients[i] = c
	}
	// Load: each worker owns a slice of the clients and sends their reports one at a time (a
	// full report first, then deltas), keeping the oracle of what was acknowledged. Every
	// report carries a 402 progress message too, so the raw log grows beside the states.
	o := oracle{}
	var oMu sync.Mutex
	var sent, acked atomic.Int64
	var loadErr atomic.Pointer[error]
	stopLoad := make(chan struct{})
	var wg sync.WaitGroup
	const workers = 12
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			seq := map[int]uint64{}
			for round := 0; ; round++ {
				for c := w; c < nClients; c += workers {
					select {
					case <-stopLoad:
						return
					default:
					}
					full := round == 0
					var msgs []schema.StateMessage
					for u := range nUpdates {
						if full || rng.IntN(4) == 0 {
							msgs = append(msgs, schema.StateMessage{TopicType: schema.TopicUpdateCompliance,
								TopicID: fmt.Sprintf("KB%02d", u), State: int32(rng.IntN(4))})
						}
					}
					msgs = append(msgs, schema.StateMessage{TopicType: schema.TopicUpdateEnforcement,
						TopicID: fmt.Sprintf("KB%02d", rng.IntN(nUpdates)), State: int32(rng.IntN(15))})
					sent.Add(int64(len(msgs)))
					if err := clients[c].Report(ctx, full, msgs...); err != nil {
						loadErr.CompareAndSwap(nil, &err)
						return
					}
					acked.Add(int64(len(msgs)))
					oMu.Lock()
					for _, m := range msgs {
						seq[c]++
						m.Serial = seq[c]
						o.add(&schema.Report{Client: fmt.Sprintf("pc-%03d", c), Messages: []schema.StateMessage{m}})
					}
					oMu.Unlock()
				}
			}
		}()
	}
	waitAcked := func(more int64) {
		t.Helper()
		target := acked.Load() + more
		deadline := time.Now().Add(90 * time.Second)
		for acked.Load() < target {
			if loadErr.Load() != nil || time.Now().After(deadline) {
				t.Fatalf("load stalled at %d acknowledged messages (wanted %d): %v", acked.Load(), target, loadErr.Load())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	// 1. The projector SIGKILLed at random moments under load: mid-fetch, mid-insert,
	// between insert and commit.
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	for range 3 {
		waitAcked(int64(1500 + rng.IntN(3000)))
		time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond)
		restartProjector()
	}
	// 2. The broker SIGKILLed under load: ingest must answer 503 with Retry-After (counted),
	// the SDK retries, and after the restart everything acknowledged is there.
	waitAcked(2000)
	unavailableBefore := promValue(t, ing.url, `statepipe_ingest_requests_total{code="unavailable"`)
	broker.kill(t)
	t.Logf("broker killed at %d acknowledged messages", acked.Load())
	time.Sleep(4 * time.Second)
	unavailable := promValue(t, ing.url, `statepipe_ingest_requests_total{code="unavailable"`) - unavailableBefore
	broker.start(t)
	t.Logf("broker restarted; ingest answered %v reports 503 meanwhile", unavailable)
	if unavailable == 0 {
		t.Error("ingest never answered 503 while the broker was down")
	}
	waitAcked(3000)
	// 3. Once more the projector, after the broker's return.
	restartProjector()
	waitAcked(2000)
	close(stopLoad)
	wg.Wait()
	if p := loadErr.Load(); p != nil {
		t.Fatalf("a report was never acknowledged: %v", *p)
	}
	t.Logf("load: %d messages acknowledged (%d sent, counting retries of the same report once)", acked.Load(), sent.Load())

	// Converge: the compliance report equals the oracle; the raw log holds every message once.
	projMu.Lock()
	s := &testSite{t: t, code: site, url: proj.url}
	projMu.Unlock()
	want := o.want()
	var last string
	deadline := time.Now().Add(3 * time.Minute)
	for {
		got := s.compliance()
		res, code := s.sql("SELECT count() FROM " + database(site) + ".state_messages FINAL")
		raw := -1.0
		if code == 200 && len(res.Rows) == 1 {
			raw = res.Rows[0][0].(float64)
		}
		agg, scan := listCompliance(t, s.url+"/v1/reports/compliance?list=ALL"), listCompliance(t, s.url+"/v1/reports/compliance?list=ALL&source=scan")
		if matches(got, want) && raw == float64(acked.Load()) && matches(agg, want) && matches(scan, want) {
			break
		}
		last = fmt.Sprintf("raw log %v messages (want %d); compliance %+v, aggregates %+v, want %v", raw, acked.Load(), got.Updates, agg.Updates, want)
		if time.Now().After(deadline) {
			t.Fatalf("never equal to the oracle: %s", last)
		}
		time.Sleep(200 * time.Millisecond)
	}
	dead := promValue(t, proj.url, "statepipe_projector_dead_letters_total")
	if dead != 0 {
		t.Errorf("%v records dead-lettered; none were bad", dead)
	}
}

// listCompliance reads a compliance report (zero when it cannot be read yet).
func listCompliance(t *testing.T, url string) *report.Compliance {
	t.Helper()
	var c report.Compliance
	resp, err := http.Get(url)
	if err != nil {
		return &c
	}
	defer resp.Body.Close()
	if resp.StatusCode == 200 {
		_ = json.NewDecoder(resp.Body).Decode(&c)
	}
	return &c
}
