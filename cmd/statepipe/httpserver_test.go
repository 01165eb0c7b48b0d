package main

// The node's HTTP server under clients that misbehave: slow bodies, slow headers, idle
// keep-alives and slow readers (issue 11: one request must never crash, freeze, fill or fool
// a site), a handler that panics, and a stop while requests run.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/statepipe/statepipe/ingest"
	"github.com/statepipe/statepipe/internal/kafka"
	"github.com/statepipe/statepipe/schema"
)

// startSiteHTTP starts a site in-process like startSite, its HTTP server configured by hc.
func startSiteHTTP(t *testing.T, o siteOpts, hc httpConfig) (s *testSite, stopped <-chan time.Duration) {
	t.Helper()
	requireChdb(t)
	data := t.TempDir()
	code := fmt.Sprintf("H%d%04d", siteSeq.Add(1), time.Now().UnixNano()%10000)
	cfg := runConfig{Data: data, Listen: "127.0.0.1:0", KafkaListen: "127.0.0.1:0", Site: code,
		Kafka: kafka.DefaultConfig(), Ingest: ingestDefaults(), Auth: authDefaults(ingest.AuthOptional), Projector: projectorDefaults()}
	cfg.Kafka.Brokers = realKafka()
	cfg.Kafka.Partitions = 4
	cfg.Projector.BatchWait = 50 * time.Millisecond
	cfg.Store.ChdbPath = chdbDir
	if o.tune != nil {
		o.tune(&cfg)
	}
	log := o.log
	if log == nil {
		log = quietLogger()
	}
	ctx, cancel := context.WithCancel(context.Background())
	n, err := startRun(ctx, cfg, o.wrap, log)
	if err != nil {
		cancel()
		t.Fatalf("cannot start site: %v", err)
	}
	if err := n.configureHTTP(hc); err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- n.run(ctx) }()
	took := make(chan time.Duration, 1)
	s = &testSite{t: t, code: code, url: n.url(), node: n}
	var once sync.Once
	s.stop = func() {
		once.Do(func() {
			start := time.Now()
			cancel()
			if err := <-done; err != nil {
				t.Errorf("site stopped with error: %v", err)
			}
			took <- time.Since(start)
		})
	}
	t.Cleanup(s.stop)
	// As startSite: attacks begin on a site that has read its identity log (before that,
	// ingest answers 503 by design).
	waitHealthy(t, s.url)
	return s, took
}

