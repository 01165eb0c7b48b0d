package main

// End-to-end tests of issue 11's analyst SQL and report hardening: one request must never
// crash, freeze, fill or fool a site.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/statepipe/statepipe/client"
	"github.com/statepipe/statepipe/internal/storetest"
	"github.com/statepipe/statepipe/report"
	"github.com/statepipe/statepipe/schema"
)

// sqlLong runs for minutes on one thread unless stopped: the query that once froze a site's
// projector and every report for 12 minutes.
const sqlLong = "SELECT count() FROM numbers(30000000000) WHERE sipHash64(number) = 0"

type sqlAnswer struct {
	status int
	err    schema.ErrorDetail
	retry  string
	res    schema.Result
}

// postSQL runs q through POST /v1/sql with ctx (cancelling ctx is the caller going away).
func (s *testSite) postSQL(ctx context.Context, q string) (sqlAnswer, error) {
	body, _ := json.Marshal(report.SQLRequest{Query: q})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.url+"/v1/sql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return sqlAnswer{}, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := sqlAnswer{status: resp.StatusCode, retry: resp.Header.Get("Retry-After")}
	if resp.StatusCode == 200 {
		err = json.Unmarshal(raw, &a.res)
	} else {
		var eb schema.ErrorBody
		err = json.Unmarshal(raw, &eb)
		a.err = eb.Error
	}
	return a, err
}

// sqlRunning counts the analyst queries the site's engine runs (through /v1/sql itself).
func (s *testSite) sqlRunning() int64 {
	s.t.Helper()
	a, err := s.postSQL(context.Background(), "SELECT count() FROM system.processes WHERE query LIKE '/* statepipe-sql %' AND query NOT LIKE '%system.processes%'")
	if err != nil || a.status != 200 || len(a.res.Rows) != 1 {
		s.t.Fatalf("cannot count running analyst queries: %v %d %+v", err, a.status, a.err)
	}
	n, _ := a.res.Rows[0][0].(float64)
	return int64(n)
}

func (s *testSite) waitSQLRunning(n int64) {
	s.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		got := s.sqlRunning()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%d analyst queries running after 15s, want %d", got, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// foldAndReport posts one state and measures how long until the compliance report shows it,
// and how long one more compliance report then takes.
func (s *testSite) foldAndReport(cl *client.Client, state int32) (fold, rep time.Duration) {
	s.t.Helper()
	start := time.Now()
	if err := cl.Report(context.Background(), false, schema.StateMessage{TopicType: 500, TopicID: "KB-SQL", State: state}); err != nil {
		s.t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var c report.Compliance
		code, e := s.rpGet("/v1/reports/compliance?updates=KB-SQL", &c)
		if code != 200 {
			s.t.Fatalf("compliance: %d %+v", code, e)
		}
		if len(c.Updates) == 1 && c.Updates[0].Total > 0 && ((state == 3 && c.Updates[0].Installed > 0) || (state == 2 && c.Updates[0].Required > 0)) {
			break
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("state not folded after 30s: %+v", c.Updates)
		}
		time.Sleep(10 * time.Millisecond)
	}
	fold = time.Since(start)
	start = time.Now()
	var c report.Compliance
	if code, e := s.rpGet("/v1/reports/compliance?updates=KB-SQL", &c); code != 200 {
		s.t.Fatalf("compliance: %d %+v", code, e)
	}
	return fold, time.Since(start)
}

// One analyst query freezes nothing: while it runs, reports are folded and answered as fast
// as without it; it stops when its caller goes away, and the site stops within its deadline
// while one runs. On the embedded engine they all once shared one connection, whose queries
// run one after another: this query held the projector and every report for 12 minutes.
func TestAnalystSQLFreezesNothing(t *testing.T) {
	s := startSite(t, siteOpts{tune: func(c *runConfig) {
		c.Store.SQL = schema.SQLLimits{MaxConcurrent: 2, Timeout: 10 * time.Minute, MaxThreads: 1}
	}})
	cl := s.client("pc-sql-1")
	fold, rep := s.foldAndReport(cl, 2)
	t.Logf("alone: folded and reported in %v, one more report in %v", fold.Round(time.Millisecond), rep.Round(time.Millisecond))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { _, err := s.postSQL(ctx, sqlLong); done <- err }()
	s.waitSQLRunning(1)
	for i := uint64(0); i < 3; i++ {
		fold, rep := s.foldAndReport(cl, int32(2+(i+1)%2))
		t.Logf("beside a running analyst query: folded and reported in %v, one more report in %v", fold.Round(time.Millisecond), rep.Round(time.Millisecond))
		if fold > 5*time.Second || rep > 2*time.Second {
			t.Errorf("beside a running analyst query: folding took %v, a report %v", fold, rep)
		}
	}
	cancel() // the analyst went away
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled request: %v", err)
	}
	start := time.Now()
	s.waitSQLRunning(0)
	t.Logf("the analyst query stopped %v after its caller went away", time.Since(start).Round(time.Millisecond))

	// Shutdown while an analyst query runs keeps its deadline.
	go func() { _, err := s.postSQL(context.Background(), sqlLong); done <- err }()
	s.waitSQLRunning(1)
	start = time.Now()
	s.stop()
	took := time.Since(start)
	t.Logf("the site stopped in %v with an analyst query running", took.Round(time.Millisecond))
	if took > 8*time.Second { // the HTTP server cancels requests still running after its grace (--http.shutdown-grace, 2s)
		t.Errorf("the site took %v to stop with an analyst query running", took)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Error("the analyst request had no answer 5s after the site stopped")
	}
}

