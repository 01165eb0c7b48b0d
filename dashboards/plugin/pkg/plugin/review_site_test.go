package plugin_test

import (
	"context"
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/data"

	"github.com/statepipe/statepipe/dashboards/plugin/pkg/plugin"
)

// sqlAt runs one sql query against the fixture site (P01) over [from, to].
func sqlAt(t *testing.T, rawSQL string, from, to time.Time) backend.DataResponse {
	t.Helper()
	f := fixtureSite(t)
	ds := plugin.New(plugin.Settings{URL: f.URL, Site: fixtureSiteCode, Token: readerToken})
	js, _ := json.Marshal(map[string]any{"queryType": "sql", "rawSql": rawSQL})
	resp, err := ds.QueryData(context.Background(), &backend.QueryDataRequest{Queries: []backend.DataQuery{
		{RefID: "A", JSON: js, Interval: time.Minute, TimeRange: backend.TimeRange{From: from, To: to}}}})
	if err != nil {
		t.Fatal(err)
	}
	return resp.Responses["A"]
}

func firstFrame(t *testing.T, sql string, r backend.DataResponse) *data.Frame {
	t.Helper()
	if r.Error != nil || len(r.Frames) != 1 {
		t.Fatalf("%s: %v (%d frames)", sql, r.Error, len(r.Frames))
	}
	return r.Frames[0]
}

// The site writes NaN and ±Inf as null (JSON holds neither) and integers past 64 bits as
// text: neither fails the query.
func TestSiteSQLNaNAndWideIntegers(t *testing.T) {
	now := time.Now()
	for _, sql := range []string{
		"SELECT 0/0 AS nan_col, 1/0 AS inf_col",
		"SELECT avg(x) AS a FROM (SELECT 1 AS x) WHERE x > 5",
	} {
		fr := firstFrame(t, sql, sqlAt(t, sql, now.Add(-time.Hour), now))
		for _, f := range fr.Fields {
			if v, ok := f.At(0).(float64); !ok || !math.IsNaN(v) {
				t.Errorf("%s: %s = %v (%s); want NaN", sql, f.Name, f.At(0), f.Type())
			}
		}
	}
	sql := "SELECT toUInt128('340282366920938463463374607431768211455') AS u128, toInt256('-1') AS i256, toUInt64(18446744073709551615) AS u64"
	fr := firstFrame(t, sql, sqlAt(t, sql, now.Add(-time.Hour), now))
	if v := fr.Fields[0].At(0).(float64); v != math.Pow(2, 128) {
		t.Errorf("u128 %v", v)
	}
	if v := fr.Fields[1].At(0).(float64); v != -1 {
		t.Errorf("i256 %v", v)
	}
	if v := fr.Fields[2].At(0).(uint64); v != math.MaxUint64 {
		t.Errorf("u64 %v", v)
	}
}

// A macro's text inside a string literal is the user's text, not a macro.
func TestSiteSQLMacroInLiteral(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	sql := "SELECT '$__timeFrom()' AS s, $__timeTo() AS t"
	fr := firstFrame(t, sql, sqlAt(t, sql, now.Add(-time.Hour), now))
	if s := fr.Fields[0].At(0).(string); s != "$__timeFrom()" {
		t.Errorf("s = %q", s)
	}
	if tm := fr.Fields[1].At(0).(time.Time); !tm.Equal(now) {
		t.Errorf("t = %v, want %v", tm, now)
	}
	// heredocs and comments, as ClickHouse reads them
	sql = "SELECT $$ $__timeTo() $$ AS h, /* $__timeFilter() */ 1 AS one -- $__timeGroup(\n# $__timeGroup(\n"
	fr = firstFrame(t, sql, sqlAt(t, sql, now.Add(-time.Hour), now))
	if h := fr.Fields[0].At(0).(string); h != " $__timeTo() " || len(fr.Fields) != 2 {
		t.Errorf("h = %q, %d fields", h, len(fr.Fields))
	}
}

// What the frontend's sqlValue writes for the multi-value ['x\', ') OR 1=1 --'] (its Jest test
// checks it writes this): ClickHouse reads it as two strings. The text written before the
// review ('x\',') OR 1=1 --') was read as SQL: the condition held.
func TestSiteSQLMultiValueQuoting(t *testing.T) {
	now := time.Now()
	for sql, want := range map[string]uint64{
		`SELECT count() AS n FROM system.one WHERE 'v' IN ('x\\',') OR 1=1 --')`: 0, // escaped (now)
		`SELECT count() AS n FROM system.one WHERE 'v' IN ('x\',') OR 1=1 --')`:  1, // before: injected
	} {
		fr := firstFrame(t, sql, sqlAt(t, sql, now.Add(-time.Hour), now))
		if n := fr.Fields[0].At(0).(uint64); n != want {
			t.Errorf("%s: %d, want %d", sql, n, want)
		}
	}
}
