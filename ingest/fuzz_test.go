package ingest

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/statepipe/statepipe/schema"
)

// capture keeps what the handler produced.
type capture struct{ msgs []Record }

func (c *capture) Produce(_ context.Context, msgs ...Record) error {
	c.msgs = append(c.msgs, msgs...)
	return nil
}

// FuzzHandler posts arbitrary bodies as msgpack and JSON: the handler must answer with a
// status of the contract (never 5xx, never panic), and whatever it accepted must decode and
// validate as one report.
func FuzzHandler(f *testing.F) {
	if golden, err := os.ReadFile("../schema/testdata/report_v1.msgpack"); err == nil {
		f.Add(golden, false)
	}
	if golden, err := os.ReadFile("../schema/testdata/report_v1.json"); err == nil {
		f.Add(golden, true)
	}
	f.Add([]byte(`{"v":1,"client":"c","site":"P01","messages":[{"serial":1,"time":1,"topic_type":500,"topic_id":"u","state":2}]}`), true)
	f.Add([]byte{0x80}, false)
	f.Fuzz(func(t *testing.T, body []byte, asJSON bool) {
		prod := &capture{}
		auth, err := NewAuth(AuthConfig{Mode: AuthOff, CredentialTTL: time.Hour, MaxClockSkew: time.Hour, MaxMessageAge: 100 * 365 * 24 * time.Hour,
			IdentityMaxStaleness: time.Second, ClientRate: 1e9, ClientBurst: 1 << 30}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		h, err := New(Config{Site: "P01", MaxBodyBytes: 1 << 20, MaxMessages: 1000, ProduceTimeout: time.Second, Auth: auth}, prod, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		ct := schema.MediaMsgpack
		if asJSON {
			ct = schema.MediaJSON
		}
		req := httptest.NewRequest(http.MethodPost, "/v1/reports", bytes.NewReader(body))
		req.Header.Set("Content-Type", ct)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		switch w.Code {
		case 200:
			if len(prod.msgs) != 1 {
				t.Fatalf("200 with %d records produced", len(prod.msgs))
			}
			var r schema.Report
			if err := schema.DecodeReport(prod.msgs[0].Value, &r); err != nil {
				t.Fatalf("produced an undecodable record: %v", err)
			}
			if err := r.Validate(schema.Limits{}); err != nil {
				t.Fatalf("produced an invalid report: %v", err)
			}
		case 400, 403, 413:
			if len(prod.msgs) != 0 {
				t.Fatalf("%d but a record was produced", w.Code)
			}
		default:
			t.Fatalf("unexpected status %d: %s", w.Code, w.Body.String())
		}
	})
}
