package bench

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/statepipe/statepipe/client"
	"github.com/statepipe/statepipe/schema"
)

// IngestLoadConfig sizes the bounded loopback load test of ingest alone: closed-loop phases
// at rising concurrency (each bounded by time and by request count), an overload phase past
// ingest's in-flight limit, and one client over its rate. It posts raw HTTP, without the
// SDK's retries, so that every answer and its latency is seen.
type IngestLoadConfig struct {
	URL         string
	Site        string
	Clients     int           // enrolled clients the load cycles through (default 10,000)
	Messages    int           // state messages per report (default 20: a delta)
	Concurrency []int         // closed-loop phases (default 4, 16, 64)
	Overload    int           // concurrency of the overload phase (default 512; 0 skips it)
	Duration    time.Duration // per phase (default 10 s)
	MaxRequests int           // per phase (default 200,000)
	Signed      bool          // enrol clients and sign every report
	PID         int           // ingest's process id, for its RSS (0: not measured)
	Progress    io.Writer
}

// IngestPhase is what one phase measured.
type IngestPhase struct {
	Name          string         `json:"name"`
	Concurrency   int            `json:"concurrency"`
	Requests      int64          `json:"requests"`
	Seconds       float64        `json:"seconds"`
	AcceptedPerS  float64        `json:"accepted_per_second"`
	MessagesPerS  float64        `json:"messages_per_second"`
	P50Seconds    float64        `json:"p50_latency_seconds"` // of accepted requests
	P90Seconds    float64        `json:"p90_latency_seconds"`
	P99Seconds    float64        `json:"p99_latency_seconds"`
	MaxSeconds    float64        `json:"max_latency_seconds"`
	Status        map[string]int `json:"status"` // answers by HTTP status
	RSSBytes      int64          `json:"ingest_rss_bytes,omitempty"`
	RetryAfterSet bool           `json:"retry_after_on_every_refusal"`
}

// IngestLoadResult is the whole run.
type IngestLoadResult struct {
	Signed          bool          `json:"signed"`
	Clients         int           `json:"clients"`
	Messages        int           `json:"messages_per_report"`
	BodyBytes       int           `json:"body_bytes"`
	EnrollPerS      float64       `json:"enrollments_per_second,omitempty"`
	Phases          []IngestPhase `json:"phases"`
	PeakRSSBytes    int64         `json:"ingest_peak_rss_bytes,omitempty"`
	OverloadShedded bool          `json:"overload_shed"` // the overload phase saw 503s and no errors
	RatePaced       bool          `json:"rate_paced"`    // the one-client phase saw 429s
}

type loadClient struct {
	id     string
	cred   string
	key    ed25519.PrivateKey
	serial atomic.Uint64
}