// postJSON posts one valid unsigned report for client and returns the status and latency.
func postJSON(c *http.Client, url, site, client string, serial int) (int, time.Duration, error) {
	body := fmt.Sprintf(`{"v":1,"client":%q,"site":%q,"messages":[{"serial":%d,"time":1764100000000,"topic_type":500,"topic_id":"KB1","state":3,"error":0}]}`,
		client, site, serial)
	start := time.Now()
	resp, err := c.Post(url+"/v1/reports", schema.MediaJSON, strings.NewReader(body))
	if err != nil {
		return 0, time.Since(start), err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode, time.Since(start), nil
}

// Slow-loris: 300 connections trickling report bodies (reconnecting whenever cut, so 300 are
// trickling throughout), 50 trickling headers and 2,000 idle keep-alives, while legitimate
// reports are posted: every one is answered 200 promptly; tricklers are cut with 408 after
// the grace, header tricklers after the header timeout, idle connections after the idle
// timeout. (Ingest once took its in-flight slot before reading the body, with no body
// deadline and no idle timeout: every report was answered 503.)
func TestSlowClientsCannotTakeIngestOffline(t *testing.T) {
	hc := defaultHTTPConfig()
	hc.RateGrace, hc.IdleTimeout, hc.ReadHeaderTimeout = time.Second, 2*time.Second, 2*time.Second
	// Every connection here comes from 127.0.0.1, the legitimate ones too: what is tested is
	// the pace and idle limits, not the cap per address (TestOneAddressCannotTakeEveryConnection).
	hc.MaxConnsPerAddress = 0
	s, _ := startSiteHTTP(t, siteOpts{}, hc)
	addr := strings.TrimPrefix(s.url, "http://")
	ctx, stopLoad := context.WithCancel(context.Background())
	var load sync.WaitGroup
	defer func() { stopLoad(); load.Wait() }()

	// Body tricklers: headers claiming 100,000 bytes, then a byte every 200 ms.
	var cut408, cutOther atomic.Int64
	var cutAfter sync.Mutex
	var cutTimes []time.Duration
	for i := range 300 {
		load.Add(1)
		go func() {
			defer load.Done()
			for ctx.Err() == nil {
				status, lived := trickleBody(ctx, addr)
				switch {
				case status == http.StatusRequestTimeout:
					cut408.Add(1)
					cutAfter.Lock()
					cutTimes = append(cutTimes, lived)
					cutAfter.Unlock()
				case ctx.Err() == nil:
					cutOther.Add(1)
					t.Logf("trickler %d: status %d after %s", i, status, lived)
				}
			}
		}()
	}
	// Header tricklers: a byte of headers every 200 ms, never finishing them.
	var headerCuts atomic.Int64
	for range 50 {
		load.Add(1)
		go func() {
			defer load.Done()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				return
			}
			defer c.Close()
			start := time.Now()
			for _, b := range []byte("POST /v1/reports HTTP/1.1\r\nHost: statepipe-test-host-name-that-goes-on\r\n") {
				if _, err := c.Write([]byte{b}); err != nil {
					break
				}
				if sleepCtx(ctx, 200*time.Millisecond) != nil {
					return
				}
			}
			if lived := time.Since(start); lived < hc.ReadHeaderTimeout+2*time.Second {
				headerCuts.Add(1)
			}
		}()
	}
	// Idle keep-alives: one request, then nothing.
	idle := make(chan time.Duration, 2000)
	for range 2000 {
		load.Add(1)
		go func() {
			defer load.Done()
			lived, err := idleKeepAlive(ctx, addr)
			if err != nil && ctx.Err() == nil {
				t.Errorf("idle keep-alive: %v", err)
				lived = -1
			}
			idle <- lived
		}()
	}
	time.Sleep(hc.RateGrace / 2) // the attack is under way

	// Legitimate reports, 10 per second for 3 s, while all of it goes on.
	legit := &http.Client{Timeout: 10 * time.Second}
	var lat []time.Duration
	for i := range 30 {
		status, took, err := postJSON(legit, s.url, s.code, fmt.Sprintf("legit-%03d", i), 1)
		if err != nil || status != 200 {
			t.Fatalf("legitimate report %d under slow-loris: status %d, %v after %s, want 200 (site metrics: %s)", i, status, err, took, rejections(s))
		}
		lat = append(lat, took)
		time.Sleep(100 * time.Millisecond)
	}
	slices.Sort(lat)
	t.Logf("legitimate reports under 300 body tricklers, 50 header tricklers, 2,000 idle keep-alives: p50 %s, max %s",
		lat[len(lat)/2], lat[len(lat)-1])
	// What fails without the fix is the answer (503: every slot held by a trickler), not its
	// speed; the bound only catches a report that waited for the tricklers' deadlines.
	if lat[len(lat)-1] > hc.RateGrace {
		t.Errorf("slowest legitimate report took %s, longer than a trickler is let live", lat[len(lat)-1])
	}

	// Idle connections were closed after the idle timeout.
	for range 2000 {
		select {
		case lived := <-idle:
			if lived < 0 {
				continue
			}
			if lived > hc.IdleTimeout+3*time.Second {
				t.Fatalf("an idle keep-alive lived %s, idle timeout %s", lived, hc.IdleTimeout)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("idle keep-alives still open 30 s after the idle timeout")
		}
	}
	stopLoad()
	load.Wait()
	cutAfter.Lock()
	slices.Sort(cutTimes)
	cutAfter.Unlock()
	if len(cutTimes) < 300 || cutOther.Load() > 0 {
		t.Fatalf("%d tricklers cut with 408, %d otherwise; want at least 300, all 408", len(cutTimes), cutOther.Load())
	}
	if worst := cutTimes[len(cutTimes)-1]; worst > hc.RateGrace+3*time.Second {
		t.Errorf("a trickler lived %s (grace %s)", worst, hc.RateGrace)
	}
	t.Logf("%d trickling bodies cut with 408 after p50 %s, max %s", len(cutTimes), cutTimes[len(cutTimes)/2], cutTimes[len(cutTimes)-1])
	if n := headerCuts.Load(); n != 50 {
		t.Errorf("%d of 50 header tricklers cut within the header timeout", n)
	}
	if got := promValue(t, s.url, `statepipe_ingest_rejected_total{reason="slow_body"`); got < float64(len(cutTimes)) {
		t.Errorf("rejected{slow_body} = %v, want at least %d", got, len(cutTimes))
	}
	if got := promValue(t, s.url, `statepipe_http_slow_clients_total{direction="request"}`); got < float64(len(cutTimes)) {
		t.Errorf("slow_clients{request} = %v, want at least %d", got, len(cutTimes))
	}
}

// trickleBody sends a report's headers and then one byte every 200 ms until the server
// answers; it returns the status (0: none) and how long the connection lived.
func trickleBody(ctx context.Context, addr string) (int, time.Duration) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return 0, 0
	}
	defer c.Close()
	start := time.Now()
	fmt.Fprintf(c, "POST /v1/reports HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n")
	answered := make(chan int, 1)
	go func() {
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			answered <- 0
			return
		}
		var eb schema.ErrorBody
		_ = json.NewDecoder(resp.Body).Decode(&eb)
		_, _ = io.Copy(io.Discard, resp.Body)
		if _, err := br.ReadByte(); err == nil || eb.Error.Code != "timeout" || !resp.Close {
			answered <- -resp.StatusCode // answered, but not closed, or not the error body
			return
		}
		answered <- resp.StatusCode
	}()
	for {
		select {
		case status := <-answered:
			return status, time.Since(start)
		case <-ctx.Done():
			return 0, time.Since(start)
		case <-time.After(200 * time.Millisecond):
			_, _ = c.Write([]byte{' '})
		}
	}
}

