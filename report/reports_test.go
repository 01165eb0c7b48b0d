package report

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/statepipe/statepipe/schema"
)

// unreachable is a store that answers nothing: a request that reaches it gets a 503, so a 400
// proves the parameters were judged before any query ran.
type unreachable struct{}

func (unreachable) Query(context.Context, string) (*schema.Result, error) {
	return nil, errors.New("store unreachable (test)")
}
func (unreachable) QueryReadOnly(context.Context, string, string) (*schema.Result, error) {
	return nil, errors.New("store unreachable (test)")
}

func TestReportParametersAreJudgedBeforeQuerying(t *testing.T) {
	mux := http.NewServeMux()
	(&API{Site: "P01", Database: "statepipe_p01", Store: unreachable{}}).Register(mux)
	for _, c := range []struct {
		path   string
		status int
		field  string
	}{
		{"/v1/reports/deployment", 400, "deployment"},
		{"/v1/reports/deployment?deployment=D&state=x", 400, "state"},
		{"/v1/reports/deployment?deployment=D&state=-1", 400, "state"},
		{"/v1/reports/deployment?deployment=D&state=11", 400, "state"},
		{"/v1/reports/deployment?deployment=D&state=4", 503, ""}, // valid: reaches the store
		{"/v1/reports/scan?days=0", 400, "days"},
		{"/v1/reports/scan?days=7d", 400, "days"},
		{"/v1/reports/scan?days=99999", 400, "days"},
		{"/v1/reports/computer?list=L", 400, "client"},
		{"/v1/reports/computer?client=c", 400, "list"},
		{"/v1/reports/computer?client=c&list=L&updates=U1", 400, "updates"},
		{"/v1/reports/computer?client=c&list=L&deployment=D", 400, "deployment"},
		{"/v1/reports/computer?client=c&updates=U1&deployment=D", 400, "deployment"},
		{"/v1/reports/computer?client=c&deployment=D", 503, ""}, // valid: reaches the store
		{"/v1/reports/update", 400, "update"},
		{"/v1/reports/trend?list=L&step=fast", 400, "step"},
		{"/v1/reports/trend?list=L&step=100us", 400, "step"},
		{"/v1/reports/trend?list=L&step=1s", 400, "step"}, // 7 days of seconds: too many points
		{"/v1/reports/trend?list=L&from=monday", 400, "from"},
		{"/v1/reports/trend?list=L&to=2026-13-01T00:00:00Z", 400, "to"},
		{"/v1/reports/trend?list=L&from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", 400, "from"},
		// The update set is judged before the points it would give.
		{"/v1/reports/trend?step=1ms", 400, "list"},
		{"/v1/reports/trend?list=L&updates=U1&step=1ms", 400, "updates"},
		// A parameter the report does not take is refused, not ignored.
		{"/v1/reports/update?deployment=nope&update=U1", 400, "deployment"},
		{"/v1/reports/scan?deployment=D", 400, "deployment"},
		// Values a report judges itself, before it queries.
		{"/v1/reports/errors?topic=bogus", 400, "topic"},
		{"/v1/reports/errors?topic=scan&deployment=D", 400, "deployment"},
		{"/v1/reports/errors?deployment=D&collection=C", 400, "collection"},
		{"/v1/reports/machines?topic=scan&state=7", 400, "state"},
		{"/v1/reports/machines?topic=scan&error=0x0", 400, "error"},
		{"/v1/reports/machines?error=0", 400, "error"},
		{"/v1/reports/machines?topic=scan&state=3&list=L", 400, "topic"},
		{"/v1/reports/machines?topic=SCAN&state=3", 400, "topic"},
		// A query string net/url would cut short is refused, naming the parameter, not answered
		// without the filters it drops.
		{"/v1/reports/errors?topic=scan;collection=C", 400, "topic"},
		{"/v1/reports/compliance?vendor=Micro%GGsoft", 400, "vendor"},
		{"/v1/reports/machines?topic=scan&state=5&collection=colB%", 400, "collection"},
		{"/v1/reports/compliance?%zz=1", 400, "%zz"},
		{"/v1/reports/trend?update=X&step=1ms", 400, "update"},
		{"/v1/reports/compliance?updates=U1&Collection=C", 400, "Collection"},
		{"/v1/reports/errors?site=P01", 503, ""}, // site: every report takes it
		{"/v1/reports/errors?site=ELSEWHERE", 404, "site"},
		{"/v1/reports/nonsense", 404, "name"},
	} {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, c.path, nil))
		var eb schema.ErrorBody
		if err := json.Unmarshal(rec.Body.Bytes(), &eb); err != nil {
			t.Fatalf("%s: error body is not JSON: %v", c.path, err)
		}
		if rec.Code != c.status || eb.Error.Field != c.field || eb.Error.Message == "" {
			t.Errorf("%s: %d %+v, want %d naming %q", c.path, rec.Code, eb.Error, c.status, c.field)
		}
	}
}

