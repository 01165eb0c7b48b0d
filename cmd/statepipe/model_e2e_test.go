package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/statepipe/statepipe/report"
	"github.com/statepipe/statepipe/schema"
)

// importRef posts a reference-data file and requires a 200.
func (s *testSite) importRef(kind string, lines ...string) {
	s.t.Helper()
	resp, err := http.Post(s.url+"/v1/ref/"+kind, "application/x-ndjson", strings.NewReader(strings.Join(lines, "\n")))
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		s.t.Fatalf("import %s: %s %s", kind, resp.Status, b)
	}
}

func (s *testSite) get(path string, v any) int {
	s.t.Helper()
	resp, err := http.Get(s.url + path)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	if v != nil && resp.StatusCode == 200 {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			s.t.Fatal(err)
		}
	}
	return resp.StatusCode
}

// sendReport sends one report of client (full for topic type 500 when full) and requires that
// the site accepted it.
func (s *testSite) sendReport(ctx context.Context, client string, full bool, msgs ...schema.StateMessage) {
	s.t.Helper()
	rep := &schema.Report{V: 1, Client: client, Site: s.code, Messages: msgs}
	if full {
		rep.FullTypes = []schema.TopicType{500}
	}
	if _, err := s.client(client).Send(ctx, rep); err != nil {
		s.t.Fatal(err)
	}
}

// scanMsg is a completed scan of update source wsus-1 at the time at.
func scanMsg(serial uint64, at string) schema.StateMessage {
	return schema.StateMessage{Serial: serial, Time: ms(at), TopicType: 501, TopicID: "wsus-1", State: 3}
}

// sendComplianceCases sends the reports of the compliance rule cases (for U1 first synced
// 2024-10-01 and U2 2024-11-01): c1 installed U1 and requires U2, scanned in between; c2 only
// scanned, after both; c3's second full report leaves U1 installed and U2 removed; c5 requires
// U1 and never scanned.
func (s *testSite) sendComplianceCases(ctx context.Context) {
	s.t.Helper()
	s.sendReport(ctx, "c1", true, msg(1, "U1", 3), msg(2, "U2", 2))
	s.sendReport(ctx, "c1", false, scanMsg(3, "2024-10-15T00:00:00Z"))
	s.sendReport(ctx, "c2", false, scanMsg(1, "2024-11-15T00:00:00Z"))
	s.sendReport(ctx, "c3", true, msg(1, "U1", 2), msg(2, "U2", 2))
	s.sendReport(ctx, "c3", true, msg(10, "U1", 3)) // full: U2 is removed as of serial 10
	s.sendReport(ctx, "c5", false, msg(1, "U1", 2))
}