// idleKeepAlive makes one request on a new connection and waits for the server to close it.
func idleKeepAlive(ctx context.Context, addr string) (time.Duration, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	go func() { <-ctx.Done(); _ = c.Close() }()
	fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	start := time.Now()
	_ = c.SetReadDeadline(time.Now().Add(60 * time.Second))
	if _, err := br.ReadByte(); err != io.EOF {
		return time.Since(start), fmt.Errorf("waiting for the server to close an idle connection: %v", err)
	}
	return time.Since(start), nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// A client that stops reading a large answer is cut after about the grace: the handler's
// write fails and it returns, rather than holding its goroutine and connection for good.
func TestSlowReaderIsCut(t *testing.T) {
	hc := defaultHTTPConfig()
	hc.RateGrace = time.Second
	s, _ := startSiteHTTP(t, siteOpts{}, hc)
	returned := make(chan error, 1)
	s.node.mux.HandleFunc("GET /test/large", func(w http.ResponseWriter, _ *http.Request) {
		chunk := bytes.Repeat([]byte("x"), 1<<20)
		for range 256 {
			if _, err := w.Write(chunk); err != nil {
				returned <- err
				return
			}
		}
		returned <- nil
	})
	c, err := net.Dial("tcp", strings.TrimPrefix(s.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /test/large HTTP/1.1\r\nHost: x\r\n\r\n") // and never read
	select {
	case err := <-returned:
		if err == nil {
			t.Fatal("256 MiB written to a client that reads nothing")
		}
	case <-time.After(hc.RateGrace + 15*time.Second):
		t.Fatal("the handler is still writing to a client that reads nothing")
	}
	if got := promValue(t, s.url, `statepipe_http_slow_clients_total{direction="response"}`); got != 1 {
		t.Errorf("slow_clients{response} = %v, want 1", got)
	}
}

// A client that reads a large answer well under --http.min-rate is cut within about the
// grace plus the answer's size at the rate, however steadily it reads; one that reads fast
// gets the whole answer. (Every 64 KiB piece once got a fresh grace: a reader taking each
// piece a little faster than grace + piece / rate held a large answer for as long as it lasted
// at its pace: here 4 minutes, hours for a slower reader of a larger answer.)
func TestSlowSteadyReaderIsCut(t *testing.T) {
	hc := defaultHTTPConfig() // the default grace: 5s
	hc.MinRate = 4 << 20      // a large answer in seconds, not hours
	s, _ := startSiteHTTP(t, siteOpts{}, hc)
	const size = 256 << 20
	returned := make(chan error, 2)
	s.node.mux.HandleFunc("GET /test/large", func(w http.ResponseWriter, _ *http.Request) {
		chunk := bytes.Repeat([]byte("x"), 1<<20)
		for range size / len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				returned <- err
				return
			}
		}
		returned <- nil
	})
	// A fast reader gets all of it.
	resp, err := http.Get(s.url + "/test/large")
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || n != size || <-returned != nil {
		t.Fatalf("a fast reader got %d bytes of %d: %v", n, size, err)
	}
	// A reader at 1 MiB/s, a quarter of the minimum rate — but taking every 64 KiB piece well
	// within grace + piece / rate, even as the kernel wakes a blocked writer only once a good
	// part of its buffer has drained — is cut.
	const rate = 1 << 20
	c, err := net.Dial("tcp", strings.TrimPrefix(s.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /test/large HTTP/1.1\r\nHost: x\r\n\r\n")
	start := time.Now()
	bound := hc.RateGrace + time.Duration(size/hc.MinRate)*time.Second // the whole answer at the minimum rate
	read := make(chan int64, 1)
	go func() {
		buf := make([]byte, 16<<10)
		var got int64
		for {
			if ahead := time.Duration(float64(got)/rate*float64(time.Second)) - time.Since(start); ahead > 0 {
				time.Sleep(ahead)
			}
			_ = c.SetReadDeadline(time.Now().Add(bound + 30*time.Second))
			n, err := c.Read(buf)
			got += int64(n)
			if err != nil {
				read <- got
				return
			}
		}
	}()
	select {
	case err := <-returned:
		took := time.Since(start)
		if err == nil {
			t.Fatalf("%d MiB written to a reader at 1 MiB/s under a minimum rate of 4 MiB/s", size>>20)
		}
		t.Logf("a reader at 1 MiB/s (minimum 4 MiB/s) of a %d MiB answer was cut after %v (bound %v; the whole answer at its pace: %v)",
			size>>20, took.Round(time.Millisecond), bound, time.Duration(size/rate)*time.Second)
	case <-time.After(bound + 10*time.Second):
		t.Fatalf("a reader at 1 MiB/s of a %d MiB answer still held it after %v (bound %v)", size>>20, time.Since(start).Round(time.Second), bound)
	}
	if got := <-read; got >= size {
		t.Errorf("the slow reader got the whole answer (%d bytes)", got)
	}
	if got := promValue(t, s.url, `statepipe_http_slow_clients_total{direction="response"}`); got != 1 {
		t.Errorf("slow_clients{response} = %v, want 1", got)
	}
}

// One source address cannot take every connection: past --http.max-conns-per-address its
// connections are closed as soon as they are accepted, and another address is served. (With
// one cap for everyone, 60 idle sockets from one address under --http.max-conns 50 left a
// /healthz from elsewhere waiting until it timed out.)
func TestOneAddressCannotTakeEveryConnection(t *testing.T) {
	hc := defaultHTTPConfig()
	hc.MaxConns, hc.MaxConnsPerAddress, hc.ReadHeaderTimeout = 50, 10, time.Minute
	s, _ := startSiteHTTP(t, siteOpts{}, hc)
	addr := strings.TrimPrefix(s.url, "http://")
	from := func(ip string) *net.Dialer {
		return &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	}
	// 60 idle connections from 127.0.0.1, as many as the attacker can open.
	var idle []net.Conn
	defer func() {
		for _, c := range idle {
			_ = c.Close()
		}
	}()
	for range 60 {
		c, err := from("127.0.0.1").Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
	}
	// The server closes all but 10 of them at once; the 10 stay open.
	held, closed := 0, 0
	for _, c := range idle {
		_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); errors.Is(err, os.ErrDeadlineExceeded) {
			held++
		} else {
			closed++
		}
	}
	if held != hc.MaxConnsPerAddress || closed != 60-hc.MaxConnsPerAddress {
		t.Errorf("of 60 idle connections from one address: %d held, %d closed; want %d held", held, closed, hc.MaxConnsPerAddress)
	}
	// Another address is served at once.
	get := func(ip string) (int, error) {
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: from(ip).DialContext, DisableKeepAlives: true}}
		resp, err := c.Get(s.url + "/healthz")
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	start := time.Now()
	if status, err := get("127.0.0.2"); err != nil || status != 200 {
		t.Fatalf("/healthz from 127.0.0.2 beside 60 idle connections of 127.0.0.1: %d %v", status, err)
	}
	t.Logf("/healthz from another address beside %d idle connections of one: 200 in %v", len(idle), time.Since(start).Round(time.Millisecond))
	// The full address's next connection is closed at once; once its idle ones go, it is
	// served again.
	if _, err := get("127.0.0.1"); err == nil {
		t.Error("a connection past the address's cap was served")
	}
	for _, c := range idle {
		_ = c.Close()
	}
	idle = nil
	deadline := time.Now().Add(5 * time.Second)
	for {
		status, err := get("127.0.0.1")
		if err == nil && status == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("127.0.0.1 not served 5s after closing its connections: %d %v", status, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := promValue(t, s.url, "statepipe_http_connections_refused_total"); got < 51 {
		t.Errorf("statepipe_http_connections_refused_total = %v, want at least 51", got)
	}
}

// syncBuffer is a log sink for the test to read.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

var nilRecord *struct{ n int }

//go:noinline
func readNil() int { return nilRecord.n } // a real fault: SIGSEGV, turned into a panic by Go

// A nil dereference in a handler is answered 500 with the error body, logged with its stack
// and counted, and the site keeps serving — with chDB loaded and folding, whose signal
// handling once turned the fault into the process's death ("signal: segmentation fault").
func TestHandlerPanicIs500AndTheSiteLives(t *testing.T) {
	t.Parallel()
	logs := &syncBuffer{}
	s := startSite(t, siteOpts{log: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	ctx := context.Background()
	o := oracle{}
	for c := range 10 {
		id := fmt.Sprintf("pc-%02d", c)
		msgs := []schema.StateMessage{{TopicType: 500, TopicID: "KB1", State: int32(c % 4)}}
		if err := s.client(id).Report(ctx, true, msgs...); err != nil {
			t.Fatal(err)
		}
		o.add(&schema.Report{Client: id, Messages: msgs})
	}
	s.waitFor(o) // chDB has folded: the library is loaded and has run queries
	s.node.mux.HandleFunc("GET /test/nil", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprint(w, readNil())
	})
	s.node.mux.HandleFunc("GET /test/nil-midway", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("begun"))
		_ = http.NewResponseController(w).Flush()
		fmt.Fprint(w, readNil())
	})

	resp, err := http.Get(s.url + "/test/nil")
	if err != nil {
		t.Fatalf("no answer from a handler that dereferenced nil: %v", err)
	}
	var eb schema.ErrorBody
	err = json.NewDecoder(resp.Body).Decode(&eb)
	resp.Body.Close()
	if resp.StatusCode != 500 || err != nil || eb.Error.Code != schema.CodeInternal || eb.Error.Message == "" ||
		resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("got %d %q %+v (%v), want 500 with the internal error body", resp.StatusCode, resp.Header.Get("Content-Type"), eb, err)
	}
	// A panic after the answer began cannot become a 500: the connection is cut.
	if resp, err := http.Get(s.url + "/test/nil-midway"); err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil {
			t.Errorf("an answer cut by a panic read as complete")
		}
	}

	// The site lives: health, a report accepted and folded.
	resp, err = http.Get(s.url + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz after the panic: %v %v", err, resp)
	}
	resp.Body.Close()
	msgs := []schema.StateMessage{{TopicType: 500, TopicID: "KB2", State: 3}}
	if err := s.client("pc-after").Report(ctx, true, msgs...); err != nil {
		t.Fatalf("report after the panic: %v", err)
	}
	o.add(&schema.Report{Client: "pc-after", Messages: msgs})
	s.waitFor(o)
	if got := promValue(t, s.url, "statepipe_http_panics_total"); got != 2 {
		t.Errorf("statepipe_http_panics_total = %v, want 2", got)
	}
	if l := logs.String(); !strings.Contains(l, "panic serving a request") || !strings.Contains(l, "readNil") ||
		!strings.Contains(l, "path=/test/nil") {
		t.Errorf("the panic was not logged with its stack:\n%s", l)
	}
}

