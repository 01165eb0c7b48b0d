package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/statepipe/statepipe/schema"
)

type okProducer struct{ n *int }

func (p okProducer) Produce(_ context.Context, recs ...Record) error { *p.n += len(recs); return nil }

// An import waits for the site to fold it: 200 folded once Folded returns, 202 with the
// reason when it does not within FoldWait, no wait with ?wait=false, 400 for a bad wait.
func TestRefImportWaitsUntilFolded(t *testing.T) {
	var produced int
	folded := make(chan struct{})
	h := &RefHandler{Site: "P01", Producer: okProducer{&produced}, FoldWait: 200 * time.Millisecond,
		Folded: func(ctx context.Context) error {
			select {
			case <-folded:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}}
	mux := http.NewServeMux()
	mux.Handle("POST /v1/ref/{kind}", h)
	post := func(query string) (int, RefAck) {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest("POST", "/v1/ref/collections"+query, strings.NewReader(`{"id":"C","name":"c","members":["a"]}`)))
		var ack RefAck
		_ = json.NewDecoder(rec.Body).Decode(&ack)
		return rec.Code, ack
	}
	if st, ack := post(""); st != 202 || ack.Folded || !strings.Contains(ack.Message, "not folded within 200ms") {
		t.Errorf("no fold within the bound: %d %+v, want 202 with the reason", st, ack)
	}
	if st, ack := post("?wait=false"); st != 200 || ack.Folded || ack.Imported != 1 {
		t.Errorf("wait=false: %d %+v, want 200 at once", st, ack)
	}
	if st, _ := post("?wait=maybe"); st != 400 {
		t.Errorf("wait=maybe: %d, want 400", st)
	}
	close(folded)
	if st, ack := post(""); st != 200 || !ack.Folded {
		t.Errorf("folded: %d %+v, want 200 folded", st, ack)
	}
	if produced != 3 {
		t.Errorf("produced %d records, want 3 (the bad wait is refused before producing)", produced)
	}
}

// A report waiting for its fold (?wait=true) holds neither an in-flight slot nor body
// memory: with the only slot's report waiting, another report is answered 200; past
// MaxWaiting a report is answered at once, not folded, saying why.
func TestWaitingReportsHoldNoSlot(t *testing.T) {
	var produced int
	release := make(chan struct{})
	cfg := DefaultConfig()
	cfg.Site, cfg.MaxInFlight, cfg.MaxWaiting, cfg.BodyMemoryBytes, cfg.MaxBodyBytes = "P01", 1, 1, 4096, 2048
	cfg.Folded = func(ctx context.Context, _ []byte) error {
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	h, err := New(cfg, okProducer{&produced}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	post := func(client, query string) (int, schema.Ack) {
		var b bytes.Buffer
		_ = schema.EncodeReport(&b, &schema.Report{V: 1, Client: client, Site: "P01",
			Messages: []schema.StateMessage{{Serial: 1, TopicType: 500, TopicID: "u", State: 1, Params: []string{strings.Repeat("p", 1000)}}}})
		resp, err := http.Post(srv.URL+query, schema.MediaMsgpack, &b)
		if err != nil {
			t.Error(err)
			return 0, schema.Ack{}
		}
		defer resp.Body.Close()
		var ack schema.Ack
		_ = json.NewDecoder(resp.Body).Decode(&ack)
		return resp.StatusCode, ack
	}
	first := make(chan schema.Ack, 1)
	go func() { _, ack := post("waiter", "?wait=true"); first <- ack }()
	deadline := time.Now().Add(5 * time.Second)
	for len(h.waiting) < 1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if len(h.waiting) != 1 || len(h.inFlight) != 0 {
		t.Fatalf("waiting %d, in flight %d: want the waiter waiting without a slot", len(h.waiting), len(h.inFlight))
	}
	// Its slot and its ~1 KiB body are free: two more reports fit in 4 KiB and one slot.
	for i := range 2 {
		if st, ack := post(fmt.Sprintf("other-%d", i), ""); st != 200 || ack.Folded {
			t.Errorf("report beside a waiter: %d %+v, want 200", st, ack)
		}
	}
	if st, ack := post("second-waiter", "?wait=true"); st != 200 || ack.Folded || !strings.Contains(ack.Message, "max-waiting") {
		t.Errorf("waiter past MaxWaiting: %d %+v, want 200 at once, not folded, saying why", st, ack)
	}
	close(release)
	if ack := <-first; !ack.Folded {
		t.Errorf("the waiter: %+v, want folded", ack)
	}
	if produced != 4 {
		t.Errorf("produced %d, want 4", produced)
	}
}

// Phase releases are written by the deciding site only: /v1/ref/phases is not a kind (404),
// and lists or collections holding the reserved "~" are refused (400 naming id), nothing
// produced.
func TestRefImportRefusesPhaseRecords(t *testing.T) {
	var produced int
	mux := http.NewServeMux()
	mux.Handle("POST /v1/ref/{kind}", &RefHandler{Site: "P01", Producer: okProducer{&produced}})
	post := func(kind, body string) (int, RefErrorBody) {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest("POST", "/v1/ref/"+kind, strings.NewReader(body)))
		var eb RefErrorBody
		_ = json.NewDecoder(rec.Body).Decode(&eb)
		return rec.Code, eb
	}
	if st, eb := post("phases", `{"deployment":"D","phase":2,"name":"broad","released_at":"2026-11-30T10:00:00Z","reason":"forged"}`); st != 404 || eb.Error.Field != "kind" {
		t.Errorf("phases: %d %+v, want 404 naming kind", st, eb)
	}
	if st, eb := post("collections", `{"id":"D~phase-2","members":["pc1"]}`); st != 400 || len(eb.Lines) != 1 || eb.Lines[0].Field != "id" || !strings.Contains(eb.Lines[0].Reason, "reserved") {
		t.Errorf("a generated collection id: %d %+v, want 400 naming id", st, eb)
	}
	if st, eb := post("lists", `{"id":"D~updates","updates":["U"]}`); st != 400 || eb.Lines[0].Field != "id" {
		t.Errorf("a generated list id: %d %+v, want 400 naming id", st, eb)
	}
	if produced != 0 {
		t.Errorf("produced %d records", produced)
	}
}