// A report refuses a parameter it does not take, naming it and the ones it takes; it takes
// every parameter of its registry entry and the common ones.
func TestReportsRefuseParametersTheyDoNotTake(t *testing.T) {
	mux := http.NewServeMux()
	(&API{Site: "P01", Database: "statepipe_p01", Store: unreachable{}}).Register(mux)
	get := func(path string) (int, schema.ErrorDetail) {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		var eb schema.ErrorBody
		_ = json.Unmarshal(rec.Body.Bytes(), &eb)
		return rec.Code, eb.Error
	}
	code, e := get("/v1/reports/scan?deployment=nope")
	if want := "report scan takes no parameter deployment (it takes: collection, days)"; code != 400 || e.Field != "deployment" || e.Message != want {
		t.Errorf("scan?deployment=nope: %d %+v, want 400 %q", code, e, want)
	}
	code, e = get("/v1/reports/update?update=U1&%1B%5B2J=" + strings.Repeat("x", 10))
	if code != 400 || e.Field != `\x1b[2J` || strings.ContainsRune(e.Message, 0x1b) {
		t.Errorf("a parameter named with an escape sequence: %d %+v", code, e)
	}
	for _, d := range Reports() {
		for _, p := range append(d.Params, CommonParams()...) {
			code, e := get("/v1/reports/" + d.Name + "?" + url.Values{p.Name: {"x"}}.Encode())
			if strings.Contains(e.Message, "takes no parameter") {
				t.Errorf("report %s refuses its parameter %s: %d %+v", d.Name, p.Name, code, e)
			}
		}
	}
}

func TestStateCountsListEveryState(t *testing.T) {
	res := &schema.Result{Rows: [][]any{{int64(4), int64(7)}, {int64(0), int64(2)}}}
	got, total, err := stateCounts(schema.TopicDeploymentEnforcement, res)
	if err != nil {
		t.Fatal(err)
	}
	if total != 9 || len(got) != 11 {
		t.Fatalf("total %d, %d states", total, len(got))
	}
	want := StateCount{State: 4, Name: "Successfully installed", Clients: 7}
	if got[4] != want || got[0].Clients != 2 || got[10] != (StateCount{State: 10, Name: "Waiting for maintenance window"}) {
		t.Errorf("states: %+v", got)
	}
}

func TestTimesRoundTripThroughSQL(t *testing.T) {
	at := time.Date(2024, 11, 15, 13, 46, 40, 123_000_000, time.UTC)
	if got := sqlTime(at); got != "fromUnixTimestamp64Milli(toInt64(1731678400123), 'UTC')" {
		t.Errorf("sqlTime = %s", got)
	}
	got, err := parseTime("2024-11-15 13:46:40.123")
	if err != nil || !got.Equal(at) {
		t.Errorf("parseTime = %v, %v", got, err)
	}
	if got, err := parseTime(nil); got != nil || err != nil {
		t.Errorf("parseTime(NULL) = %v, %v", got, err)
	}
	if _, err := parseTime("yesterday"); err == nil {
		t.Error("parseTime accepted garbage")
	}
}