// Stopping while requests run keeps its deadline: a request that finishes within the grace
// is answered, one that runs on sees its context cancelled once the grace has passed, and the
// HTTP server stops well before its timeout. (Shutdown once waited its whole 10 s on such a
// request and left it running.)
func TestShutdownCancelsRunningRequests(t *testing.T) {
	hc := defaultHTTPConfig()
	hc.ShutdownGrace = 500 * time.Millisecond
	s, stopped := startSiteHTTP(t, siteOpts{}, hc)
	started := make(chan struct{}, 2)
	cancelled := make(chan time.Time, 1)
	s.node.mux.HandleFunc("GET /test/block", func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-r.Context().Done()
		cancelled <- time.Now()
		http.Error(w, "stopping", http.StatusServiceUnavailable)
	})
	s.node.mux.HandleFunc("GET /test/quick", func(w http.ResponseWriter, _ *http.Request) {
		started <- struct{}{}
		time.Sleep(200 * time.Millisecond)
		_, _ = w.Write([]byte("done"))
	})
	quick := make(chan int, 1)
	for _, path := range []string{"/test/block", "/test/quick"} {
		go func() {
			resp, err := http.Get(s.url + path)
			if err != nil {
				t.Logf("%s: %v", path, err)
				quick <- 0
				return
			}
			resp.Body.Close()
			if path == "/test/quick" {
				quick <- resp.StatusCode
			}
		}()
	}
	<-started
	<-started
	stopAt := time.Now()
	go s.stop()
	if status := <-quick; status != 200 {
		t.Errorf("a request finishing within the shutdown grace: status %d, want 200", status)
	}
	select {
	case at := <-cancelled:
		if d := at.Sub(stopAt); d < hc.ShutdownGrace-50*time.Millisecond || d > hc.ShutdownGrace+2*time.Second {
			t.Errorf("the running request's context was cancelled %s after the stop began, want about the grace (%s)", d, hc.ShutdownGrace)
		}
	case <-time.After(hc.ShutdownTimeout + 5*time.Second):
		t.Fatal("the running request's context was never cancelled")
	}
	select {
	case took := <-stopped:
		if took > hc.ShutdownTimeout/2 {
			t.Errorf("the site took %s to stop, want well within the %s shutdown timeout", took, hc.ShutdownTimeout)
		}
		t.Logf("site stopped in %s with a request running", took)
	case <-time.After(2 * hc.ShutdownTimeout):
		t.Fatal("the site did not stop")
	}
}

