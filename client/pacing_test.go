package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/statepipe/statepipe/schema"
)

// fakeSite speaks the ingest contract the SDK relies on: POST /v1/enroll (429 with
// Retry-After and field "enroll" while it admits no more new clients) and POST /v1/reports
// (an Ack carrying report_interval_seconds and released).
type fakeSite struct {
	t   *testing.T
	srv *httptest.Server

	mu sync.Mutex
	// enrollAnswers are the statuses of the next enrolments (429 with Retry-After: 1, 503
	// with Retry-After: 0); then 200.
	enrollAnswers []int
	enrolls       []time.Time // when each enrolment arrived
	// reportAnswers are the statuses of the next reports (503 with Retry-After: 0, or 400);
	// then the next of acks (the last one repeated).
	reportAnswers []int
	acks          []schema.Ack
	maxMessages   int             // more is 413 (0: no bound)
	attempts      []schema.Report // every report that arrived, answered or not
	accepted      []schema.Report // the reports answered 200
	got           chan schema.Report
}

func newFakeSite(t *testing.T) *fakeSite {
	s := &fakeSite{t: t, got: make(chan schema.Report, 1000)}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/enroll", s.enroll)
	mux.HandleFunc("POST /v1/reports", s.report)
	s.srv = httptest.NewServer(mux)
	t.Cleanup(s.srv.Close)
	return s
}

func (s *fakeSite) enroll(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.enrolls = append(s.enrolls, time.Now())
	status := http.StatusOK
	if len(s.enrollAnswers) > 0 {
		status, s.enrollAnswers = s.enrollAnswers[0], s.enrollAnswers[1:]
	}
	s.mu.Unlock()
	switch status {
	case http.StatusTooManyRequests:
		w.Header().Set("Retry-After", "1")
		writeErr(w, status, schema.CodePaced, "this site admits no more new clients now; retry after the Retry-After seconds", "enroll")
	case http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", "0")
		writeErr(w, status, schema.CodeUnavailable, "identity log not read up to date", "")
	default:
		_ = json.NewEncoder(w).Encode(schema.EnrollResponse{Credential: "credential", Expires: time.Now().Add(time.Hour), SerialBase: schema.SerialBase(1)})
	}
}

func (s *fakeSite) report(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	var rep schema.Report
	if err == nil {
		err = schema.DecodeReport(body, &rep)
	}
	if err != nil {
		s.t.Errorf("the site got an undecodable report: %v", err)
		writeErr(w, http.StatusBadRequest, schema.CodeMalformed, err.Error(), "body")
		return
	}
	s.mu.Lock()
	s.attempts = append(s.attempts, rep)
	status := http.StatusOK
	if len(s.reportAnswers) > 0 {
		status, s.reportAnswers = s.reportAnswers[0], s.reportAnswers[1:]
	}
	if s.maxMessages > 0 && len(rep.Messages) > s.maxMessages {
		status = http.StatusRequestEntityTooLarge
	}
	var ack schema.Ack
	if status == http.StatusOK {
		if len(s.acks) > 0 {
			ack = s.acks[0]
			if len(s.acks) > 1 {
				s.acks = s.acks[1:]
			}
		}
		s.accepted = append(s.accepted, rep)
	}
	s.mu.Unlock()
	switch status {
	case http.StatusOK:
		ack.Accepted = len(rep.Messages)
		_ = json.NewEncoder(w).Encode(ack)
		s.got <- rep
	case http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", "0")
		writeErr(w, status, schema.CodeUnavailable, "broker down", "")
	case http.StatusRequestEntityTooLarge:
		writeErr(w, status, schema.CodeTooLarge, "too many messages", "messages")
	default:
		writeErr(w, status, schema.CodeMalformed, "bad state", "messages[0].state")
	}
}

func writeErr(w http.ResponseWriter, status int, code, msg, field string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(schema.ErrorBody{Error: schema.ErrorDetail{Code: code, Message: msg, Field: field}})
}

// config is a client of the fake site that retries fast when the site gives no Retry-After.
func (s *fakeSite) config() Config {
	return Config{URL: s.srv.URL, Site: "P01", ClientID: "pc-1", BackoffMin: time.Millisecond, BackoffMax: 10 * time.Millisecond}
}

func (s *fakeSite) sent() (attempts, accepted []schema.Report) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.attempts), slices.Clone(s.accepted)
}