// The drill-down's machines are absent without a drill-down and present (possibly empty)
// with one.
func TestDeploymentMachinesOnlyWithDrillDown(t *testing.T) {
	for _, c := range []struct {
		rep  Deployment
		want bool
	}{{Deployment{}, false}, {Deployment{Machines: []string{}}, true}} {
		b, _ := json.Marshal(c.rep)
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		if _, ok := m["machines"]; ok != c.want {
			t.Errorf("%s: machines present = %v, want %v", b, ok, c.want)
		}
	}
}

// Every parameter is bounded and checked before a query runs: text that is not valid UTF-8,
// holds control characters or is longer than an id can be; lists of more ids than a query
// can carry (20,000 ids once answered 503 "Max query size exceeded"); numbers, durations and
// times out of range. Each is a 400 naming the parameter.
func TestReportParametersAreBounded(t *testing.T) {
	mux := http.NewServeMux()
	(&API{Site: "P01", Database: "statepipe_p01", Store: unreachable{}}).Register(mux)
	ids := func(n, size int) string {
		s := make([]string, n)
		for i := range s {
			s[i] = fmt.Sprintf("%0*d", size, i)
		}
		return strings.Join(s, ",")
	}
	long := strings.Repeat("x", MaxParamBytes+1)
	for _, c := range []struct {
		path   string
		status int
		field  string
	}{
		{"/v1/reports/computer?client=c&updates=%FF", 400, "updates"},
		{"/v1/reports/computer?client=c&updates=KB1,%FF", 400, "updates"},
		{"/v1/reports/computer?client=%FF&list=L", 400, "client"},
		{"/v1/reports/computer?client=c&list=%FE%FF", 400, "list"},
		{"/v1/reports/computer?client=" + long + "&list=L", 400, "client"},
		{"/v1/reports/computer?client=c&updates=" + ids(MaxReportIDs+1, 8), 400, "updates"},
		{"/v1/reports/computer?client=c&updates=" + ids(20000, 36), 400, "updates"},
		{"/v1/reports/computer?client=c&updates=" + long, 400, "updates"},
		{"/v1/reports/computer?client=c&updates=" + ids(MaxReportIDs, 36), 503, ""}, // at the bound: reaches the store
		{"/v1/reports/compliance?updates=" + ids(MaxReportIDs+1, 4), 400, "updates"},
		{"/v1/reports/compliance?updates=" + ids(MaxReportIDs, MaxParamBytes), 503, ""},
		{"/v1/reports/compliance?updates=a&updates=b", 400, "updates"},
		{"/v1/reports/compliance?list=" + long, 400, "list"},
		{"/v1/reports/compliance?collection=a%00b", 400, "collection"},
		{"/v1/reports/compliance?collection=a%C2%85b", 400, "collection"}, // C1 control (NEL)
		{"/v1/reports/compliance?source=%FF", 400, "source"},
		{"/v1/reports/compliance?site=%FF", 400, "site"},
		{"/v1/reports/compliance?site=" + long, 400, "site"},
		{"/v1/reports/trend?updates=" + ids(MaxReportIDs+1, 4), 400, "updates"},
		{"/v1/reports/trend?list=L&updates=U1", 400, "updates"},
		{"/v1/reports/trend?list=L&step=-1h", 400, "step"},
		{"/v1/reports/trend?list=L&step=99999999999999h", 400, "step"},
		{"/v1/reports/trend?list=L&step=" + strings.Repeat("1", 100) + "h", 400, "step"},
		{"/v1/reports/trend?list=L&from=0001-01-01T00:00:00Z&to=0001-01-02T00:00:00Z", 400, "from"},
		{"/v1/reports/trend?list=L&to=9999-12-31T00:00:00Z", 400, "to"},
		{"/v1/reports/trend?list=%FF", 400, "list"},
		{"/v1/reports/update?update=%FF", 400, "update"},
		{"/v1/reports/update?update=" + long, 400, "update"},
		{"/v1/reports/update?update=U&collection=%FF", 400, "collection"},
		{"/v1/reports/deployment?deployment=%FF", 400, "deployment"},
		{"/v1/reports/deployment?deployment=D&state=99999999999999999999", 400, "state"},
		{"/v1/reports/deployment?deployment=D&state=", 400, "state"},
		{"/v1/reports/errors?deployment=" + long, 400, "deployment"},
		{"/v1/reports/scan?days=-3", 400, "days"},
		{"/v1/reports/scan?days=1e3", 400, "days"},
		{"/v1/reports/scan?days=99999999999999999999", 400, "days"},
		{"/v1/reports/scan?days=36501", 400, "days"},
		{"/v1/reports/scan?days=36500", 503, ""},
		{"/v1/reports/" + strings.Repeat("n", 5000), 404, "name"},
	} {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, c.path, nil))
		var eb schema.ErrorBody
		if err := json.Unmarshal(rec.Body.Bytes(), &eb); err != nil {
			t.Fatalf("%.80s: error body is not JSON: %v", c.path, err)
		}
		if rec.Code != c.status || eb.Error.Field != c.field || eb.Error.Message == "" || len(eb.Error.Message) > 400 {
			t.Errorf("%.120s: %d %+.300v, want %d naming %q", c.path, rec.Code, eb.Error, c.status, c.field)
		}
	}
}