// IngestLoad runs the load test.
func IngestLoad(ctx context.Context, cfg IngestLoadConfig) (*IngestLoadResult, error) {
	if cfg.Clients == 0 {
		cfg.Clients = 10000
	}
	if cfg.Messages == 0 {
		cfg.Messages = 20
	}
	if len(cfg.Concurrency) == 0 {
		cfg.Concurrency = []int{4, 16, 64}
	}
	if cfg.Duration == 0 {
		cfg.Duration = 10 * time.Second
	}
	if cfg.MaxRequests == 0 {
		cfg.MaxRequests = 200000
	}
	maxConc := slices.Max(append([]int{cfg.Overload}, cfg.Concurrency...))
	hc := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: maxConc, MaxConnsPerHost: maxConc}}
	res := &IngestLoadResult{Signed: cfg.Signed, Clients: cfg.Clients, Messages: cfg.Messages}
	clients := make([]*loadClient, cfg.Clients)
	start := time.Now()
	out := newConsole(cfg.Progress)
	var enrolled atomic.Int64
	stop := out.count("clients enrolled", start, &enrolled, int64(cfg.Clients))
	err := forEachClient(ctx, SmokeConfig{Clients: cfg.Clients, Concurrency: 32}, func(c int) error {
		lc := &loadClient{id: ClientID(c)}
		if cfg.Signed {
			cl, err := client.Enroll(ctx, client.Config{URL: cfg.URL, Site: cfg.Site, ClientID: lc.id, HTTPClient: hc})
			if err != nil {
				return err
			}
			id := cl.Identity()
			lc.cred, lc.key = id.Credential, ed25519.PrivateKey(id.PrivateKey)
		}
		clients[c] = lc
		enrolled.Add(1)
		return nil
	})
	stop()
	if err != nil {
		return nil, fmt.Errorf("enrol: %w", err)
	}
	if cfg.Signed {
		res.EnrollPerS = float64(cfg.Clients) / time.Since(start).Seconds()
	}
	body := func(lc *loadClient) ([]byte, map[string]string) {
		first := lc.serial.Add(uint64(cfg.Messages)) - uint64(cfg.Messages) + 1
		now := time.Now().UnixMilli()
		r := schema.Report{V: schema.Version, Client: lc.id, Site: cfg.Site, Messages: make([]schema.StateMessage, cfg.Messages)}
		for i := range r.Messages {
			r.Messages[i] = schema.StateMessage{Serial: first + uint64(i), Time: now, TopicType: schema.TopicUpdateEnforcement,
				TopicID: UpdateID(int(first+uint64(i)) % 300), State: int32(i % 15)}
		}
		var b bytes.Buffer
		_ = schema.EncodeReport(&b, &r)
		h := map[string]string{}
		if cfg.Signed {
			h[schema.HeaderCredential], h[schema.HeaderSignature] = lc.cred, schema.SignBody(lc.key, b.Bytes())
		}
		return b.Bytes(), h
	}
	b, _ := body(&loadClient{id: ClientID(0), key: clients[0].key, cred: clients[0].cred})
	res.BodyBytes = len(b)

	run := func(name string, conc int, pick func(worker int, n int64) *loadClient) (IngestPhase, error) {
		ph := IngestPhase{Name: name, Concurrency: conc, Status: map[string]int{}, RetryAfterSet: true}
		pctx, cancel := context.WithTimeout(ctx, cfg.Duration)
		defer cancel()
		var n atomic.Int64
		var mu sync.Mutex
		var lat []float64
		var firstErr error
		begin := time.Now()
		stop := out.count("requests", begin, &n, int64(cfg.MaxRequests))
		var wg sync.WaitGroup
		for w := range conc {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var mine []float64
				status := map[string]int{}
				retryAfter := true
				defer func() {
					mu.Lock()
					lat = append(lat, mine...)
					for k, v := range status {
						ph.Status[k] += v
					}
					ph.RetryAfterSet = ph.RetryAfterSet && retryAfter
					mu.Unlock()
				}()
				for pctx.Err() == nil {
					i := n.Add(1)
					if i > int64(cfg.MaxRequests) {
						return
					}
					payload, headers := body(pick(w, i))
					req, _ := http.NewRequestWithContext(pctx, http.MethodPost, cfg.URL+"/v1/reports", bytes.NewReader(payload))
					req.Header.Set("Content-Type", schema.MediaMsgpack)
					for k, v := range headers {
						req.Header.Set(k, v)
					}
					t0 := time.Now()
					resp, err := hc.Do(req)
					if err != nil {
						if pctx.Err() == nil {
							status["error"]++
							mu.Lock()
							if firstErr == nil {
								firstErr = err
							}
							mu.Unlock()
						}
						continue
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					status[strconv.Itoa(resp.StatusCode)]++
					switch resp.StatusCode {
					case http.StatusOK:
						mine = append(mine, time.Since(t0).Seconds())
					case http.StatusTooManyRequests, http.StatusServiceUnavailable:
						retryAfter = retryAfter && resp.Header.Get("Retry-After") != ""
					}
				}
			}()
		}
		wg.Wait()
		stop()
		ph.Seconds = time.Since(begin).Seconds()
		for _, v := range ph.Status {
			ph.Requests += int64(v)
		}
		slices.Sort(lat)
		q := func(p float64) float64 {
			if len(lat) == 0 {
				return 0
			}
			return lat[min(len(lat)-1, int(p*float64(len(lat))))]
		}
		ph.P50Seconds, ph.P90Seconds, ph.P99Seconds = q(.50), q(.90), q(.99)
		if len(lat) > 0 {
			ph.MaxSeconds = lat[len(lat)-1]
		}
		ph.AcceptedPerS = float64(ph.Status["200"]) / ph.Seconds
		ph.MessagesPerS = ph.AcceptedPerS * float64(cfg.Messages)
		ph.RSSBytes = ProcStatus(cfg.PID, "VmRSS")
		out.logf("%-10s conc %4d  %8.0f accepted/s  p50 %6.1f ms  p99 %7.1f ms  %v  rss %d MiB",
			name, conc, ph.AcceptedPerS, ph.P50Seconds*1e3, ph.P99Seconds*1e3, ph.Status, ph.RSSBytes>>20)
		if ph.Status["error"] > 0 {
			return ph, fmt.Errorf("phase %s: %d requests failed without an answer, first: %v", name, ph.Status["error"], firstErr)
		}
		return ph, nil
	}
	spread := func(worker int, n int64) *loadClient { return clients[n%int64(len(clients))] }
	for _, c := range cfg.Concurrency {
		ph, err := run("steady", c, spread)
		res.Phases = append(res.Phases, ph)
		if err != nil {
			return res, err
		}
	}
	if cfg.Overload > 0 {
		ph, err := run("overload", cfg.Overload, spread)
		res.Phases = append(res.Phases, ph)
		if err != nil {
			return res, err
		}
		res.OverloadShedded = ph.Status["503"] > 0 && ph.Status["200"] > 0 && ph.RetryAfterSet
	}
	// One client sending as fast as it can: its rate limit answers 429 with Retry-After.
	ph, err := run("one-client", 4, func(int, int64) *loadClient { return clients[0] })
	res.Phases = append(res.Phases, ph)
	if err != nil {
		return res, err
	}
	res.RatePaced = !cfg.Signed || ph.Status["429"] > 0 && ph.RetryAfterSet
	res.PeakRSSBytes = ProcStatus(cfg.PID, "VmHWM")
	return res, nil
}