// eventually polls f until it returns "" or the deadline passes, then fails with its last say.
func eventually(t *testing.T, f func() string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		if last = f(); last == "" {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal(last)
}

func ms(s string) int64 {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t.UnixMilli()
}

type counts struct{ Installed, Required, NotRequired, Unknown, Total int64 }

func countsOf(rep *report.Compliance) map[string]counts {
	out := map[string]counts{}
	for _, u := range rep.Updates {
		out[u.UpdateID] = counts{u.Installed, u.Required, u.NotRequired, u.Unknown, u.Total}
	}
	return out
}

// The compliance rules of DESIGN §3 over reference data: full reports remove keys, a scan
// newer than an update's first synchronisation infers Not required, silence is Unknown,
// expired updates leave after the cleanup age, and scope follows the collection.
func TestComplianceRulesWithReferenceData(t *testing.T) {
	t.Parallel()
	s := startSite(t, siteOpts{tune: func(c *runConfig) { c.ExpiredCleanup = time.Millisecond }})
	ctx := context.Background()
	s.importRef("catalog",
		`{"id":"U1","title":"Update one","first_synced":"2024-10-01T00:00:00Z"}`,
		`{"id":"U2","title":"Update two","first_synced":"2024-11-01T00:00:00Z"}`,
		`{"id":"U3","title":"Expired one","expired":true,"first_synced":"2024-01-01T00:00:00Z"}`)
	s.importRef("lists", `{"id":"L","name":"list","updates":["U1","U2","U3"]}`)
	s.importRef("collections", `{"id":"C","name":"ring","members":["c1","c2","c3","c4"]}`)

	s.sendComplianceCases(ctx)
	// A delta older than c3's last full report, arriving late, stays removed.
	s.sendReport(ctx, "c3", false, msg(5, "U2", 3))

	var got report.Compliance
	eventually(t, func() string {
		if code := s.get("/v1/reports/compliance?list=L&collection=C", &got); code != 200 {
			return fmt.Sprintf("status %d", code)
		}
		want := map[string]counts{
			"U1": {Installed: 2, Required: 0, NotRequired: 1, Unknown: 1, Total: 4},
			"U2": {Installed: 0, Required: 1, NotRequired: 1, Unknown: 2, Total: 4},
		}
		if c := countsOf(&got); !reflect.DeepEqual(c, want) {
			return fmt.Sprintf("collection C: got %+v, want %+v", c, want)
		}
		if want := (report.ComputerCounts{Compliant: 1, NonCompliant: 1, Unknown: 2, Total: 4, CompliantPct: 25}); got.Computers != want {
			return fmt.Sprintf("computers %+v, want %+v", got.Computers, want)
		}
		return ""
	})
	if got.Updates[0].Title != "Update one" {
		t.Errorf("title = %q", got.Updates[0].Title)
	}
	// Site scope: every client heard from (c4 never reported; c5 is outside the collection).
	s.get("/v1/reports/compliance?list=L", &got)
	want := map[string]counts{
		"U1": {Installed: 2, Required: 1, NotRequired: 1, Unknown: 0, Total: 4},
		"U2": {Installed: 0, Required: 1, NotRequired: 1, Unknown: 2, Total: 4},
	}
	if c := countsOf(&got); !reflect.DeepEqual(c, want) {
		t.Errorf("site scope: got %+v, want %+v", c, want)
	}
	// Explicit updates, and unknown names answer 404 naming the parameter.
	s.get("/v1/reports/compliance?updates=U2&collection=C", &got)
	if c := countsOf(&got); len(c) != 1 || c["U2"].Required != 1 {
		t.Errorf("updates=U2: %+v", c)
	}
	for path, field := range map[string]string{"/v1/reports/compliance?list=nope": "list", "/v1/reports/compliance?collection=nope": "collection"} {
		resp, _ := http.Get(s.url + path)
		var eb schema.ErrorBody
		_ = json.NewDecoder(resp.Body).Decode(&eb)
		resp.Body.Close()
		if resp.StatusCode != 404 || eb.Error.Field != field {
			t.Errorf("%s: %d %+v, want 404 naming %s", path, resp.StatusCode, eb.Error, field)
		}
	}
	// The live-state view agrees: c3's U2 is gone.
	res, _ := s.sql("SELECT count() FROM " + database(s.code) + ".v_live_state WHERE client = 'c3' AND topic_id = 'U2'")
	if res.Rows[0][0].(float64) != 0 {
		t.Errorf("c3/U2 still live after a full report without it")
	}
}

func TestReferenceImportRejectsBadLinesAndImportsNothing(t *testing.T) {
	t.Parallel()
	s := startSite(t, siteOpts{})
	body := strings.Join([]string{
		`{"id":"A","title":"ok","first_synced":"2024-10-01T00:00:00Z"}`,
		`{"id":"B","title":7,"first_synced":"2024-10-01T00:00:00Z"}`,
		``,
		`{"id":"C","title":"no time"}`,
		`{"id":"A","title":"dup","first_synced":"2024-10-01T00:00:00Z"}`,
		`{"id":"D","title":"x","first_synced":"yesterday"}`,
	}, "\n")
	resp, err := http.Post(s.url+"/v1/ref/catalog", "application/x-ndjson", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var eb struct {
		Error schema.ErrorDetail `json:"error"`
		Lines []schema.LineError `json:"lines"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&eb)
	resp.Body.Close()
	var lines []string
	for _, l := range eb.Lines {
		lines = append(lines, fmt.Sprintf("%d:%s", l.Line, l.Field))
	}
	if resp.StatusCode != 400 || strings.Join(lines, " ") != "2:title 4:first_synced 5:id 6:" {
		t.Errorf("got %d %v %+v", resp.StatusCode, lines, eb.Error)
	}
	time.Sleep(300 * time.Millisecond)
	res, _ := s.sql("SELECT count() FROM " + database(s.code) + ".ref_updates")
	if res.Rows[0][0].(float64) != 0 {
		t.Error("a rejected file imported something")
	}
	if code := s.get("/v1/ref/nonsense", nil); code != 405 && code != 404 {
		t.Errorf("GET unknown kind: %d", code)
	}
}