// hostile answers every query with the same result: rows that do not fit what the query
// asked for, as a broken store (or an engine that rewrites ids) could.
type hostile struct{ res *schema.Result }

func (h hostile) Query(context.Context, string) (*schema.Result, error) { return h.res, nil }

// The reports never dereference a missing map entry, index a missing row or assert a cell's
// type unchecked: whatever the store answers, a report is computed or fails with an error.
// ComputerReport once dereferenced nil when the engine handed back an id that was not byte
// for byte the one asked for (updates=%FF: invalid UTF-8 comes back replaced), and took the
// site down.
func TestReportsSurviveAnyAnswer(t *testing.T) {
	answers := map[string]*schema.Result{
		"no rows":         {Rows: [][]any{}},
		"empty row":       {Rows: [][]any{{}}},
		"nil cells":       {Rows: [][]any{{nil, nil, nil, nil, nil, nil}}},
		"strings":         {Rows: [][]any{{"x", "y", "z", "w", "v", "u"}}},
		"ids not asked":   {Rows: [][]any{{int64(500), "\uFFFD", int64(2), int64(7), "2026-01-01 00:00:00.000", int64(0)}, {"\uFFFD", "t", int64(1)}}},
		"big integers":    {Rows: [][]any{{uint64(1 << 63), uint64(1<<64 - 1), int64(-1), int64(1 << 40), int64(0), int64(0)}}},
		"arrays":          {Rows: [][]any{{[]any{"a", int64(1)}, []any{}, []any{nil}}}},
		"negative bucket": {Rows: [][]any{{int64(-5), int64(1), int64(1), int64(1)}}},
		"huge bucket":     {Rows: [][]any{{int64(1 << 40), int64(1), int64(1), int64(1)}}},
		"counts":          {Rows: [][]any{{int64(1), int64(1), int64(1), int64(1), int64(1), int64(1)}}},
	}
	ctx := context.Background()
	state := 2
	tree := &Tree{Self: "CEN", Top: "CEN", Origins: []string{"CEN", "P01", "S01"},
		Sites: []SiteStatus{{Site: "CEN", LinkState: LinkLocal}, {Site: "P01", Parent: "CEN"}, {Site: "S01", Parent: "P01"}}}
	for name, res := range answers {
		q := hostile{res}
		for report, run := range map[string]func() (any, error){
			"compliance": func() (any, error) { return ComplianceReport(ctx, q, "db", "P01", ComplianceParams{}) },
			"compliance list": func() (any, error) {
				return ComplianceReport(ctx, q, "db", "P01", ComplianceParams{List: "L", Scope: Scope{Collection: "C"}})
			},
			"compliance scan": func() (any, error) {
				return ComplianceReport(ctx, q, "db", "P01", ComplianceParams{Updates: []string{"\xff"}, Scan: true})
			},
			"computer": func() (any, error) {
				return ComputerReport(ctx, q, "db", "P01", ComputerParams{Client: "c", Updates: []string{"\xff", "KB1"}})
			},
			"computer list": func() (any, error) {
				return ComputerReport(ctx, q, "db", "P01", ComputerParams{Client: "c", List: "L"})
			},
			"deployment": func() (any, error) {
				return DeploymentReport(ctx, q, "db", "P01", DeploymentParams{Deployment: "D", State: &state})
			},
			"errors": func() (any, error) { return ErrorsReport(ctx, q, "db", "P01", ErrorsParams{Deployment: "D"}) },
			"scan":   func() (any, error) { return ScanReport(ctx, q, "db", "P01", ScanParams{Scope: Scope{Collection: "C"}}) },
			"update": func() (any, error) {
				return UpdateReport(ctx, q, "db", "P01", UpdateParams{Update: "U", Scope: Scope{Collection: "C"}})
			},
			"trend": func() (any, error) { return TrendReport(ctx, q, "db", "P01", TrendParams{Updates: []string{"U"}}) },
			"trend scope": func() (any, error) {
				return TrendReport(ctx, q, "db", "P01", TrendParams{Updates: []string{"U"}, Scope: Scope{Collection: "C"}})
			},
			"scope clients": func() (any, error) { return ScopeClients(ctx, q, "db", Scope{Collection: "C"}) },
			"machines of an update": func() (any, error) {
				return MachinesReport(ctx, q, "db", "P01", MachinesParams{Update: "U", State: "required", Scope: Scope{Collection: "C"}})
			},
			"machines of a list": func() (any, error) {
				return MachinesReport(ctx, q, "db", "P01", MachinesParams{List: "L", State: "non_compliant", After: "a", Limit: 1})
			},
			"machines of ids": func() (any, error) {
				return MachinesReport(ctx, q, "db", "P01", MachinesParams{Updates: []string{"U"}, State: "unknown"})
			},
			"machines of a deployment": func() (any, error) {
				return MachinesReport(ctx, q, "db", "P01", MachinesParams{Deployment: "D", State: "4"})
			},
			"tree deployment": func() (any, error) {
				return DeploymentReport(ctx, q, "db", "CEN", DeploymentParams{Deployment: "D", Tree: tree})
			},
			"tree errors": func() (any, error) { return ErrorsReport(ctx, q, "db", "CEN", ErrorsParams{Scope: Scope{Tree: tree}}) },
			"tree scan": func() (any, error) {
				return ScanReport(ctx, q, "db", "CEN", ScanParams{Scope: Scope{Collection: "C", Tree: tree}})
			},
			"tree update": func() (any, error) {
				return UpdateReport(ctx, q, "db", "CEN", UpdateParams{Update: "U", Scope: Scope{Tree: tree}})
			},
			"tree machines of an update": func() (any, error) {
				return MachinesReport(ctx, q, "db", "CEN", MachinesParams{Update: "U", State: "unknown", Scope: Scope{Tree: tree}})
			},
			"tree machines of a list": func() (any, error) {
				return MachinesReport(ctx, q, "db", "CEN", MachinesParams{List: "L", State: "compliant", Scope: Scope{Tree: tree}})
			},
			"tree machines of a deployment": func() (any, error) {
				return MachinesReport(ctx, q, "db", "CEN", MachinesParams{Deployment: "D", State: "0", Scope: Scope{Tree: tree}})
			},
			"tree trend": func() (any, error) { return TrendReport(ctx, q, "db", "CEN", TrendParams{List: "L", Tree: tree}) },
			"tree computer": func() (any, error) {
				return ComputerReport(ctx, q, "db", "CEN", ComputerParams{Client: "c", List: "L", Tree: tree})
			},
		} {
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Errorf("%s report, store answering %s: panic: %v", report, name, r)
					}
				}()
				_, _ = run()
			}()
		}
	}
}