// ProcStatus reads a memory field (VmRSS, VmHWM) of process pid from /proc, in bytes; 0 when
// unknown.
func ProcStatus(pid int, field string) int64 {
	if pid == 0 {
		return 0
	}
	return procKiB(fmt.Sprintf("/proc/%d/status", pid), field)
}

// procKiB reads a "Field:   N kB" line of a /proc file, in bytes; 0 when unknown.
func procKiB(path, field string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			if f := strings.Fields(v); len(f) > 0 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}

// ProcMeminfo reads a field of /proc/meminfo in bytes; 0 when unknown.
func ProcMeminfo(field string) int64 { return procKiB("/proc/meminfo", field) }

// IngestLoadMarkdown renders a result as the report.md of a results directory.
func IngestLoadMarkdown(r *IngestLoadResult, kafka, machine string, maxInFlight int) string {
	var b strings.Builder
	mode := "signed (Ed25519 credential + body signature verified per report)"
	if !r.Signed {
		mode = "unsigned (--ingest.auth off)"
	}
	fmt.Fprintf(&b, "# Ingest load test\n\n- machine: %s\n- Kafka: %s\n- reports: %s, %d messages each, %d bytes of msgpack\n- clients: %d",
		machine, kafka, mode, r.Messages, r.BodyBytes, r.Clients)
	if r.EnrollPerS > 0 {
		fmt.Fprintf(&b, " (enrolled at %.0f/s)", r.EnrollPerS)
	}
	fmt.Fprintf(&b, "\n- ingest: `--ingest.max-in-flight %d`; peak RSS of the ingest process %.0f MiB\n\n", maxInFlight, float64(r.PeakRSSBytes)/(1<<20))
	b.WriteString("| phase | in flight | requests | accepted/s | messages/s | p50 ms | p90 ms | p99 ms | max ms | answers | ingest RSS MiB |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, p := range r.Phases {
		keys := make([]string, 0, len(p.Status))
		for k := range p.Status {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		var ans []string
		for _, k := range keys {
			ans = append(ans, fmt.Sprintf("%s×%d", k, p.Status[k]))
		}
		fmt.Fprintf(&b, "| %s | %d | %d | %.0f | %.0f | %.1f | %.1f | %.1f | %.1f | %s | %.0f |\n", p.Name, p.Concurrency, p.Requests,
			p.AcceptedPerS, p.MessagesPerS, p.P50Seconds*1e3, p.P90Seconds*1e3, p.P99Seconds*1e3, p.MaxSeconds*1e3, strings.Join(ans, " "), float64(p.RSSBytes)/(1<<20))
	}
	fmt.Fprintf(&b, "\nOverload shed with 503 + Retry-After while still accepting: %v. One client over its rate answered 429 + Retry-After: %v.\n",
		r.OverloadShedded, r.RatePaced)
	return b.String()
}
