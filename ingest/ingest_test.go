package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/statepipe/statepipe/schema"
)

// failingProducer stands in for a broker that does not acknowledge: the one fault here a
// unit test cannot cause with a real broker cheaply (the end-to-end suite covers the rest).
type failingProducer struct {
	block bool
	err   error
}

func (p failingProducer) Produce(ctx context.Context, _ ...Record) error {
	if p.err != nil {
		return p.err
	}
	if p.block {
		<-ctx.Done()
		return ctx.Err()
	}
	return errors.New("kafka: not enough replicas")
}

func TestBrokerFailureIs503WithRetryAfter(t *testing.T) {
	for name, prod := range map[string]Producer{"error": failingProducer{}, "timeout": failingProducer{block: true}} {
		t.Run(name, func(t *testing.T) {
			h, err := New(Config{Site: "P01", MaxBodyBytes: 1 << 20, MaxMessages: 10, ProduceTimeout: 50 * time.Millisecond, RetryAfter: 3}, prod, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, eb := postOne(t, h)
			if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "3" || eb.Error.Code != schema.CodeUnavailable {
				t.Errorf("got %d Retry-After=%q %+v", resp.StatusCode, resp.Header.Get("Retry-After"), eb)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	if _, err := New(Config{}, failingProducer{}, nil, nil); err == nil {
		t.Error("empty config accepted")
	}
}

// A record the broker refuses for its size can never be accepted: 413, not 503.
func TestRecordTooLargeForTheTopicIs413(t *testing.T) {
	h, _ := New(Config{Site: "P01", MaxBodyBytes: 1 << 20, MaxMessages: 10, ProduceTimeout: time.Second},
		failingProducer{err: fmt.Errorf("%w: the broker said MESSAGE_TOO_LARGE", ErrRecordTooLarge)}, nil, nil)
	if resp, _ := postOne(t, h); resp.StatusCode != 413 {
		t.Errorf("status %d, want 413", resp.StatusCode)
	}
}

// postOne serves h over real HTTP and posts one valid msgpack report to it.
func postOne(t *testing.T, h http.Handler) (*http.Response, schema.ErrorBody) {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	var body bytes.Buffer
	_ = schema.EncodeReport(&body, &schema.Report{V: 1, Client: "c", Site: "P01",
		Messages: []schema.StateMessage{{Serial: 1, TopicType: 500, TopicID: "u", State: 1}}})
	resp, err := http.Post(srv.URL, schema.MediaMsgpack, &body)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var eb schema.ErrorBody
	_ = json.NewDecoder(resp.Body).Decode(&eb)
	return resp, eb
}

// Overload is shed: with every slot taken by a report waiting on Kafka, the next report is
// answered 503 with Retry-After at once, and counted.
func TestOverloadIsShedWith503(t *testing.T) {
	h, err := New(Config{Site: "P01", MaxBodyBytes: 1 << 20, MaxMessages: 10, ProduceTimeout: 5 * time.Second, RetryAfter: 1, MaxInFlight: 2},
		failingProducer{block: true}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	body := func() *bytes.Buffer {
		var b bytes.Buffer
		_ = schema.EncodeReport(&b, &schema.Report{V: 1, Client: "c", Site: "P01",
			Messages: []schema.StateMessage{{Serial: 1, TopicType: 500, TopicID: "u", State: 1}}})
		return &b
	}
	// Two reports occupy both slots (their produce blocks until the timeout).
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i := 0; i < 2; i++ {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL, body())
		req.Header.Set("Content-Type", schema.MediaMsgpack)
		go func() {
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		}()
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(h.inFlight) < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	resp, err := http.Post(srv.URL, schema.MediaMsgpack, body())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var eb schema.ErrorBody
	_ = json.NewDecoder(resp.Body).Decode(&eb)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "1" || eb.Error.Code != schema.CodeUnavailable {
		t.Errorf("third report: got %d Retry-After=%q %+v, want 503 at once", resp.StatusCode, resp.Header.Get("Retry-After"), eb)
	}
	// Shed, not queued behind the blocked reports (whose own answer would be a produce timeout).
	if !strings.Contains(eb.Error.Message, "handling 2 reports") {
		t.Errorf("third report was not shed for overload: %q", eb.Error.Message)
	}
}
