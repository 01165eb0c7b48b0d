package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/statepipe/statepipe/client"
	"github.com/statepipe/statepipe/report"
	"github.com/statepipe/statepipe/schema"
)

// SmokeConfig sizes the smoke scenario.
type SmokeConfig struct {
	URL         string
	Site        string
	Clients     int
	Updates     int
	Concurrency int           // clients posting at once (default 32)
	Timeout     time.Duration // for the whole run (default 10 min)
	Progress    io.Writer     // a progress line while it runs; nil for none
	// Signed enrols every client first (not timed) and signs every report: the ingest
	// verifies an Ed25519 credential and body signature per report.
	Signed bool
	// ReaderToken is sent with the reads of a site guarded by --reader-token (reports,
	// /metrics); EnrollToken with the enrolments of one guarded by --ingest.enroll-token.
	ReaderToken string
	EnrollToken string
}

// SmokeResult is what one run measured.
type SmokeResult struct {
	Messages         int64   `json:"messages"`
	Reports          int64   `json:"reports"`
	PostSeconds      float64 `json:"post_seconds"`    // until the last report was acknowledged
	VisibleSeconds   float64 `json:"visible_seconds"` // until the report showed every message
	IngestMsgsPerS   float64 `json:"ingest_msgs_per_second"`
	EndToEndMsgsPerS float64 `json:"e2e_msgs_per_second"`
	OracleOK         bool    `json:"oracle_ok"`
	Signed           bool    `json:"signed"`
	EnrollSeconds    float64 `json:"enroll_seconds,omitempty"` // enrolling every client, before the timed run
}