// Zero and inconsistent limits are refused with their values.
func TestHTTPConfigValidate(t *testing.T) {
	if err := defaultHTTPConfig().validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	n := &node{}
	if err := n.configureHTTP(httpConfig{}); err != nil || n.http != defaultHTTPConfig() {
		t.Errorf("the zero config is not the defaults: %+v, %v", n.http, err)
	}
	for name, mutate := range map[string]func(*httpConfig){
		"no idle timeout":       func(c *httpConfig) { c.IdleTimeout = 0 },
		"no connections":        func(c *httpConfig) { c.MaxConns = 0 },
		"negative per address":  func(c *httpConfig) { c.MaxConnsPerAddress = -1 },
		"no rate":               func(c *httpConfig) { c.MinRate = 0 },
		"grace beyond shutdown": func(c *httpConfig) { c.ShutdownGrace = c.ShutdownTimeout },
	} {
		c := defaultHTTPConfig()
		mutate(&c)
		if err := c.validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// rejections lists ingest's nonzero refusal counters, to say why a report was refused.
func rejections(s *testSite) string {
	var out []string
	for _, line := range strings.Split(s.metrics(s.t), "\n") {
		if strings.HasPrefix(line, "statepipe_ingest_rejected_total") && !strings.HasSuffix(line, " 0") {
			out = append(out, line)
		}
	}
	return strings.Join(out, "; ")
}
