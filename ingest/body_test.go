package ingest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/statepipe/statepipe/schema"
)

// acceptAll acknowledges every record (safe for concurrent requests).
type acceptAll struct {
	mu sync.Mutex
	n  int
}

func (p *acceptAll) Produce(_ context.Context, msgs ...Record) error {
	p.mu.Lock()
	p.n += len(msgs)
	p.mu.Unlock()
	return nil
}

func validReport(t testing.TB) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := schema.EncodeReport(&b, &schema.Report{V: 1, Client: "c", Site: "P01",
		Messages: []schema.StateMessage{{Serial: 1, TopicType: 500, TopicID: "u", State: 1}}}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// openBody sends a report's headers claiming contentLength bytes and the first bytes of the
// body, then leaves the connection open: a client still sending (or trickling) its body.
func openBody(t testing.TB, addr string, contentLength int, first []byte) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	fmt.Fprintf(c, "POST /v1/reports HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n", schema.MediaMsgpack, contentLength)
	if _, err := c.Write(first); err != nil {
		t.Logf("body cut while sending: %v", err) // refused already; its answer tells
	}
	return c
}

func waitUntil(t testing.TB, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func post(t testing.TB, url string, body []byte) (*http.Response, schema.ErrorBody) {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Post(url, schema.MediaMsgpack, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var eb schema.ErrorBody
	raw, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(raw, &eb)
	return resp, eb
}

// Clients that have not finished sending their bodies hold no in-flight slot: with twice as
// many of them as slots, a report whose body arrived is still accepted. (A report once took
// its slot before reading its body: 300 tricklers took all 256 and every report got 503.)
func TestUnfinishedBodiesHoldNoSlot(t *testing.T) {
	h, err := New(Config{Site: "P01", MaxBodyBytes: 1 << 20, MaxMessages: 10, ProduceTimeout: time.Second, MaxInFlight: 2},
		&acceptAll{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close) // after the connections the test opened (cleanups run last first)
	for range 4 {
		openBody(t, srv.Listener.Addr().String(), 100000, []byte{0x85})
	}
	deadline := time.Now().Add(2 * time.Second) // until all four are being read
	for h.budget.held.Load() < 4*minBodyBuffer && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if resp, eb := post(t, srv.URL, validReport(t)); resp.StatusCode != 200 {
		t.Fatalf("a complete report while 4 bodies trickle into 2 slots: %d %+v, want 200", resp.StatusCode, eb)
	}
	if n := len(h.inFlight); n != 0 {
		t.Errorf("%d slots held by unfinished bodies", n)
	}
}

// The memory of bodies being read is bounded by the body budget, charged as bytes arrive: a
// trickling client holds the smallest buffer, a flood of large bodies gets 503 with
// Retry-After once the budget is used, and everything is released when the requests end.
func TestBodyMemoryIsBudgeted(t *testing.T) {
	const maxBody, budget = 256 << 10, 1 << 20
	h, err := New(Config{Site: "P01", MaxBodyBytes: maxBody, MaxMessages: 10, ProduceTimeout: time.Second, RetryAfter: 3,
		BodyMemoryBytes: budget}, &acceptAll{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close) // after the connections the test opened (cleanups run last first)
	addr := srv.Listener.Addr().String()

	// 100 tricklers, 10 bytes each: 4 KiB each of the budget, and reports still pass.
	var tricklers []net.Conn
	for range 100 {
		tricklers = append(tricklers, openBody(t, addr, 100000, bytes.Repeat([]byte{0x85}, 10)))
	}
	waitUntil(t, "100 trickled bodies are being read", func() bool { return h.budget.held.Load() == 100*minBodyBuffer })
	if resp, eb := post(t, srv.URL, validReport(t)); resp.StatusCode != 200 {
		t.Fatalf("report beside 100 tricklers: %d %+v, want 200", resp.StatusCode, eb)
	}
	for _, c := range tricklers {
		_ = c.Close()
	}
	waitUntil(t, "the tricklers' budget is released", func() bool { return h.budget.held.Load() == 0 })

	// A flood of large bodies sent fast (and not finished): the budget refuses what exceeds it.
	var answers []*bufio.Reader
	for range 8 {
		c := openBody(t, addr, 250<<10, make([]byte, 200<<10))
		answers = append(answers, bufio.NewReader(c))
		_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	}
	refused := 0
	for _, br := range answers {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			continue // still being read: holding its share of the budget
		}
		var eb schema.ErrorBody
		_ = json.NewDecoder(resp.Body).Decode(&eb)
		if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "3" || eb.Error.Code != schema.CodeUnavailable || !resp.Close {
			t.Errorf("refused body: %d Retry-After=%q close=%v %+v, want 503, Retry-After 3, connection closed",
				resp.StatusCode, resp.Header.Get("Retry-After"), resp.Close, eb)
		}
		refused++
	}
	// A refused client may lose its answer to the reset of the body it was still sending.
	n := int(counterValue(h.rejected.WithLabelValues("body_memory")))
	if refused == 0 || n < refused || n == len(answers) {
		t.Errorf("%d of %d fast 200 KiB bodies refused with a 1 MiB budget (%d answers read), want some but not all", n, len(answers), refused)
	}
	if held := h.budget.held.Load(); held > budget {
		t.Errorf("bodies hold %d bytes, over the budget of %d", held, budget)
	}
	srv.CloseClientConnections()
	waitUntil(t, "the flood's budget is released", func() bool { return h.budget.held.Load() == 0 })
	if resp, eb := post(t, srv.URL, validReport(t)); resp.StatusCode != 200 {
		t.Fatalf("report after the flood: %d %+v, want 200", resp.StatusCode, eb)
	}
}

// A body whose read deadline expires (the node sets it from its minimum rate) is answered 408
// with the error body and the connection closed, counted as slow_body.
func TestExpiredBodyDeadlineIs408(t *testing.T) {
	h, err := New(Config{Site: "P01", MaxBodyBytes: 1 << 20, MaxMessages: 10, ProduceTimeout: time.Second}, &acceptAll{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close) // after the connections the test opened (cleanups run last first)
	c := openBody(t, srv.Listener.Addr().String(), 100000, []byte{0x85})
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no answer to a stalled body: %v", err)
	}
	var eb schema.ErrorBody
	_ = json.NewDecoder(resp.Body).Decode(&eb)
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusRequestTimeout || eb.Error.Code != schema.CodeTimeout || eb.Error.Field != "body" || !resp.Close {
		t.Errorf("got %d close=%v %+v, want 408 timeout naming body, connection closed", resp.StatusCode, resp.Close, eb)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("connection still open after 408: %v", err)
	}
	if n := counterValue(h.rejected.WithLabelValues("slow_body")); n != 1 {
		t.Errorf("rejected{slow_body} = %v, want 1", n)
	}
	waitUntil(t, "the budget is released", func() bool { return h.budget.held.Load() == 0 })
}

// The body limit holds without a Content-Length (chunked): exactly the limit is read, one
// byte more is 413.
func TestChunkedBodyLimit(t *testing.T) {
	const limit = 5000 // not a buffer class: the last class is capped at the limit
	h, err := New(Config{Site: "P01", MaxBodyBytes: limit, MaxMessages: 10, ProduceTimeout: time.Second}, &acceptAll{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close) // after the connections the test opened (cleanups run last first)
	for _, tc := range []struct{ size, status int }{{limit, 400}, {limit + 1, 413}, {3 * limit, 413}} {
		// A reader of unknown length: sent chunked, without Content-Length.
		req, _ := http.NewRequest(http.MethodPost, srv.URL, io.MultiReader(strings.NewReader(strings.Repeat(" ", tc.size))))
		req.Header.Set("Content-Type", schema.MediaJSON)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("chunked body of %d bytes: %d, want %d", tc.size, resp.StatusCode, tc.status)
		}
	}
	if held := h.budget.held.Load(); held != 0 {
		t.Errorf("%d bytes of budget held after every request ended", held)
	}
}

func TestBodyBufferClasses(t *testing.T) {
	p := newBodyBuffers(5000)
	for _, tc := range []struct{ n, class, capacity int }{
		{0, 0, 4096}, {1, 0, 4096}, {4096, 0, 4096}, {4097, 1, 5000}, {5000, 1, 5000},
	} {
		if c := p.class(tc.n); c != tc.class || p.capacity(c) != tc.capacity {
			t.Errorf("class(%d) = %d (capacity %d), want %d (%d)", tc.n, c, p.capacity(c), tc.class, tc.capacity)
		}
	}
	p = newBodyBuffers(8 << 20)
	for _, tc := range []struct{ n, capacity int }{{8193, 16 << 10}, {2 << 20, 2 << 20}, {2<<20 + 1, 4 << 20}, {8 << 20, 8 << 20}} {
		if c := p.capacity(p.class(tc.n)); c != tc.capacity {
			t.Errorf("%d bytes get a buffer of %d, want %d", tc.n, c, tc.capacity)
		}
	}
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

// BenchmarkReadBody reads bodies of typical sizes: a delta, a large delta, a full scan.
func BenchmarkReadBody(b *testing.B) {
	h, err := New(Config{Site: "P01", MaxBodyBytes: 8 << 20, MaxMessages: 10, ProduceTimeout: time.Second}, &acceptAll{}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	for _, size := range []int{1 << 10, 64 << 10, 5 << 19} {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			payload := make([]byte, size)
			body := bytes.NewReader(payload)
			req := httptest.NewRequest(http.MethodPost, "/v1/reports", body)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				body.Reset(payload)
				buf, rej := h.readBody(req)
				if rej != nil || buf.Len() != size {
					b.Fatalf("read %d bytes, %v", buf.Len(), rej)
				}
				h.releaseBody(buf)
			}
		})
	}
}