// forEachClient runs fn for every client, cfg.Concurrency at a time, stopping at the first
// error.
func forEachClient(ctx context.Context, cfg SmokeConfig, fn func(c int) error) error {
	next := int64(-1)
	var wg sync.WaitGroup
	errs := make(chan error, cfg.Concurrency)
	for w := 0; w < cfg.Concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				c := int(atomic.AddInt64(&next, 1))
				if c >= cfg.Clients || ctx.Err() != nil {
					return
				}
				if err := fn(c); err != nil {
					errs <- err
					atomic.StoreInt64(&next, int64(cfg.Clients))
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// UpdateID names update u of the simulated catalog.
func UpdateID(u int) string { return fmt.Sprintf("upd-%05d", u) }

// ClientID names simulated client c.
func ClientID(c int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", c) }

// SmokeState is the oracle: the compliance state client c reports for update u.
func SmokeState(c, u int) int32 { return int32((c*7 + u*3) % 4) }

// Smoke runs the scenario.
func Smoke(ctx context.Context, cfg SmokeConfig) (*SmokeResult, error) {
	if cfg.Concurrency == 0 {
		cfg.Concurrency = 32
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	hc := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: cfg.Concurrency}}
	res := &SmokeResult{Signed: cfg.Signed}
	clients := make([]*client.Client, cfg.Clients)
	enrollStart := time.Now()
	if err := forEachClient(ctx, cfg, func(c int) (err error) {
		ccfg := client.Config{URL: cfg.URL, Site: cfg.Site, ClientID: ClientID(c), HTTPClient: hc, EnrollToken: cfg.EnrollToken}
		if cfg.Signed {
			clients[c], err = client.Enroll(ctx, ccfg)
		} else {
			clients[c], err = client.New(ccfg)
		}
		return err
	}); err != nil {
		return nil, err
	}
	if cfg.Signed {
		res.EnrollSeconds = time.Since(enrollStart).Seconds()
	}
	start := time.Now()
	var sent atomic.Int64
	stopProgress := newConsole(cfg.Progress).count("clients reported", start, &sent, int64(cfg.Clients))
	err := forEachClient(ctx, cfg, func(c int) error {
		msgs := make([]schema.StateMessage, cfg.Updates)
		for u := range msgs {
			msgs[u] = schema.StateMessage{TopicType: schema.TopicUpdateCompliance, TopicID: UpdateID(u), State: SmokeState(c, u)}
		}
		if err := clients[c].Report(ctx, true, msgs...); err != nil {
			return fmt.Errorf("client %d: %w", c, err)
		}
		sent.Add(1)
		return nil
	})
	if err != nil {
		stopProgress()
		return nil, err
	}
	res.Reports = sent.Load()
	res.Messages = res.Reports * int64(cfg.Updates)
	res.PostSeconds = time.Since(start).Seconds()
	want := oracle(cfg)
	// Wait on the projector's cheap counter first: polling the compliance report while the
	// projector catches up would compete with it for the same two cores.
	for ctx.Err() == nil {
		n, err := folded(ctx, hc, cfg, cfg.Site)
		if err != nil {
			stopProgress()
			return res, err
		}
		if n >= float64(res.Messages) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	var last *report.Compliance
	for {
		got, err := compliance(ctx, hc, cfg)
		if errors.Is(err, errRefused) {
			stopProgress()
			return res, err
		}
		if err == nil {
			last = got
			if equal(got, want) {
				break
			}
		}
		if ctx.Err() != nil {
			stopProgress()
			return res, fmt.Errorf("report never matched the oracle (last: %s): %w", summary(last), ctx.Err())
		}
		time.Sleep(100 * time.Millisecond)
	}
	stopProgress()
	res.VisibleSeconds = time.Since(start).Seconds()
	res.OracleOK = true
	res.IngestMsgsPerS = float64(res.Messages) / res.PostSeconds
	res.EndToEndMsgsPerS = float64(res.Messages) / res.VisibleSeconds
	return res, nil
}

// oracle computes the expected per-update counts from the generated history.
func oracle(cfg SmokeConfig) map[string][4]int64 {
	want := map[string][4]int64{}
	for u := 0; u < cfg.Updates; u++ {
		var counts [4]int64
		for c := 0; c < cfg.Clients; c++ {
			counts[SmokeState(c, u)]++
		}
		want[UpdateID(u)] = counts
	}
	return want
}

func equal(got *report.Compliance, want map[string][4]int64) bool {
	if len(got.Updates) != len(want) {
		return false
	}
	for _, u := range got.Updates {
		w, ok := want[u.UpdateID]
		if !ok || u.Unknown != w[0] || u.NotRequired != w[1] || u.Required != w[2] || u.Installed != w[3] {
			return false
		}
	}
	return true
}

func summary(c *report.Compliance) string {
	if c == nil {
		return "no report"
	}
	var total int64
	for _, u := range c.Updates {
		total += u.Installed + u.Required + u.NotRequired
	}
	return fmt.Sprintf("%d updates, %d known states", len(c.Updates), total)
}

// errRefused is a read the site refuses for want of the reader token: waiting cannot help.
var errRefused = errors.New("the site refuses the reads (give its reader token: --reader-token or $STATEPIPE_READER_TOKEN)")

// read GETs path of the site, with the reader token when there is one.
func read(ctx context.Context, hc *http.Client, cfg SmokeConfig, path string) (*http.Response, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(cfg.URL, "/")+path, nil)
	if cfg.ReaderToken != "" {
		req.Header.Set("Authorization", "Bearer "+cfg.ReaderToken)
	}
	resp, err := hc.Do(req)
	if err == nil && (resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden) {
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s: %s: %w", path, resp.Status, errRefused)
	}
	return resp, err
}

func compliance(ctx context.Context, hc *http.Client, cfg SmokeConfig) (*report.Compliance, error) {
	resp, err := read(ctx, hc, cfg, "/v1/reports/compliance")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, errors.New(resp.Status)
	}
	var c report.Compliance
	return &c, json.NewDecoder(resp.Body).Decode(&c)
}

// folded reads statepipe_projector_messages_total of site from /metrics (0 when absent or
// unreachable; an error when the site refuses the read).
func folded(ctx context.Context, hc *http.Client, cfg SmokeConfig, site string) (float64, error) {
	resp, err := read(ctx, hc, cfg, "/metrics")
	if errors.Is(err, errRefused) {
		return 0, err
	}
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	prefix := `statepipe_projector_messages_total{site="` + site + `"} `
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, prefix); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f, nil
		}
	}
	return 0, nil
}
