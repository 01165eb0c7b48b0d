package ingest

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
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