// fixedSQL answers QueryReadOnly with err.
type fixedSQL struct {
	unreachable
	err error
}

func (f fixedSQL) QueryReadOnly(context.Context, string, string) (*schema.Result, error) {
	return nil, f.err
}

// answerSQL answers QueryReadOnly with res, remembering the database it was asked for.
type answerSQL struct {
	unreachable
	res *schema.Result
	db  *string
}

func (a answerSQL) QueryReadOnly(_ context.Context, db, _ string) (*schema.Result, error) {
	*a.db = db
	return a.res, nil
}

// POST /v1/sql runs the query in the site's database (the store scopes it there) and writes
// the answer row by row as the JSON encoder would have, but for floats JSON cannot hold.
func TestSQLRunsInTheSitesDatabase(t *testing.T) {
	var db string
	res := &schema.Result{Columns: []schema.Column{{Name: "a", Type: "String"}, {Name: "b", Type: "Float64"}},
		Rows: [][]any{{"x<\"\n\xff", 1.5}, {nil, int64(-3)}, {[]any{"y", int64(2)}, uint64(1 << 63)}, {true, math.Inf(1)}, {"", math.NaN()}}}
	mux := http.NewServeMux()
	(&API{Site: "P01", Database: "statepipe_p01", Store: answerSQL{res: res, db: &db}}).Register(mux)
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/sql", strings.NewReader(`{"query": "SELECT 1"}`)))
	if rec.Code != 200 || db != "statepipe_p01" || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("%d, database %q, %q", rec.Code, db, rec.Header().Get("Content-Type"))
	}
	var got, want any
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatalf("answer is not JSON: %v\n%s", err, rec.Body)
	}
	res.Rows[3][1], res.Rows[4][1] = nil, nil
	b, _ := json.Marshal(res)
	_ = json.Unmarshal(b, &want)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("answer\n%s\nwant\n%s", rec.Body, b)
	}
	// site= naming this site is fine; another is refused, naming the field, never ignored.
	for _, c := range []struct {
		target string
		code   int
	}{{"/v1/sql?site=P01", 200}, {"/v1/sql?site=P02", 404}, {"/v1/sql?site=P01&site=P02", 400}} {
		rec = httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, c.target, strings.NewReader(`{"query": "SELECT 1"}`)))
		if rec.Code != c.code || (c.code != 200 && !strings.Contains(rec.Body.String(), `"field": "site"`)) {
			t.Errorf("%s: %d %s, want %d naming site", c.target, rec.Code, rec.Body, c.code)
		}
	}
	// No rows: empty arrays, as before.
	mux = http.NewServeMux()
	(&API{Site: "P01", Database: "statepipe_p01", Store: answerSQL{res: &schema.Result{Columns: []schema.Column{}, Rows: [][]any{}}, db: &db}}).Register(mux)
	rec = httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/sql", strings.NewReader(`{"query": "SELECT 1"}`)))
	var empty schema.Result
	if err := json.Unmarshal(rec.Body.Bytes(), &empty); err != nil || empty.Columns == nil || empty.Rows == nil || len(empty.Rows) != 0 {
		t.Errorf("empty answer %s: %+v %v", rec.Body, empty, err)
	}
}