// await returns the next accepted report, failing the test if none comes in a long while
// (a bound against hanging, not a speed requirement).
func (s *fakeSite) await(what string) schema.Report {
	s.t.Helper()
	select {
	case rep := <-s.got:
		return rep
	case <-time.After(30 * time.Second):
		s.t.Fatalf("no report arrived: want %s", what)
		return schema.Report{}
	}
}

func serials(rep schema.Report) []uint64 {
	var out []uint64
	for _, m := range rep.Messages {
		out = append(out, m.Serial)
	}
	return out
}

func topics(rep schema.Report) []string {
	var out []string
	for _, m := range rep.Messages {
		out = append(out, m.TopicID)
	}
	return out
}

func upd(kb string) schema.StateMessage {
	return schema.StateMessage{TopicType: schema.TopicUpdateCompliance, TopicID: kb, State: 2}
}

// While the site admits no more new clients, Enroll waits out each 429 for its Retry-After
// and tries again, without counting them against MaxAttempts; other temporary errors still
// count (MaxAttempts 2 allows the one 503).
func TestEnrollWaitsOutPacing(t *testing.T) {
	t.Parallel()
	site := newFakeSite(t)
	site.enrollAnswers = []int{429, 503, 429, 429}
	var waits []time.Duration
	cfg := site.config()
	cfg.MaxAttempts = 2
	cfg.OnPaced = func(wait time.Duration) { waits = append(waits, wait) }
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := Enroll(ctx, cfg)
	if err != nil {
		t.Fatalf("enrolment: %v", err)
	}
	if id := c.Identity(); id == nil || id.Credential != "credential" || c.LastSerial() < schema.SerialBase(1) {
		t.Fatalf("identity %+v, last serial %d: want the site's credential and serial base", id, c.LastSerial())
	}
	site.mu.Lock()
	times := slices.Clone(site.enrolls)
	site.mu.Unlock()
	if len(times) != 5 {
		t.Fatalf("%d enrolment requests, want 5 (429, 503, 429, 429, 200)", len(times))
	}
	if !slices.Equal(waits, []time.Duration{time.Second, time.Second, time.Second}) {
		t.Errorf("OnPaced heard %v, want the Retry-After (1s) of each of the three 429s", waits)
	}
	// The client came back no sooner than the site asked: each request after a 429 arrived at
	// least its Retry-After after the refused one.
	for _, i := range []int{1, 3, 4} {
		if gap := times[i].Sub(times[i-1]); gap < time.Second {
			t.Errorf("enrolment %d came %s after the 429 that asked for 1s", i+1, gap)
		}
	}
}

// Patience has a bound: the context (here ended by the harness on the second 429), or
// EnrollPatience. The error is the site's 429.
func TestEnrollPatienceEnds(t *testing.T) {
	t.Parallel()
	site := newFakeSite(t)
	site.enrollAnswers = slices.Repeat([]int{429}, 100)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	paced := 0
	cfg := site.config()
	cfg.MaxAttempts = 1
	cfg.OnPaced = func(time.Duration) {
		if paced++; paced == 2 {
			cancel()
		}
	}
	if _, err := Enroll(ctx, cfg); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want the context's end", err)
	}
	site.mu.Lock()
	n := len(site.enrolls)
	site.mu.Unlock()
	if n != 2 || paced != 2 {
		t.Errorf("%d enrolment requests, %d paced: want 2 of each", n, paced)
	}

	cfg.OnPaced = nil
	cfg.EnrollPatience = 1900 * time.Millisecond // room for one wait of 1s, not two
	_, err := Enroll(context.Background(), cfg)
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 429 || apiErr.Field != "enroll" || !strings.Contains(err.Error(), "paced") {
		t.Errorf("err = %v, want the site's 429 naming enroll", err)
	}
	site.mu.Lock()
	n = len(site.enrolls)
	site.mu.Unlock()
	if n != 4 {
		t.Errorf("%d enrolment requests with EnrollPatience 1.9s, want 2", n-2)
	}
}

// Other temporary errors keep the MaxAttempts rule at enrolment.
func TestEnrollGivesUpOnUnavailableAfterMaxAttempts(t *testing.T) {
	t.Parallel()
	site := newFakeSite(t)
	site.enrollAnswers = slices.Repeat([]int{503}, 100)
	cfg := site.config()
	cfg.MaxAttempts = 3
	_, err := Enroll(context.Background(), cfg)
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 503 {
		t.Fatalf("err = %v, want the 503", err)
	}
	site.mu.Lock()
	defer site.mu.Unlock()
	if len(site.enrolls) != 3 {
		t.Errorf("%d enrolment requests, want 3", len(site.enrolls))
	}
}

