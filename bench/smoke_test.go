package bench

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// A site that refuses the smoke's reads (it wants a reader token) ends the run at once with
// the reason, instead of waiting out the timeout; with the token the reads carry it.
func TestSmokeReadsWithTheReaderToken(t *testing.T) {
	var authorized atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/v1/reports":
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"accepted":1,"folded":false}`))
		case r.Header.Get("Authorization") != "Bearer RT":
			http.Error(w, `{"error":{"code":"unauthenticated"}}`, http.StatusUnauthorized)
		default:
			authorized.Store(true)
			http.Error(w, "not this test's", http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	cfg := SmokeConfig{URL: srv.URL, Site: "P01", Clients: 2, Updates: 1, Concurrency: 1, Timeout: time.Minute}
	// Waiting would end in the timeout's error: the refusal ends it first.
	_, err := Smoke(context.Background(), cfg)
	if !errors.Is(err, errRefused) || !strings.Contains(err.Error(), "--reader-token") {
		t.Fatalf("without the token: %v, want the refusal naming --reader-token", err)
	}
	cfg.ReaderToken, cfg.Timeout = "RT", 2*time.Second
	_, _ = Smoke(context.Background(), cfg)
	if !authorized.Load() {
		t.Error("with the token: no read carried it")
	}
}
