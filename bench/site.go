package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"time"

	"github.com/statepipe/statepipe/report"
	"github.com/statepipe/statepipe/schema"
)

// The site under test: `statepipe run` as a child process, so its memory and CPU are its own,
// read through its HTTP API as an operator would.

type harnessSite struct {
	cmd     *exec.Cmd
	url     string
	kafka   string
	db      string
	dir     string
	tmp     bool
	hc      *http.Client
	brokers string
}

var siteURL = regexp.MustCompile(`POST (https?://[0-9.:]+)/v1/reports`)
var siteKafka = regexp.MustCompile(`kafka +(.*), topic`)

// siteTopologyURL is where a site process hosting a topology answers (its welcome's first line).
var siteTopologyURL = regexp.MustCompile(`on one listener, (https?://[0-9.:]+)`)

// startSite starts `statepipe run` as a child process on free ports.
func startSite(ctx context.Context, cfg HarnessConfig) (*harnessSite, error) {
	s := &harnessSite{dir: cfg.Data, db: schema.Database(cfg.Site), hc: &http.Client{Timeout: 10 * time.Minute}}
	if s.dir == "" {
		d, err := os.MkdirTemp("", "statepipe-harness-")
		if err != nil {
			return nil, err
		}
		s.dir, s.tmp = d, true
	}
	// Enrolment is not paced here: the harness enrols the whole simulated estate before it
	// measures folding (rollout pacing is a scenario of its own).
	where := []string{"--site", cfg.Site}
	if cfg.Topology != "" {
		where = []string{"--topology", cfg.Topology}
	}
	args := append([]string{"run", "--data", s.dir, "--listen", "127.0.0.1:0"}, where...)
	args = append(args, "--projector.lag-every", "1s",
		"--ingest.enroll-rate", "0",
		// The oracle reads whole tables (state_messages FINAL at 30 M rows) through /v1/sql.
		"--sql.timeout", "10m", "--sql.max-threads", "0", "--sql.max-rows-read", "0", "--sql.max-result-rows", "0", "--sql.max-result-bytes", "0")
	if cfg.Brokers != "" {
		args = append(args, "--kafka.brokers", cfg.Brokers)
		s.brokers = cfg.Brokers
	} else {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		s.brokers = fmt.Sprintf("127.0.0.1:%d", port)
		args = append(args, "--kafka.listen", s.brokers)
	}
	args = append(args, cfg.siteExtra...) // the run's pacing and --site-arg flags (siteOptions)
	s.cmd = exec.Command(cfg.Bin, args...)
	if cfg.SiteCPUProfile != "" {
		s.cmd.Env = append(os.Environ(), "STATEPIPE_CPUPROFILE="+cfg.SiteCPUProfile)
	}
	out, _ := s.cmd.StdoutPipe()
	logFile, err := os.Create(s.dir + "/site.log")
	if err != nil {
		return nil, err
	}
	s.cmd.Stderr = logFile
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	found := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			if m := siteKafka.FindStringSubmatch(line); m != nil {
				s.kafka = strings.TrimSpace(m[1])
			}
			if m := siteURL.FindStringSubmatch(line); m != nil && s.url == "" {
				s.url = m[1]
			}
			if m := siteTopologyURL.FindStringSubmatch(line); m != nil && s.url == "" {
				s.url = m[1]
			}
			if strings.HasPrefix(line, "Try it") {
				close(found)
				_, _ = io.Copy(io.Discard, out)
				return
			}
		}
	}()
	select {
	case <-found:
	case <-time.After(2 * time.Minute):
		s.stop()
		return nil, fmt.Errorf("the site did not start; its log: %s/site.log", s.dir)
	case <-ctx.Done():
		s.stop()
		return nil, ctx.Err()
	}
	if s.kafka == "" && cfg.Brokers == "" {
		s.kafka = "embedded broker at " + s.brokers // a topology's welcome does not name it
	}
	return s, nil
}

func (s *harnessSite) pid() int { return s.cmd.Process.Pid }

func (s *harnessSite) stop() {
	if s.cmd.ProcessState == nil {
		_ = s.cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = s.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = s.cmd.Process.Kill()
			<-done
		}
	}
	if s.tmp {
		_ = os.RemoveAll(s.dir)
	}
}

func (s *harnessSite) database() string { return s.db }

func (s *harnessSite) get(ctx context.Context, path string, v any) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.url+path, nil)
	resp, err := s.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s %s", path, resp.Status, bytes.TrimSpace(body))
	}
	return json.Unmarshal(body, v)
}

func (s *harnessSite) sql(ctx context.Context, q string) (*schema.Result, error) {
	return s.sqlAt(ctx, q, "")
}

// sqlAt runs q at site code of a site process hosting a topology (its root when empty).
func (s *harnessSite) sqlAt(ctx context.Context, q, code string) (*schema.Result, error) {
	body, _ := json.Marshal(report.SQLRequest{Query: q})
	path := "/v1/sql"
	if code != "" {
		path += "?site=" + code
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.url+path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("SQL %q: %s %s", q, resp.Status, bytes.TrimSpace(raw))
	}
	var r schema.Result
	return &r, json.Unmarshal(raw, &r)
}

// importRef posts reference-data lines of kind (in chunks, so a large collection fits).
func (s *harnessSite) importRef(ctx context.Context, kind schema.RefKind, lines []string) error {
	if len(lines) == 0 {
		return nil
	}
	for from := 0; from < len(lines); from += 5000 {
		body := strings.Join(lines[from:min(from+5000, len(lines))], "\n") + "\n"
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.url+"/v1/ref/"+string(kind), strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-ndjson")
		resp, err := s.hc.Do(req)
		if err != nil {
			return err
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("import %s: %s %s", kind, resp.Status, bytes.TrimSpace(raw))
		}
	}
	return nil
}

// waitList waits until the site's projector has folded list id (reference data travels
// through Kafka).
func (s *harnessSite) waitList(ctx context.Context, id string) error {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var c report.Compliance
		err := s.get(ctx, "/v1/reports/compliance?list="+id, &c)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the site never showed list %s: %w", id, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