// POST /v1/sql answers a busy site 503 with Retry-After, a refused query or a limit 400
// naming query with the reason, a closing store 503.
func TestSQLAnswers(t *testing.T) {
	for _, c := range []struct {
		err     error
		status  int
		field   string
		message string
		retry   bool
	}{
		{&schema.SQLBusyError{Running: 2}, 503, "", "--sql.max-concurrent", true},
		{&schema.FieldError{Field: "query", Reason: "stopped at the time limit of 30s (--sql.timeout)"}, 400, "query", "stopped at the time limit of 30s (--sql.timeout)", false},
		{fmt.Errorf("cannot run sql: %w", schema.ErrSQLUnavailable), 503, "", "unavailable", true},
		{fmt.Errorf("cannot run sql: %w", context.Canceled), 503, "", "canceled", true},
		{errors.New("Unknown table expression identifier"), 400, "query", "Unknown table", false},
	} {
		mux := http.NewServeMux()
		(&API{Site: "P01", Database: "statepipe_p01", Store: fixedSQL{err: c.err}}).Register(mux)
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/sql", strings.NewReader(`{"query": "SELECT 1"}`)))
		var eb schema.ErrorBody
		_ = json.Unmarshal(rec.Body.Bytes(), &eb)
		if rec.Code != c.status || eb.Error.Field != c.field || !strings.Contains(eb.Error.Message, c.message) || (rec.Header().Get("Retry-After") != "") != c.retry {
			t.Errorf("%v: %d %+v Retry-After %q, want %d naming %q saying %q", c.err, rec.Code, eb.Error, rec.Header().Get("Retry-After"), c.status, c.field, c.message)
		}
	}
}

