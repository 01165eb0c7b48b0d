package main

// ClickHouse's HTTP interface on an embedded site (issue 18): the protocol subset over real
// HTTP, every refusal in ClickHouse's format, and real ClickHouse clients nobody here wrote —
// Python's clickhouse-connect and the npm package @clickhouse/client, installed by `make
// test-clients` — checked against the site's own compliance report.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go/compress"

	"github.com/statepipe/statepipe/report"
)

const chReader, chAdmin = "reader-secret-1", "admin-secret-1"

// chSite is a site with a reader and an admin token and ClickHouse's HTTP interface.
type chSite struct {
	*testSite
	ch string // the interface's URL
}

func startCHSite(t *testing.T) *chSite {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := startSite(t, siteOpts{tune: func(c *runConfig) {
		c.ReaderToken, c.AdminToken = chReader, chAdmin
		c.ClickHouseHTTP.Listener = l
	}})
	return &chSite{testSite: s, ch: "http://" + l.Addr().String()}
}

// chAnswer is one exchange with the interface.
type chAnswer struct {
	status int
	header http.Header
	body   string
}

// do sends a request to the interface: method, path with its parameters, body, headers as
// name/value pairs.
func (s *chSite) do(method, path, body string, headers ...string) chAnswer {
	s.t.Helper()
	req, err := http.NewRequest(method, s.ch+path, strings.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return chAnswer{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// query POSTs q as the reader.
func (s *chSite) query(path, q string) chAnswer {
	s.t.Helper()
	return s.do(http.MethodPost, path, q, "Authorization", "Basic "+basic("default", chReader))
}

func basic(user, pass string) string {
	req, _ := http.NewRequest(http.MethodGet, "/", nil)
	req.SetBasicAuth(user, pass)
	return strings.TrimPrefix(req.Header.Get("Authorization"), "Basic ")
}

// refused asserts a ClickHouse-style refusal: status, code header, and a body clients parse.
func (a chAnswer) refused(t *testing.T, what string, status, code int) {
	t.Helper()
	prefix := fmt.Sprintf("Code: %d. DB::Exception: ", code)
	if a.status != status || a.header.Get("X-ClickHouse-Exception-Code") != fmt.Sprint(code) ||
		!strings.HasPrefix(a.body, prefix) || !strings.Contains(a.body, "(version ") {
		t.Errorf("%s: %d code %q %q, want %d with code %d", what, a.status, a.header.Get("X-ClickHouse-Exception-Code"), a.body, status, code)
	}
}

func TestClickHouseHTTPInterface(t *testing.T) {
	t.Parallel()
	s := startCHSite(t)

	// Health checks, as ClickHouse answers them.
	for _, path := range []string{"/ping", "/"} {
		if a := s.do(http.MethodGet, path, ""); a.status != 200 || a.body != "Ok.\n" {
			t.Errorf("GET %s: %d %q", path, a.status, a.body)
		}
	}
	if a := s.do(http.MethodGet, "/nothing", ""); a.status != 404 {
		t.Errorf("GET /nothing: %d", a.status)
	}

	// Credentials: the password is the reader or admin token, any way clients send it; more
	// than one way at once, none, or a wrong one is 516.
	one := "/?query=" + url.QueryEscape("SELECT 1")
	for name, a := range map[string]chAnswer{
		"basic reader":  s.do(http.MethodGet, one, "", "Authorization", "Basic "+basic("default", chReader)),
		"basic admin":   s.do(http.MethodGet, one, "", "Authorization", "Basic "+basic("anyone", chAdmin)),
		"headers":       s.do(http.MethodGet, one, "", "X-ClickHouse-User", "default", "X-ClickHouse-Key", chReader),
		"parameters":    s.do(http.MethodGet, one+"&user=default&password="+chReader, ""),
		"bearer":        s.do(http.MethodGet, one, "", "Authorization", "Bearer "+chAdmin),
		"post the body": s.do(http.MethodPost, "/", "SELECT 1", "Authorization", "Basic "+basic("default", chReader)),
	} {
		if a.status != 200 || a.body != "1\n" || a.header.Get("X-ClickHouse-Format") != "TabSeparated" {
			t.Errorf("%s: %d %q %v", name, a.status, a.body, a.header)
		}
	}
	for name, a := range map[string]chAnswer{
		"none":          s.do(http.MethodGet, one, ""),
		"wrong":         s.do(http.MethodGet, one, "", "Authorization", "Basic "+basic("default", "guess")),
		"empty":         s.do(http.MethodGet, one+"&user=default&password=", ""),
		"two ways":      s.do(http.MethodGet, one+"&password=guess", "", "Authorization", "Basic "+basic("default", chReader)),
		"other scheme":  s.do(http.MethodGet, one, "", "Authorization", "Digest x"),
		"reader prefix": s.do(http.MethodGet, one, "", "X-ClickHouse-Key", chReader[:5]),
	} {
		a.refused(t, "credentials "+name, 401, 516)
	}

	// The headers clients read, the query id given or made, the query parameter and the body
	// together, default_format and FORMAT.
	a := s.query("/?default_format=JSONEachRow&query_id=q-1&query="+url.QueryEscape("SELECT 1 AS a,"), "2 AS b")
	var summary map[string]string
	_ = json.Unmarshal([]byte(a.header.Get("X-ClickHouse-Summary")), &summary)
	if a.status != 200 || a.body != `{"a":1,"b":2}`+"\n" || a.header.Get("X-ClickHouse-Query-Id") != "q-1" ||
		a.header.Get("X-ClickHouse-Format") != "JSONEachRow" || a.header.Get("X-ClickHouse-Timezone") == "" || summary["result_rows"] != "1" {
		t.Errorf("JSONEachRow: %d %q %v", a.status, a.body, a.header)
	}
	if a := s.query("/?default_format=JSONEachRow", "SELECT 'FORMAT CSV' AS s FORMAT CSV"); a.body != "\"FORMAT CSV\"\n" || a.header.Get("Content-Type") != "text/csv; charset=UTF-8; header=absent" {
		t.Errorf("FORMAT CSV: %q %v", a.body, a.header)
	}
	if a := s.query("/", "SELECT 1 /* FORMAT JSON */"); a.body != "1\n" {
		t.Errorf("FORMAT in a comment: %q", a.body)
	}
	// Formats whose blocks are documents of their own: one document for a many-block answer.
	a = s.query("/", "SELECT number FROM numbers(70000) WHERE number % 7 = 0 FORMAT JSON")
	var doc struct {
		Rows int              `json:"rows"`
		Data []map[string]any `json:"data"`
	}
	if err := json.Unmarshal([]byte(a.body), &doc); err != nil || doc.Rows != 10000 || len(doc.Data) != 10000 {
		t.Errorf("JSON of many blocks: %v, %d rows", err, doc.Rows)
	}
	// ClickHouse's own compression, as its drivers ask for it: the answer in compressed blocks
	// (compress=1), the query sent in them (decompress=1); a body that is not is refused.
	framed := s.query("/?compress=1", "SELECT number FROM numbers(3) FORMAT TSV")
	plain := make([]byte, 6)
	if _, err := io.ReadFull(compress.NewReader(strings.NewReader(framed.body)), plain); err != nil || string(plain) != "0\n1\n2\n" || framed.status != 200 {
		t.Errorf("compress=1: %d %q (%v)", framed.status, plain, err)
	}
	w := compress.NewWriter(compress.LevelZero, compress.LZ4)
	if err := w.Compress([]byte("SELECT 40 + 2")); err != nil {
		t.Fatal(err)
	}
	if a := s.query("/?decompress=1", string(w.Data)); a.status != 200 || a.body != "42\n" {
		t.Errorf("decompress=1: %d %q", a.status, a.body)
	}
	s.query("/?decompress=1", "SELECT 1").refused(t, "decompress=1 of a plain body", 400, 246)
	// X-ClickHouse-Summary says what was read (70,000 rows of 8 bytes), and what was answered:
	// of a document asked again whole, and of an answer in many blocks.
	readOf := func(a chAnswer) string {
		var sum map[string]string
		_ = json.Unmarshal([]byte(a.header.Get("X-ClickHouse-Summary")), &sum)
		return sum["read_rows"] + " " + sum["read_bytes"] + " " + sum["result_rows"]
	}
	if got := readOf(a); got != "70000 560000 10000" {
		t.Errorf("JSON of many blocks: summary read_rows read_bytes result_rows %q, want 70000 560000 10000", got)
	}
	if got := readOf(s.query("/", "SELECT number FROM numbers(150000) WHERE number % 3 = 0 FORMAT TSV")); got != "150000 1200000 50000" {
		t.Errorf("TSV of many blocks: summary %q, want 150000 1200000 50000", got)
	}
	a = s.query("/", "SELECT number, toString(number) AS s FROM numbers(70000) FORMAT Parquet")
	if a.status != 200 || !strings.HasPrefix(a.body, "PAR1") || !strings.HasSuffix(a.body, "PAR1") || strings.Count(a.body, "PAR1") != 2 {
		t.Errorf("Parquet of many blocks: %d, %d bytes, %d magics", a.status, len(a.body), strings.Count(a.body, "PAR1"))
	}
	a = s.query("/?default_format=TSVWithNames", "SELECT number AS n FROM numbers(70000)")
	if lines := strings.Split(strings.TrimSuffix(a.body, "\n"), "\n"); len(lines) != 70001 || lines[0] != "n" || strings.Count(a.body, "n\n") != 1 {
		t.Errorf("TSVWithNames of many blocks: %d lines", len(lines))
	}

	// The connect-time read of system.settings shows the site's settings, each readonly.
	a = s.query("/", "SELECT name, value, readonly FROM system.settings WHERE name IN ('readonly', 'max_threads') ORDER BY name FORMAT CSV")
	if a.body != "\"max_threads\",\"1\",1\n\"readonly\",\"1\",1\n" {
		t.Errorf("system.settings: %d %q", a.status, a.body)
	}
	// Settings as URL parameters: harmless ones and the site's own values pass, others are
	// refused as a readonly connection refuses them; query parameters are not supported.
	if a := s.query("/?send_progress_in_http_headers=1&wait_end_of_query=1&session_id=x&readonly=1&max_threads=1&max_execution_time=30", "SELECT 1"); a.status != 200 {
		t.Errorf("accepted settings: %d %q", a.status, a.body)
	}
	for _, p := range []string{"readonly=0", "readonly=2", "max_threads=8", "max_execution_time=0", "max_result_rows=0", "limit=0", "allow_ddl=1", "output_format_json_quote_64bit_integers=1", "additional_table_filters={}"} {
		s.query("/?"+p, "SELECT 1").refused(t, p, 403, 164)
	}
	s.query("/?param_x=1", "SELECT {x:UInt8}").refused(t, "param_x", 400, 48)
	s.query("/?database=statepipe_other", "SELECT 1").refused(t, "another database", 403, 497)
	if a := s.query("/?database="+database(s.code), "SELECT currentDatabase()"); a.body != database(s.code)+"\n" {
		t.Errorf("database: %q", a.body)
	}

	// Everything that is not a read of the site is refused in ClickHouse's format.
	for _, c := range []struct {
		q            string
		status, code int
	}{
		{"INSERT INTO ref_updates SELECT * FROM ref_updates", 403, 164},
		{"INSERT INTO ref_updates (id) VALUES ('x')", 403, 164},
		{"/* x */ insert into ref_updates format TSV\nx", 403, 164},
		{"CREATE TABLE t (a Int8) ENGINE = Memory", 403, 164},
		{"ALTER TABLE ref_updates DELETE WHERE 1", 403, 164},
		{"DROP TABLE ref_updates", 403, 164},
		{"TRUNCATE TABLE ref_updates", 403, 164},
		{"SYSTEM SHUTDOWN", 403, 164},
		{"KILL QUERY WHERE 1", 403, 164},
		{"SET readonly = 0", 403, 164},
		{"OPTIMIZE TABLE ref_updates", 403, 164},
		{"SELECT 1 SETTINGS readonly = 0", 403, 164},
		{"SELECT 1 FORMAT JSON SETTINGS readonly = 0", 403, 164},
		{"SELECT 1 INTO OUTFILE '/tmp/x' FORMAT CSV", 403, 164},
		{"SELECT * FROM file('/etc/passwd', 'LineAsString')", 403, 497},
		{"SELECT * FROM url('http://127.0.0.1:1/', 'LineAsString')", 403, 497},
		{"SELECT * FROM s3('http://127.0.0.1:1/x')", 403, 497},
		{"SELECT * FROM remote('127.0.0.1', system.one)", 403, 497},
		{"SELECT * FROM system.processes", 403, 497},
		{"SELECT * FROM statepipe_other.current_state", 403, 497},
		{"SELECT getServerSetting('path')", 403, 497},
		{"SELECT 1; SELECT 2", 400, 62},
		{"SELECT 1 FORMAT JSON FORMAT CSV", 400, 62},
		{"SELECT 1 FORMAT Template", 400, 73},
		{"SELECT 1 FORMAT CapnProto", 400, 73},
		{"SELECT number FROM numbers(200000)", 500, 396},
		{"SELECT count() FROM numbers(1000000000000)", 500, 158},
		{"", 400, 62},
	} {
		s.query("/", c.q).refused(t, c.q, c.status, c.code)
	}
	// GET takes the query parameter; the body of a GET is not a statement.
	if a := s.do(http.MethodGet, "/?query="+url.QueryEscape("DROP TABLE ref_updates"), "", "Authorization", "Basic "+basic("u", chReader)); a.status != 403 {
		t.Errorf("GET DROP: %d %q", a.status, a.body)
	}
	if a := s.do(http.MethodPut, "/", "SELECT 1", "Authorization", "Basic "+basic("u", chReader)); a.header.Get("X-ClickHouse-Exception-Code") != "1" {
		t.Errorf("PUT: %d %q", a.status, a.body)
	}
	// The tables are still there.
	if a := s.query("/", "SELECT count() FROM system.tables WHERE name = 'ref_updates'"); a.body != "1\n" {
		t.Errorf("ref_updates after the attacks: %q", a.body)
	}
}

// A client that stops reading is cut by the node's minimum rate, and its query's slot is free
// again: the interface holds nothing for it.
func TestClickHouseHTTPSlowReader(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := startSite(t, siteOpts{tune: func(c *runConfig) {
		c.ClickHouseHTTP.Listener = l
		c.HTTP = defaultHTTPConfig()
		c.HTTP.RateGrace = 500 * time.Millisecond
		c.HTTP.MinRate = 1 << 20
	}})
	ch := &chSite{testSite: s, ch: "http://" + l.Addr().String()}
	conn, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	q := "SELECT repeat('x', 600) FROM numbers(90000) FORMAT TSV" // about 54 MB
	fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", len(q), q)
	time.Sleep(4 * time.Second) // never read: cut after the grace
	for i := 0; i < 3; i++ {    // --sql.max-concurrent 2: the slot was given back
		if a := ch.query("/", "SELECT 1"); a.status != 200 {
			t.Fatalf("after a slow reader: %d %q", a.status, a.body)
		}
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, _ := io.Copy(io.Discard, conn)
	if n >= 54_000_000 {
		t.Errorf("a reader that stopped got the whole answer (%d bytes)", n)
	}
}

// adminImport posts a reference-data file with the admin token and requires a 200.
func (s *chSite) adminImport(kind string, lines ...string) {
	s.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.url+"/v1/ref/"+kind, strings.NewReader(strings.Join(lines, "\n")))
	req.Header.Set("Content-Type", "application/x-ndjson")
	req.Header.Set("Authorization", "Bearer "+chAdmin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		s.t.Fatalf("import %s: %s %s", kind, resp.Status, b)
	}
}

// complianceRows is the site's compliance report per update as [installed, required, not
// required, unknown] — what the clients' query of v_update_compliance_status must show.
func complianceRows(rep *report.Compliance) map[string][4]int64 {
	out := map[string][4]int64{}
	for _, u := range rep.Updates {
		out[u.UpdateID] = [4]int64{u.Installed, u.Required, u.NotRequired, u.Unknown}
	}
	return out
}

// clientOutput is what the client programs print.
type clientOutput struct {
	Client       string  `json:"client"`
	Version      string  `json:"version"`
	LatencyMS    float64 `json:"latency_ms"`
	Rows         [][]any `json:"rows"`
	Pandas       [][]any `json:"pandas"`
	WriteRefused *string `json:"write_refused"`
	DropRefused  *string `json:"drop_refused"`
}

func (o clientOutput) counts(rows [][]any) (map[string][4]int64, error) {
	out := map[string][4]int64{}
	for _, r := range rows {
		if len(r) != 5 {
			return nil, fmt.Errorf("row %v: want update_id and 4 counts", r)
		}
		id, _ := r[0].(string)
		var c [4]int64
		for i := range c {
			f, ok := r[i+1].(float64)
			if !ok {
				return nil, fmt.Errorf("row %v: count %d is not a number", r, i)
			}
			c[i] = int64(f)
		}
		out[id] = c
	}
	return out, nil
}

// Real ClickHouse clients query the embedded site: clickhouse-connect into rows and pandas,
// @clickhouse/client in JSONEachRow; the numbers are the site's own compliance report's, and
// a write surfaces as the client's error. make test-clients installs them and sets
// STATEPIPE_CLIENTS; without it the test is skipped (make test runs it).
func TestClickHouseClients(t *testing.T) {
	dir := os.Getenv("STATEPIPE_CLIENTS")
	if dir == "" {
		t.Skip("SKIPPED: real ClickHouse clients (clickhouse-connect, @clickhouse/client) are installed by `make test-clients`, which sets STATEPIPE_CLIENTS")
	}
	t.Parallel()
	s := startCHSite(t)
	ctx := context.Background()
	s.adminImport("catalog",
		`{"id":"U1","title":"Update one","first_synced":"2024-10-01T00:00:00Z"}`,
		`{"id":"U2","title":"Update two","first_synced":"2024-11-01T00:00:00Z"}`)
	s.adminImport("lists", `{"id":"L","name":"list","updates":["U1","U2"]}`)
	s.sendComplianceCases(ctx)
	want := map[string][4]int64{"U1": {2, 1, 1, 0}, "U2": {0, 1, 1, 2}}
	var rep report.Compliance
	eventually(t, func() string {
		req, _ := http.NewRequest(http.MethodGet, s.url+"/v1/reports/compliance?list=L", nil)
		req.Header.Set("Authorization", "Bearer "+chReader)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err.Error()
		}
		defer resp.Body.Close()
		rep = report.Compliance{}
		if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil || resp.StatusCode != 200 {
			return fmt.Sprintf("compliance: %d %v", resp.StatusCode, err)
		}
		if got := complianceRows(&rep); !reflect.DeepEqual(got, want) {
			return fmt.Sprintf("the site's compliance report: %v, want %v", got, want)
		}
		return ""
	})
	siteNumbers := complianceRows(&rep)

	// The Node program imports @clickhouse/client from beside it: copied next to the installed
	// package.
	js, err := os.ReadFile(filepath.Join("..", "..", "scripts", "clients", "clickhouse_js_check.mjs"))
	if err != nil {
		t.Fatal(err)
	}
	jsPath := filepath.Join(dir, "node", "clickhouse_js_check.mjs")
	if err := os.WriteFile(jsPath, js, 0o644); err != nil {
		t.Fatal(err)
	}
	py, _ := filepath.Abs(filepath.Join("..", "..", "scripts", "clients", "clickhouse_connect_check.py"))
	java, _ := filepath.Abs(filepath.Join("..", "..", "scripts", "clients", "ClickHouseJdbcCheck.java"))
	jdbcLibs := filepath.Join(dir, "jdbc", "libs")
	for _, c := range []struct {
		name   string
		cmd    []string
		pandas bool
		skip   string
	}{
		{"clickhouse-connect", []string{filepath.Join(dir, "py", "bin", "python3"), py}, true, ""},
		{"@clickhouse/client", []string{"node", jsPath}, false, ""},
		{"clickhouse-jdbc", []string{"java", "-cp", filepath.Join(jdbcLibs, "*"), java}, false,
			skipUnless(jdbcLibs, "SKIPPED: ClickHouse's JDBC driver is installed by make test-clients where java and mvn are")},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.skip != "" {
				t.Skip(c.skip)
			}
			cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(cctx, c.cmd[0], append(c.cmd[1:], s.ch, chReader)...)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("%s: %v\n%s%s", c.name, err, out, stderr.String())
			}
			var o clientOutput
			if err := json.Unmarshal(out, &o); err != nil {
				t.Fatalf("%s printed %q: %v", c.name, out, err)
			}
			got, err := o.counts(o.Rows)
			if err != nil || !reflect.DeepEqual(got, siteNumbers) {
				t.Errorf("%s %s: rows %v (%v), the site's compliance report %v", c.name, o.Version, got, err, siteNumbers)
			}
			if c.pandas {
				if got, err := o.counts(o.Pandas); err != nil || !reflect.DeepEqual(got, siteNumbers) {
					t.Errorf("%s %s: pandas %v (%v), the site's compliance report %v", c.name, o.Version, got, err, siteNumbers)
				}
			}
			for what, e := range map[string]*string{"INSERT": o.WriteRefused, "DROP": o.DropRefused} {
				if e == nil || !strings.Contains(*e, "164") || !strings.Contains(*e, "READONLY") {
					t.Errorf("%s: %s did not surface as a READONLY error: %v", c.name, what, e)
				}
			}
			t.Logf("%s %s: the report view's query in %.1f ms through the client; %v", c.name, o.Version, o.LatencyMS, sortedKeys(got))
		})
	}
}

// skipUnless returns why when path does not exist, else "".
func skipUnless(path, why string) string {
	if _, err := os.Stat(path); err != nil {
		return why
	}
	return ""
}

func sortedKeys(m map[string][4]int64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