// Each acknowledgement sets the report interval (0: the client's own) and the released
// phased deployments; OnReleased hears of each change of the set, after the call that
// brought it let go of the client, so it may report.
func TestAcksPaceAndRelease(t *testing.T) {
	t.Parallel()
	site := newFakeSite(t)
	site.acks = []schema.Ack{
		{ReportInterval: 600, Released: []string{"DEP-2", "DEP-1"}},
		{ReportInterval: 600, Released: []string{"DEP-1", "DEP-2"}}, // the same set
		{ReportInterval: 0, Released: nil},
	}
	ctx := context.Background()
	var c *Client
	var heard [][]string
	cfg := site.config()
	cfg.OnReleased = func(ids []string) {
		heard = append(heard, ids)
		if len(heard) == 1 && c.IsReleased("DEP-1") {
			// An agent starts enforcing and says so at once.
			if err := c.Report(ctx, false, schema.StateMessage{TopicType: schema.TopicDeploymentEnforcement, TopicID: "DEP-1", State: 1}); err != nil {
				t.Errorf("report from OnReleased: %v", err)
			}
		}
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if c.ReportInterval() != 15*time.Minute || len(c.Released()) != 0 {
		t.Fatalf("before any ack: interval %s, released %v; want 15m and none", c.ReportInterval(), c.Released())
	}
	if err := c.Report(ctx, false, upd("KB1")); err != nil {
		t.Fatal(err)
	}
	if c.ReportInterval() != 10*time.Minute {
		t.Errorf("interval %s after an ack of 600 s", c.ReportInterval())
	}
	if got := c.Released(); !slices.Equal(got, []string{"DEP-1", "DEP-2"}) || !c.IsReleased("DEP-2") || c.IsReleased("DEP-3") {
		t.Errorf("released %v", got)
	}
	c.Released()[0] = "changed" // a copy
	if !c.IsReleased("DEP-1") {
		t.Error("Released did not return a copy")
	}
	if _, accepted := site.sent(); len(accepted) != 2 || accepted[1].Messages[0].TopicID != "DEP-1" {
		t.Fatalf("the site got %d reports, want the first and OnReleased's", len(accepted))
	}
	if len(heard) != 1 || !slices.Equal(heard[0], []string{"DEP-1", "DEP-2"}) {
		t.Fatalf("OnReleased heard %v, want one change (the second ack listed the same set)", heard)
	}
	c.Queue(upd("KB2"))
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if c.ReportInterval() != 15*time.Minute || len(c.Released()) != 0 || c.IsReleased("DEP-1") {
		t.Errorf("after an ack of 0 s releasing nothing: interval %s (want the client's own), released %v", c.ReportInterval(), c.Released())
	}
	if len(heard) != 2 || len(heard[1]) != 0 {
		t.Errorf("OnReleased heard %v, want the emptied set last", heard)
	}
}

// Queued messages go as one report, serials assigned in queue order when it is sent.
func TestQueueFlushSendsOneReport(t *testing.T) {
	t.Parallel()
	site := newFakeSite(t)
	cfg := site.config()
	cfg.NextSerial = 41
	c, _ := New(cfg)
	before := time.Now().UnixMilli()
	c.Queue(upd("KB1"), upd("KB2"))
	c.Queue(upd("KB3"))
	if c.Pending() != 3 || c.LastSerial() != 40 {
		t.Fatalf("pending %d, last serial %d: queued messages take no serial yet", c.Pending(), c.LastSerial())
	}
	if err := c.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(context.Background()); err != nil { // nothing pending: nothing sent
		t.Fatal(err)
	}
	attempts, _ := site.sent()
	if len(attempts) != 1 {
		t.Fatalf("%d reports, want 1", len(attempts))
	}
	rep := attempts[0]
	if !slices.Equal(serials(rep), []uint64{41, 42, 43}) || !slices.Equal(topics(rep), []string{"KB1", "KB2", "KB3"}) || len(rep.FullTypes) != 0 {
		t.Errorf("report %+v: want KB1..3 with serials 41..43, a delta", rep)
	}
	for _, m := range rep.Messages {
		if m.Time < before {
			t.Errorf("message %s has time %d, want the time it was queued", m.TopicID, m.Time)
		}
	}
	if c.Pending() != 0 || c.LastSerial() != 43 {
		t.Errorf("pending %d, last serial %d", c.Pending(), c.LastSerial())
	}
}

// A batch that could not be sent is kept with its serials: the next Flush sends it first,
// unchanged, and what was queued since after it; Report sends a kept batch ahead of itself.
func TestFailedFlushKeepsTheBatch(t *testing.T) {
	t.Parallel()
	site := newFakeSite(t)
	site.reportAnswers = []int{503}
	cfg := site.config()
	cfg.MaxAttempts = 1
	c, _ := New(cfg)
	ctx := context.Background()
	c.Queue(upd("KB1"), upd("KB2"))
	if err := c.Flush(ctx); err == nil {
		t.Fatal("the flush succeeded against a 503")
	}
	if c.Pending() != 2 {
		t.Fatalf("pending %d after a failed flush, want 2", c.Pending())
	}
	c.Queue(upd("KB3"))
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	attempts, accepted := site.sent()
	if len(attempts) != 3 || len(accepted) != 2 {
		t.Fatalf("%d attempts, %d accepted: want the failed one, its retry and the new batch", len(attempts), len(accepted))
	}
	if !slices.Equal(serials(attempts[0]), []uint64{1, 2}) || !slices.Equal(serials(attempts[1]), serials(attempts[0])) ||
		!slices.Equal(topics(attempts[1]), []string{"KB1", "KB2"}) || attempts[1].Messages[0].Time != attempts[0].Messages[0].Time {
		t.Errorf("retried batch %+v, want the failed one %+v unchanged", attempts[1], attempts[0])
	}
	if !slices.Equal(serials(attempts[2]), []uint64{3}) {
		t.Errorf("then %v, want [3]", serials(attempts[2]))
	}

	// An urgent report waits for the kept batch: serials follow the order of events.
	site.mu.Lock()
	site.reportAnswers = []int{503}
	site.mu.Unlock()
	c.Queue(upd("KB4"))
	if err := c.Flush(ctx); err == nil {
		t.Fatal("the flush succeeded against a 503")
	}
	if err := c.Report(ctx, false, upd("KB5")); err != nil {
		t.Fatal(err)
	}
	_, accepted = site.sent()
	if len(accepted) != 4 || !slices.Equal(serials(accepted[2]), []uint64{4}) || !slices.Equal(serials(accepted[3]), []uint64{5}) ||
		accepted[3].Messages[0].TopicID != "KB5" {
		t.Errorf("accepted %v then %v: want the kept KB4 (serial 4), then the urgent KB5 (5)", accepted[2], accepted[3])
	}
}

// A batch the site refuses for good is dropped (and said so), not retried for ever.
func TestRefusedBatchIsDropped(t *testing.T) {
	t.Parallel()
	site := newFakeSite(t)
	site.reportAnswers = []int{400}
	c, _ := New(site.config())
	c.Queue(upd("KB1"))
	err := c.Flush(context.Background())
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 400 || !strings.Contains(err.Error(), "dropped 1 queued") {
		t.Fatalf("err = %v, want the 400, saying the batch was dropped", err)
	}
	if c.Pending() != 0 {
		t.Errorf("pending %d", c.Pending())
	}
	c.Queue(upd("KB2"))
	if err := c.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, accepted := site.sent(); len(accepted) != 1 || !slices.Equal(serials(accepted[0]), []uint64{2}) {
		t.Errorf("accepted %v, want KB2 alone with serial 2", accepted)
	}
}

// A pending batch over MaxBatch goes as several reports, serials consecutive; a report the
// site finds too large is halved, keeping its serials.
func TestLargeBatchesAreSplit(t *testing.T) {
	t.Parallel()
	site := newFakeSite(t)
	c, _ := New(site.config())
	for i := range 2*MaxBatch + 5000 {
		c.Queue(upd(fmt.Sprint("KB", i)))
	}
	if err := c.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, accepted := site.sent()
	var sizes []int
	next := uint64(1)
	for _, rep := range accepted {
		sizes = append(sizes, len(rep.Messages))
		for _, s := range serials(rep) {
			if s != next {
				t.Fatalf("serial %d where %d was due", s, next)
			}
			next++
		}
	}
	if !slices.Equal(sizes, []int{MaxBatch, MaxBatch, 5000}) {
		t.Errorf("reports of %v messages, want %d, %d, 5000", sizes, MaxBatch, MaxBatch)
	}

	site = newFakeSite(t)
	site.maxMessages = 3
	c, _ = New(site.config())
	for i := range 8 {
		c.Queue(upd(fmt.Sprint("KB", i)))
	}
	if err := c.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	attempts, accepted := site.sent()
	var got []uint64
	for _, rep := range accepted {
		got = append(got, serials(rep)...)
	}
	if !slices.Equal(got, []uint64{1, 2, 3, 4, 5, 6, 7, 8}) || len(accepted) != 4 || len(attempts) != 7 {
		t.Errorf("accepted serials %v in %d reports (%d attempts), want 1..8 in 4 halves of halves (7 attempts)", got, len(accepted), len(attempts))
	}
}

// A resync request in a flush's acknowledgement is answered before Flush returns.
func TestFlushAnswersResync(t *testing.T) {
	t.Parallel()
	site := newFakeSite(t)
	site.acks = []schema.Ack{{Resync: true}, {}}
	cfg := site.config()
	cfg.OnResync = func(context.Context) ([]schema.StateMessage, error) {
		return []schema.StateMessage{upd("KB1"), upd("KB2")}, nil
	}
	c, _ := New(cfg)
	c.Queue(upd("KB1"))
	if err := c.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, accepted := site.sent()
	if len(accepted) != 2 || accepted[1].Messages[0].TopicType != schema.TopicResync || len(accepted[1].FullTypes) == 0 ||
		!slices.Equal(serials(accepted[1]), []uint64{2, 3, 4}) {
		t.Errorf("accepted %+v, want the batch then a full resync answer led by a 700", accepted)
	}
}

// Run flushes every interval the site asks for: a client whose own interval is an hour
// reports queued messages on the site's 1 s, taken up by the wait under way, again and again.
func TestRunFlushesOnTheSitesInterval(t *testing.T) {
	t.Parallel()
	site := newFakeSite(t)
	site.acks = []schema.Ack{{ReportInterval: 1}}
	cfg := site.config()
	cfg.ReportInterval = time.Hour
	c, _ := New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	if err := c.Report(ctx, false, upd("KB-URGENT")); err != nil {
		t.Fatal(err)
	}
	site.await("the urgent report")
	if c.ReportInterval() != time.Second {
		t.Fatalf("interval %s, want the site's 1s", c.ReportInterval())
	}
	for _, kb := range []string{"KB1", "KB2"} {
		c.Queue(upd(kb))
		if rep := site.await("a flush of " + kb); !slices.Equal(topics(rep), []string{kb}) {
			t.Errorf("Run flushed %v, want %s", topics(rep), kb)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}

// Run flushes once more on the way out.
func TestRunFlushesOnTheWayOut(t *testing.T) {
	t.Parallel()
	site := newFakeSite(t)
	c, _ := New(site.config()) // 15 min: no flush is due while the test runs
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	c.Queue(upd("KB1"))
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if _, accepted := site.sent(); len(accepted) != 1 || !slices.Equal(topics(accepted[0]), []string{"KB1"}) {
		t.Errorf("accepted %v, want KB1 sent on the way out", accepted)
	}
}

// Queue is safe while Run flushes: every message arrives once, serials consecutive.
func TestQueueWhileRunning(t *testing.T) {
	t.Parallel()
	site := newFakeSite(t)
	site.acks = []schema.Ack{{ReportInterval: 1}}
	c, _ := New(site.config())
	if err := c.Report(context.Background(), false); err != nil { // learn the site's 1 s
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var wg sync.WaitGroup
	const writers, each = 4, 300
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				c.Queue(upd(fmt.Sprintf("KB-%d-%d", w, i)))
				if i%100 == 0 {
					time.Sleep(200 * time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	_, accepted := site.sent()
	seen := map[string]bool{}
	next := uint64(1)
	for _, rep := range accepted {
		for _, m := range rep.Messages {
			if seen[m.TopicID] || m.Serial != next {
				t.Fatalf("%s serial %d (seen before: %v), want each once with serial %d", m.TopicID, m.Serial, seen[m.TopicID], next)
			}
			seen[m.TopicID] = true
			next++
		}
	}
	if len(seen) != writers*each {
		t.Errorf("%d messages arrived, want %d", len(seen), writers*each)
	}
}