// scripted answers each query with the result of the first key it contains.
type scripted []struct {
	has string
	res *schema.Result
}

func (s scripted) Query(_ context.Context, q string) (*schema.Result, error) {
	for _, a := range s {
		if strings.Contains(q, a.has) {
			return a.res, nil
		}
	}
	return &schema.Result{Rows: [][]any{}}, nil
}

// The engine hands back an update id that is not byte for byte the one asked for (its JSON
// output replaces invalid UTF-8: "\xff" comes back as "\uFFFD"): the computer report skips
// that row instead of dereferencing the missing entry — the nil dereference that took a site
// down on GET /v1/reports/computer?client=<id>&updates=%FF.
func TestComputerReportSkipsIDsNotAsked(t *testing.T) {
	q := scripted{
		{"UNION DISTINCT", &schema.Result{Rows: [][]any{{"\xff"}, {"KB1"}}}}, // both known
		{".clients WHERE client", &schema.Result{Rows: [][]any{{nil, int64(1)}}}},
		{"expired = 1", &schema.Result{Rows: [][]any{}}},
		{"v_updates WHERE id IN", &schema.Result{Rows: [][]any{{"\uFFFD", "replaced", int64(1)}, {"KB1", "one", int64(0)}}}},
		{"v_live_state", &schema.Result{Rows: [][]any{
			{int64(500), "\uFFFD", int64(2), int64(7), "2026-01-01 00:00:00.000", int64(0)},
			{int64(402), "\uFFFD", int64(11), int64(8), "2026-01-01 00:00:00.000", int64(-2145124341)},
			{int64(500), "KB1", int64(3), int64(9), "2026-01-01 00:00:00.000", int64(0)},
		}}},
	}
	rep, err := ComputerReport(context.Background(), q, "db", "P01", ComputerParams{Client: "c", Updates: []string{"\xff", "KB1"}})
	if err != nil {
		t.Fatal(err)
	}
	want := []ComputerUpdate{{UpdateID: "KB1", Title: "one", State: 3, StateName: "Installed", Serial: 9}, {UpdateID: "\xff", StateName: "Unknown"}}
	if len(rep.Updates) != 2 || rep.Updates[0].UpdateID != want[0].UpdateID || rep.Updates[0].State != 3 || rep.Updates[0].Title != "one" ||
		rep.Updates[1].UpdateID != "\xff" || rep.Updates[1].State != 0 || rep.Updates[1].EnforcementState != nil || rep.Compliant != ComputerUnknown {
		t.Errorf("report %+v, want %+v (compliance unknown)", rep.Updates, want)
	}
}
