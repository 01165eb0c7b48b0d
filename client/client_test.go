package client

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/statepipe/statepipe/schema"
)

// A server that answers 503 with Retry-After twice, then accepts: the client retries with
// the same serials and succeeds.
func TestRetriesUnavailableWithSameSerials(t *testing.T) {
	var calls atomic.Int32
	var serials []uint64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var rep schema.Report
		body := make([]byte, r.ContentLength)
		_, _ = r.Body.Read(body)
		if err := schema.DecodeReport(body, &rep); err != nil {
			t.Errorf("server got undecodable body: %v", err)
		}
		serials = append(serials, rep.Messages[0].Serial)
		if calls.Add(1) <= 2 {
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"error":{"code":"unavailable","message":"broker down"}}`))
			return
		}
		_, _ = w.Write([]byte(`{"accepted":1}`))
	}))
	defer srv.Close()
	c, err := New(Config{URL: srv.URL, Site: "P01", ClientID: "c1", NextSerial: 41, BackoffMin: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Report(context.Background(), true, schema.StateMessage{TopicType: 500, TopicID: "u", State: 2}); err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 3 || len(serials) != 3 || serials[0] != 41 || serials[2] != 41 {
		t.Errorf("calls %d, serials %v: want 3 attempts all with serial 41", calls.Load(), serials)
	}
	if c.LastSerial() != 41 {
		t.Errorf("last serial %d, want 41", c.LastSerial())
	}
}

// A 400 is final: no retry, and the error carries the server's code and field.
func TestDoesNotRetryRejections(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"error":{"code":"malformed","message":"bad state","field":"messages[0].state"}}`))
	}))
	defer srv.Close()
	c, _ := New(Config{URL: srv.URL, Site: "P01", ClientID: "c1", BackoffMin: time.Millisecond})
	err := c.Report(context.Background(), false, schema.StateMessage{TopicType: 500, TopicID: "u", State: 2})
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 400 || apiErr.Field != "messages[0].state" {
		t.Fatalf("err = %v", err)
	}
	if calls.Load() != 1 {
		t.Errorf("%d calls, want 1", calls.Load())
	}
}

// Network errors are retried until MaxAttempts, then reported.
func TestGivesUpAfterMaxAttempts(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens any more
	c, _ := New(Config{URL: url, Site: "P01", ClientID: "c1", MaxAttempts: 3, BackoffMin: time.Millisecond})
	err := c.Report(context.Background(), false, schema.StateMessage{TopicType: 701})
	if err == nil {
		t.Fatal("expected an error")
	}
}

// A credential of another site's key (this site was reset since, or its key replaced) is
// refused for good: the error says so (ForeignCredential) and the report is not retried or
// renewed; an expired credential is not foreign.
func TestForeignCredentialIsRecognised(t *testing.T) {
	_, oldSite, _ := ed25519.GenerateKey(rand.Reader)
	newSite, _, _ := ed25519.GenerateKey(rand.Reader)
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	now := time.Now()
	cred, err := schema.SignCredential(schema.Credential{Client: "c1", Site: "P01", Key: pub, Inc: 1,
		Issued: now.UnixMilli(), Expires: now.Add(time.Hour).UnixMilli()}, oldSite)
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		// As ingest answers: the error of checking the credential with the site's key.
		_, err := schema.ParseCredential(r.Header.Get(schema.HeaderCredential), newSite, time.Now())
		w.WriteHeader(http.StatusUnauthorized)
		_ = json.NewEncoder(w).Encode(schema.ErrorBody{Error: schema.ErrorDetail{Code: schema.CodeUnauthenticated, Message: err.Error(), Field: schema.HeaderCredential}})
	}))
	defer srv.Close()
	c, err := New(Config{URL: srv.URL, Site: "P01", ClientID: "c1", BackoffMin: time.Millisecond,
		Identity: &Identity{Client: "c1", Site: "P01", PrivateKey: key, Credential: cred, SerialBase: schema.SerialBase(1)}})
	if err != nil {
		t.Fatal(err)
	}
	err = c.Report(context.Background(), false, schema.StateMessage{TopicType: 500, TopicID: "u", State: 2})
	var apiErr *APIError
	if !errors.As(err, &apiErr) || !apiErr.ForeignCredential() {
		t.Fatalf("err = %v: want an APIError whose ForeignCredential is true", err)
	}
	if calls.Load() != 1 {
		t.Errorf("%d calls, want 1: a foreign credential is final", calls.Load())
	}
	expired := &APIError{Status: http.StatusUnauthorized, ErrorDetail: schema.ErrorDetail{Code: schema.CodeUnauthenticated,
		Message: schema.ErrCredentialExpired.Error(), Field: schema.HeaderCredential}}
	if expired.ForeignCredential() {
		t.Errorf("an expired credential counted as foreign")
	}
}