// Analyst SQL writes nothing: the statements that overwrote a site key (SHOW DATABASES INTO
// OUTFILE … TRUNCATE) or left the site unable to restart (EXISTS TABLE … INTO OUTFILE into
// the engine's metadata) are refused, 400 naming query, and no file changes.
func TestAnalystSQLWritesNoFile(t *testing.T) {
	s := startSite(t, siteOpts{})
	dir := t.TempDir()
	key := filepath.Join(dir, "site-P01.key")
	if err := os.WriteFile(key, []byte("the site key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	evil := filepath.Join(chdbDir, "metadata", "evil.sql")
	db := database(s.code)
	for _, q := range []string{
		"SHOW DATABASES INTO OUTFILE '" + key + "' TRUNCATE",
		"EXISTS TABLE " + db + ".current_state INTO OUTFILE '" + evil + "'",
		"SELECT 'ATTACH TABLE x' INTO OUTFILE '" + evil + "' TRUNCATE",
		"SHOW TABLES FROM " + db,
		"DESCRIBE TABLE " + db + ".current_state",
		"SELECT file('" + key + "')",
		"SELECT * FROM file('" + key + "', 'LineAsString')",
		"SELECT * FROM `" + key + "`",
		"SELECT 1 SETTINGS readonly = 0",
	} {
		a, err := s.postSQL(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		if a.status != 400 || a.err.Field != "query" || a.err.Message == "" || strings.Contains(a.err.Message, "the site key") {
			t.Errorf("%s: %d %+v, want 400 naming query", q, a.status, a.err)
		}
	}
	if b, err := os.ReadFile(key); err != nil || string(b) != "the site key\n" {
		t.Errorf("site key after analyst SQL: %q, %v", b, err)
	}
	if _, err := os.Stat(evil); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("analyst SQL wrote %s (%v)", evil, err)
	}
	// What analysts use instead of SHOW and DESCRIBE.
	a, err := s.postSQL(context.Background(), "SELECT name FROM system.columns WHERE database = '"+db+"' AND table = 'current_state' AND name = 'client'")
	if err != nil || a.status != 200 || len(a.res.Rows) != 1 {
		t.Errorf("system.columns: %v %d %+v", err, a.status, a.err)
	}
}

// The limits answer for themselves: beyond --sql.max-concurrent a query is answered 503 with
// Retry-After at once; a query past --sql.timeout is stopped and answered 400 naming the
// limit.
func TestAnalystSQLLimitsAnswer(t *testing.T) {
	s := startSite(t, siteOpts{tune: func(c *runConfig) {
		c.Store.SQL = schema.SQLLimits{MaxConcurrent: 2, Timeout: time.Second, MaxThreads: 1}
	}})
	start := time.Now()
	a, err := s.postSQL(context.Background(), sqlLong)
	if err != nil {
		t.Fatal(err)
	}
	if a.status != 400 || a.err.Field != "query" || !strings.Contains(a.err.Message, "--sql.timeout") || time.Since(start) > 10*time.Second {
		t.Errorf("past the timeout: %d %+v after %v, want 400 naming query and --sql.timeout", a.status, a.err, time.Since(start))
	}
	t.Logf("timeout answer after %v: %s", time.Since(start).Round(time.Millisecond), a.err.Message)

	busy := startSite(t, siteOpts{tune: func(c *runConfig) {
		c.Store.SQL = schema.SQLLimits{MaxConcurrent: 1, Timeout: 10 * time.Minute, MaxThreads: 1}
	}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for ctx.Err() == nil { // until it holds the one slot (a probe below may hold it a moment)
			if a, err := busy.postSQL(ctx, sqlLong); err != nil || a.status != 503 {
				return
			}
		}
	}()
	deadline := time.Now().Add(15 * time.Second)
	for {
		a, err = busy.postSQL(context.Background(), "SELECT 1")
		if err != nil {
			t.Fatal(err)
		}
		if a.status == 503 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if a.status != 503 || a.retry == "" || !strings.Contains(a.err.Message, "--sql.max-concurrent") {
		t.Errorf("beyond --sql.max-concurrent: %d Retry-After %q %+v, want 503 with Retry-After", a.status, a.retry, a.err)
	}
}

// GET /v1/reports/computer?client=<id>&updates=%FF dereferenced nil in the computer report
// and, the Go runtime's fault handlers being gone, killed the site: the engine handed back
// the stored id with its invalid UTF-8 replaced, which the report had not asked for. Now the
// parameter is refused (400 naming it) and the site keeps answering.
func TestComputerReportRefusesInvalidUTF8(t *testing.T) {
	var st siteStore
	s := startSite(t, siteOpts{wrap: func(inner siteStore) siteStore { st = inner; return inner }})
	s.foldAndReport(s.client("pc-utf8"), 3)
	// A key whose topic id is not valid UTF-8, as an older ingest stored it.
	if err := st.Insert(context.Background(), &storetest.CurrentRows{DB: database(s.code), Rows: []storetest.CurrentRow{
		{TopicType: 500, TopicID: "\xff", Client: "pc-utf8", Serial: 2, State: 2, Time: time.Now().UnixMilli(), AcceptedAt: time.Now().UnixMilli()},
	}}); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{
		"/v1/reports/computer?client=pc-utf8&updates=%FF",
		"/v1/reports/computer?client=pc-utf8&updates=KB-SQL,%FF",
		"/v1/reports/compliance?updates=%FF",
		"/v1/reports/trend?updates=%FF",
	} {
		s.rpStatus(path, 400, "updates")
	}
	s.rpStatus("/v1/reports/computer?client=%FF&updates=KB-SQL", 400, "client")
	var c report.Computer
	if code, e := s.rpGet("/v1/reports/computer?client=pc-utf8&updates=KB-SQL", &c); code != 200 || len(c.Updates) != 1 || c.Updates[0].State != 3 {
		t.Errorf("the site after: %d %+v %+v", code, e, c.Updates)
	}
}
