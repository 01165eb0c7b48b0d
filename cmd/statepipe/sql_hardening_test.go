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
	"regexp"
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

// sqlRunning counts the analyst queries the site's engine runs (asking the store: analyst SQL
// cannot read system.processes).
func (s *testSite) sqlRunning() int64 {
	s.t.Helper()
	res, err := s.node.sites[0].store.Query(context.Background(), "SELECT count() FROM system.processes WHERE query LIKE '/* statepipe-sql %'")
	if err != nil || len(res.Rows) != 1 {
		s.t.Fatalf("cannot count running analyst queries: %v", err)
	}
	n, _ := res.Rows[0][0].(int64)
	return n
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
		if code != 200 && (code != 404 || e.Field != "updates") { // 404: KB-SQL not folded yet
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
		// Not a bound on time (a loaded machine decides that): folding and the report ended
		// while the analyst query still runs — on one shared connection they waited for it.
		if n := s.sqlRunning(); n != 1 {
			t.Fatalf("the analyst query ended (%d running) before folding beside it was shown: the test shows nothing", n)
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
	// The query would run for 10 minutes: a stop that waited for it would take that long. The
	// HTTP server cancels requests still running after its grace (--http.shutdown-grace, 2 s).
	if took > time.Minute {
		t.Errorf("the site took %v to stop with an analyst query running", took)
	}
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Error("the analyst request had no answer a minute after the site stopped")
	}
}

// Analyst SQL writes nothing: the statements that overwrote a site key (SHOW DATABASES INTO
// OUTFILE … TRUNCATE) or left the site unable to restart (EXISTS TABLE … INTO OUTFILE into
// the engine's metadata) are refused, 400 naming query, and no file changes.
func TestAnalystSQLWritesNoFile(t *testing.T) {
	t.Parallel()
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
	t.Parallel()
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

// An answer past --sql.max-result-bytes is refused as it arrives: the site never holds more
// than about the limit of it (plus the engine's block being read). A 600 MB answer refused
// under the 64 MiB limit once took a site from 207 MB to 3.3 GB (6–8 GB with two at once): it
// was built whole as JSON, copied, decoded and only then measured.
func TestAnalystSQLAnswerIsBoundedAsItArrives(t *testing.T) {
	s := startSite(t, siteOpts{tune: func(c *runConfig) {
		c.Store.SQL = schema.SQLLimits{MaxConcurrent: 2, Timeout: time.Minute, MaxThreads: 1, MaxResultBytes: 1 << 20}
	}})
	if a, err := s.postSQL(context.Background(), "SELECT 1"); err != nil || a.status != 200 { // connections opened before measuring
		t.Fatalf("SELECT 1: %v %d %+v", err, a.status, a.err)
	}
	w := storetest.WatchMemory()
	start := time.Now()
	a, err := s.postSQL(context.Background(), storetest.BigAnswerSQL)
	took := time.Since(start)
	heap, rss := w.Stop()
	if err != nil {
		t.Fatal(err)
	}
	if a.status != 400 || a.err.Field != "query" || !strings.Contains(a.err.Message, "--sql.max-result-bytes") {
		t.Fatalf("a 600 MB answer under a 1 MiB limit: %d %+v, want 400 naming query and --sql.max-result-bytes", a.status, a.err)
	}
	t.Logf("a 600 MB answer under a 1 MiB limit: 400 in %v; the Go heap grew by at most %.1f MiB, the peak RSS by %.1f MiB",
		took.Round(time.Millisecond), float64(heap)/(1<<20), float64(rss)/(1<<20))
	if heap > storetest.BigAnswerHeapBound || rss > storetest.BigAnswerRSSBound {
		t.Errorf("the Go heap grew by %d bytes (at most %d), the peak RSS by %d (at most %d)", heap, storetest.BigAnswerHeapBound, rss, storetest.BigAnswerRSSBound)
	}
	// An answer within the limit still comes whole.
	a, err = s.postSQL(context.Background(), "SELECT number, toString(number) FROM numbers(20000)")
	if err != nil || a.status != 200 || len(a.res.Rows) != 20000 {
		t.Fatalf("an answer within the limit: %v %d %+v (%d rows)", err, a.status, a.err, len(a.res.Rows))
	}
}

// Sites hosted together share one engine (and sites of a hierarchy one ClickHouse server):
// analyst SQL reads the querying site's database only. Another site's tables, the engine's
// own tables (databases, disks and their paths, settings, other queries' text) are refused,
// 400 naming query and saying why; the site's own tables and views, qualified or not, and
// system.one, system.numbers, system.tables and system.columns (showing the site alone) run.
// (From the site hosting P01, SELECT * FROM statepipe_p02.… once read P02's states.)
func TestAnalystSQLReadsItsSiteOnly(t *testing.T) {
	t.Parallel()
	s := startSite(t, siteOpts{})
	other := startSite(t, siteOpts{})
	s.foldAndReport(s.client("pc-own"), 3)
	other.foldAndReport(other.client("pc-of-the-other-site"), 2)
	db, odb := database(s.code), database(other.code)
	const outside = "outside this site's database"
	for q, why := range map[string]string{
		"SELECT client FROM " + odb + ".current_state":                                                        odb + ".current_state is " + outside,
		"SELECT client FROM " + odb + ".v_live_state":                                                         outside,
		"SELECT client FROM " + db + ".v_live_state WHERE client IN (SELECT client FROM " + odb + ".clients)": outside,
		"SELECT * FROM view(SELECT client FROM " + odb + ".clients)":                                          outside,
		"SELECT name FROM system.databases":                                                                   "system.databases is " + outside,
		"SELECT name, path FROM system.disks":                                                                 "system.disks is " + outside,
		"SELECT name, value FROM system.settings":                                                             "system.settings is " + outside,
		"SELECT query FROM system.processes":                                                                  "system.processes is " + outside,
		"SELECT getServerSetting('path')":                                                                     "function getServerSetting is not allowed",
		"SELECT * FROM merge('" + odb + "', '.*')":                                                            "table function merge is not allowed",
	} {
		a, err := s.postSQL(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		if a.status != 400 || a.err.Field != "query" || !strings.Contains(a.err.Message, why) || strings.Contains(a.err.Message, "pc-of-the-other-site") {
			t.Errorf("%s: %d %+v, want 400 naming query saying %q", q, a.status, a.err, why)
		}
	}
	for q, want := range map[string]string{
		"SELECT client FROM current_state":                                              "pc-own",
		"SELECT client FROM " + db + ".v_live_state":                                    "pc-own",
		"SELECT DISTINCT database FROM system.tables":                                   db,
		"SELECT DISTINCT database FROM system.columns":                                  db,
		"SELECT toString(dummy) FROM system.one":                                        "0",
		"SELECT toString(max(number)) FROM (SELECT number FROM system.numbers LIMIT 3)": "2",
	} {
		a, err := s.postSQL(context.Background(), q)
		if err != nil || a.status != 200 || len(a.res.Rows) != 1 || a.res.Rows[0][0] != want {
			t.Errorf("%s: %v %d %+v %v, want [[%s]]", q, err, a.status, a.err, a.res.Rows, want)
		}
	}
}

// Every example query of the documentation runs, in the site's database, as written.
func TestAnalystSQLExamplesRun(t *testing.T) {
	t.Parallel()
	s := startSite(t, siteOpts{})
	s.foldAndReport(s.client("pc-examples"), 2)
	var queries []string
	for _, doc := range []string{"../../schema/README.md", "../../README.md"} {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		for _, block := range regexp.MustCompile("(?s)```sql\n(.*?)```").FindAllStringSubmatch(string(b), -1) {
			for _, q := range regexp.MustCompile(`;\s*(\n|$)`).Split(block[1], -1) {
				if q = strings.TrimSpace(q); strings.Contains(q, "SELECT") {
					queries = append(queries, q)
				}
			}
		}
		for _, m := range regexp.MustCompile(`statepipe sql --url [^"]*"(SELECT[^"]*)"`).FindAllStringSubmatch(string(b), -1) {
			queries = append(queries, m[1])
		}
	}
	if len(queries) < 10 {
		t.Fatalf("found %d example queries in the documentation", len(queries))
	}
	for _, q := range queries {
		q = strings.ReplaceAll(q, "statepipe_p01", database(s.code))
		a, err := s.postSQL(context.Background(), q)
		if err != nil || a.status != 200 {
			t.Errorf("example %q: %v %d %+v", q, err, a.status, a.err)
		}
	}
	t.Logf("%d example queries ran", len(queries))
}
