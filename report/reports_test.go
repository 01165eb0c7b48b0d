package report

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
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
func (unreachable) QueryReadOnly(context.Context, string) (*schema.Result, error) {
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
		{"/v1/reports/update", 400, "update"},
		{"/v1/reports/trend?list=L&step=fast", 400, "step"},
		{"/v1/reports/trend?list=L&step=100us", 400, "step"},
		{"/v1/reports/trend?list=L&step=1s", 400, "step"}, // 7 days of seconds: too many points
		{"/v1/reports/trend?list=L&from=monday", 400, "from"},
		{"/v1/reports/trend?list=L&to=2026-13-01T00:00:00Z", 400, "to"},
		{"/v1/reports/trend?list=L&from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", 400, "from"},
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

func TestStateCountsListEveryState(t *testing.T) {
	res := &schema.Result{Rows: [][]any{{int64(4), int64(7)}, {int64(0), int64(2)}}}
	got, total := stateCounts(schema.TopicDeploymentEnforcement, res)
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
