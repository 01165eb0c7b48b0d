package plugin_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"

	"github.com/statepipe/statepipe/dashboards/plugin/pkg/plugin"
)

func health(t *testing.T, ctx context.Context, st plugin.Settings) *backend.CheckHealthResult {
	t.Helper()
	ds := plugin.New(st)
	defer ds.Dispose()
	res, err := ds.CheckHealth(ctx, &backend.CheckHealthRequest{})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestCheckHealthMessages: "Save & test" tells a wrong URL, a wrong token and an
// unreachable site apart, each in words that say what to change.
func TestCheckHealthMessages(t *testing.T) {
	notStatepipe := httptest.NewServer(http.NotFoundHandler()) // 404 page not found, text
	defer notStatepipe.Close()
	html := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte("<html><body>Grafana</body></html>"))
	}))
	defer html.Close()
	otherJSON := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`{"status": "ok"}`))
	}))
	defer otherJSON.Close()
	refused := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer right" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error": {"code": "unauthenticated", "message": "this endpoint needs a token (Authorization: Bearer): /v1/reports/backlog", "field": "Authorization"}}`))
			return
		}
		_, _ = w.Write([]byte(`{"as_of": "2026-11-30T11:03:35Z", "site": "CEN", "sites": [{"site": "CEN", "lag_records": 0, "lag_seconds": 0, "links": [], "pacing": null},
			{"site": "P01", "parent": "CEN", "lag_records": 12, "lag_seconds": 0.8, "links": [{"link": "P01->CEN", "freshness_seconds": 0.9, "backlog_records": 40, "state": "active"}], "pacing": null}]}`))
	}))
	defer refused.Close()
	slow := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	defer slow.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedURL := "http://" + l.Addr().String()
	l.Close()

	bg := context.Background()
	short, cancel := context.WithTimeout(bg, 300*time.Millisecond)
	defer cancel()
	cases := []struct {
		name     string
		ctx      context.Context
		st       plugin.Settings
		ok       bool
		contains []string
	}{
		{"no scheme", bg, plugin.Settings{URL: "statepipe:8081"}, false, []string{"Wrong URL:", "http:// or https://"}},
		{"empty", bg, plugin.Settings{}, false, []string{"Wrong URL:", "empty"}},
		{"not statepipe (404)", bg, plugin.Settings{URL: notStatepipe.URL}, false, []string{"Wrong URL:", "HTTP 404", "not a statepipe site"}},
		{"not statepipe (HTML)", bg, plugin.Settings{URL: html.URL}, false, []string{"Wrong URL:", "not statepipe's JSON"}},
		{"not statepipe (other JSON)", bg, plugin.Settings{URL: otherJSON.URL}, false, []string{"Wrong URL:", "not statepipe's backlog report"}},
		{"wrong token", bg, plugin.Settings{URL: refused.URL, Token: "wrong"}, false, []string{"Wrong token:", "401 unauthenticated", "--reader-token"}},
		{"no token", bg, plugin.Settings{URL: refused.URL}, false, []string{"Wrong token:"}},
		{"connection refused", bg, plugin.Settings{URL: closedURL}, false, []string{"Unreachable:", "connection refused"}},
		{"timeout", short, plugin.Settings{URL: slow.URL}, false, []string{"Unreachable:", "did not answer"}},
		{"ok", bg, plugin.Settings{URL: refused.URL + "/", Token: "right"}, true, []string{"OK: statepipe site CEN", "2 site(s)", "P01: 12 reports waiting to fold (0.8 s), link P01->CEN active, data 0.9 s old"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := health(t, c.ctx, c.st)
			t.Logf("%v: %s", res.Status, res.Message)
			if (res.Status == backend.HealthStatusOk) != c.ok {
				t.Errorf("status %v, want ok=%v: %s", res.Status, c.ok, res.Message)
			}
			for _, s := range c.contains {
				if !strings.Contains(res.Message, s) {
					t.Errorf("message %q does not say %q", res.Message, s)
				}
			}
		})
	}
}

// TestCheckHealthFixture: the real site, with the right token, a wrong one and a site it
// does not serve.
func TestCheckHealthFixture(t *testing.T) {
	f := fixtureSite(t)
	bg := context.Background()
	res := health(t, bg, plugin.Settings{URL: f.URL, Token: readerToken})
	t.Log(res.Message)
	if res.Status != backend.HealthStatusOk || !strings.HasPrefix(res.Message, "OK: statepipe site CEN at "+f.URL+" answers (2 site(s))") ||
		!strings.Contains(res.Message, "link P01->CEN") {
		t.Errorf("right token, no site (the root): %v %q", res.Status, res.Message)
	}
	if res := health(t, bg, plugin.Settings{URL: f.URL, Token: readerToken, Site: "P01"}); res.Status != backend.HealthStatusOk ||
		!strings.HasPrefix(res.Message, "OK: statepipe site P01 at "+f.URL) {
		t.Errorf("right token, site P01: %v %q", res.Status, res.Message)
	}
	if res := health(t, bg, plugin.Settings{URL: f.URL, Token: "wrong"}); !strings.HasPrefix(res.Message, "Wrong token:") {
		t.Errorf("wrong token: %q", res.Message)
	}
	if res := health(t, bg, plugin.Settings{URL: f.URL, Token: readerToken, Site: "P99"}); !strings.HasPrefix(res.Message, "Wrong site:") {
		t.Errorf("wrong site: %q", res.Message)
	}
	if res := health(t, bg, plugin.Settings{URL: f.URL + "/prefix", Token: readerToken}); !strings.HasPrefix(res.Message, "Wrong URL:") {
		t.Errorf("URL with a wrong path: %q", res.Message)
	}
}
