package report_test

// The report SQL on a real engine without Kafka: each test migrates a database of its own in
// the process's chDB session, folds its reports into the rows the projector writes
// (projector/fold: raw log, live state, markers, clients, scans, reference data), derives the
// aggregate cells as the projector's index does (projector.RebuildAggregates), and asks
// report.API over httptest. A test takes about a second; through a whole site (Kafka,
// projector, polling) each took 3 to 14.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/statepipe/statepipe/internal/chdb"
	"github.com/statepipe/statepipe/projector"
	"github.com/statepipe/statepipe/projector/fold"
	"github.com/statepipe/statepipe/report"
	"github.com/statepipe/statepipe/schema"
)

var (
	testStore  *chdb.Store
	skipReason string // set when libchdb.so is not installed
	dbSeq      atomic.Int64
)

// siteCode is the site every test database serves.
const siteCode = "P01"

func TestMain(m *testing.M) { os.Exit(runTests(m)) }

// runTests opens the one chDB session a process may have for every test of the package.
func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "statepipe-report-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "cannot create the chdb test directory:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	st, err := chdb.New(chdb.Config{Path: dir})
	switch {
	case errors.Is(err, chdb.ErrLibraryNotFound):
		skipReason = "chDB tests skipped: " + err.Error()
	case err != nil:
		fmt.Fprintln(os.Stderr, "cannot open chdb for tests:", err)
		return 1
	default:
		testStore = st
		defer func() {
			if err := st.Close(); err != nil {
				fmt.Fprintln(os.Stderr, "cannot close chdb:", err)
			}
		}()
	}
	return m.Run()
}

// site is a migrated database with reports folded into it without Kafka, and the report API
// over it.
type site struct {
	t       *testing.T
	db      string
	cleanup time.Duration
	api     *report.API
	mux     *http.ServeMux
	batch   *fold.Batch
	offset  int64
	// at is the acceptance time (the server's clock) of the records sent next.
	at time.Time
}

// newSite migrates a database of its own (dropped when the test ends); cleanup is the site's
// expired-update cleanup (0: the default).
func newSite(t *testing.T, cleanup time.Duration) *site {
	t.Helper()
	return newSiteDB(t, cleanup, fmt.Sprintf("report_test_%d", dbSeq.Add(1)), siteCode)
}

// newSiteDB is newSite with the database's name and the site code its API answers as.
func newSiteDB(t *testing.T, cleanup time.Duration, db, code string) *site {
	t.Helper()
	if skipReason != "" {
		if os.Getenv("STATEPIPE_REQUIRE_CHDB") != "" {
			t.Fatal("libchdb.so is required here: " + skipReason)
		}
		t.Skip(skipReason)
	}
	ctx := context.Background()
	if _, err := schema.Migrate(ctx, testStore, db); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := testStore.Exec(ctx, "DROP DATABASE IF EXISTS "+db); err != nil {
			t.Errorf("cannot drop %s: %v", db, err)
		}
	})
	if cleanup == 0 {
		cleanup = schema.DefaultExpiredCleanup
	}
	s := &site{t: t, db: db, cleanup: cleanup, batch: fold.NewBatch(db), at: time.Now().UTC().Add(-time.Minute).Truncate(time.Millisecond),
		api: &report.API{Site: code, Database: db, Store: testStore, ExpiredCleanup: cleanup}, mux: http.NewServeMux()}
	s.api.Register(s.mux)
	return s
}

// ref imports reference records (schema.Update, UpdateList, Collection, Deployment) of kind.
func (s *site) ref(kind schema.RefKind, records ...any) {
	s.t.Helper()
	for _, r := range records {
		b, err := json.Marshal(r)
		if err != nil {
			s.t.Fatal(err)
		}
		s.refJSON(kind, b)
	}
}

// refJSON imports one reference record as JSON.
func (s *site) refJSON(kind schema.RefKind, record []byte) {
	s.t.Helper()
	var id struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(record, &id); err != nil {
		s.t.Fatal(err)
	}
	s.offset++
	if err := s.batch.AddRef(string(kind)+"/"+id.ID, record, s.offset, s.at.UnixMilli()); err != nil {
		s.t.Fatal(err)
	}
}

// report folds one report as the projector would a record accepted at s.at.
func (s *site) report(r *schema.Report) {
	r.V, r.Site = schema.Version, siteCode
	s.offset++
	s.batch.Add(fold.Record{Partition: 0, Offset: s.offset, AcceptedAt: s.at.UnixMilli(), Report: r})
	s.batch.Processed(0, s.offset)
}

// fold writes what was sent since the last fold, and derives the aggregates from the live
// state as the projector's index does.
func (s *site) fold() {
	s.t.Helper()
	ctx := context.Background()
	for _, rows := range s.batch.Tables() {
		if rows.Len() == 0 {
			continue
		}
		if err := testStore.Insert(ctx, rows); err != nil {
			s.t.Fatalf("cannot insert %s: %v", rows.Table(), err)
		}
	}
	s.batch = fold.NewBatch(s.db)
	if err := projector.RebuildAggregates(ctx, testStore, s.db, s.cleanup); err != nil {
		s.t.Fatal(err)
	}
}

// do answers a request with the site's API.
func (s *site) do(req *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	s.mux.ServeHTTP(rec, req)
	return rec
}

// get asks for a report; v is filled on 200, the error detail is returned otherwise.
func (s *site) get(path string, v any) (int, schema.ErrorDetail) {
	s.t.Helper()
	rec := s.do(httptest.NewRequest(http.MethodGet, path, nil))
	if rec.Code != http.StatusOK {
		var eb schema.ErrorBody
		if err := json.Unmarshal(rec.Body.Bytes(), &eb); err != nil {
			s.t.Fatalf("GET %s: %d, error body %q: %v", path, rec.Code, rec.Body, err)
		}
		return rec.Code, eb.Error
	}
	if err := json.Unmarshal(rec.Body.Bytes(), v); err != nil {
		s.t.Fatalf("GET %s: %v", path, err)
	}
	return rec.Code, schema.ErrorDetail{}
}

// must asks for a report that must answer 200.
func (s *site) must(path string, v any) {
	s.t.Helper()
	if code, e := s.get(path, v); code != http.StatusOK {
		s.t.Fatalf("GET %s: %d %+v", path, code, e)
	}
}

// status asserts that path answers status naming field.
func (s *site) status(path string, status int, field string) {
	s.t.Helper()
	var v json.RawMessage
	code, e := s.get(path, &v)
	if code != status || e.Field != field || e.Message == "" {
		s.t.Errorf("GET %s: %d %+v, want %d naming %q", path, code, e, status, field)
	}
}

// rows runs analyst SQL through POST /v1/sql and renders each row as "a|b|c" (NULL as null),
// numbers exactly as sent.
func (s *site) rows(q string) []string {
	s.t.Helper()
	rec := s.do(httptest.NewRequest(http.MethodPost, "/v1/sql", strings.NewReader(q)))
	if rec.Code != http.StatusOK {
		s.t.Fatalf("sql %q: %d %s", q, rec.Code, rec.Body)
	}
	d := json.NewDecoder(bytes.NewReader(rec.Body.Bytes()))
	d.UseNumber()
	var res struct{ Rows [][]any }
	if err := d.Decode(&res); err != nil {
		s.t.Fatal(err)
	}
	out := []string{}
	for _, r := range res.Rows {
		cells := make([]string, len(r))
		for i, v := range r {
			if v == nil {
				cells[i] = "null"
			} else {
				cells[i] = fmt.Sprint(v)
			}
		}
		out = append(out, strings.Join(cells, "|"))
	}
	return out
}

// view asserts an analyst view's rows (through POST /v1/sql).
func (s *site) view(name, q string, want []string) {
	s.t.Helper()
	if got := s.rows(q); !reflect.DeepEqual(got, want) {
		s.t.Errorf("%s:\n got  %q\n want %q", name, got, want)
	}
}

// reportCase is a file of testdata/: reference data and reports in, report answers out (a
// subset of each answer's JSON), for the folding rules that live at report level:
// Not-required inference, Unknown, expired cleanup, full vs delta, targeted-but-silent
// clients. Add a file for every bug.
type reportCase struct {
	Rule           string                       `json:"rule"`
	ExpiredCleanup string                       `json:"expired_cleanup"`
	Reference      map[string][]json.RawMessage `json:"reference"`
	Reports        []schema.Report              `json:"reports"`
	Queries        []struct {
		Report string          `json:"report"`
		Want   json.RawMessage `json:"want"`
	} `json:"queries"`
}

func TestReportRuleCases(t *testing.T) {
	files, err := filepath.Glob("testdata/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no report cases: %v", err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".json"), func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var c reportCase
			d := json.NewDecoder(bytes.NewReader(raw))
			d.DisallowUnknownFields()
			if err := d.Decode(&c); err != nil {
				t.Fatalf("bad case file: %v", err)
			}
			var cleanup time.Duration
			if c.ExpiredCleanup != "" {
				if cleanup, err = time.ParseDuration(c.ExpiredCleanup); err != nil {
					t.Fatal(err)
				}
			}
			s := newSite(t, cleanup)
			for _, kind := range schema.RefKinds {
				for _, r := range c.Reference[string(kind)] {
					s.refJSON(kind, r)
				}
			}
			for i := range c.Reports {
				s.report(&c.Reports[i])
			}
			s.fold()
			for _, q := range c.Queries {
				var want, got any
				if err := json.Unmarshal(q.Want, &want); err != nil {
					t.Fatal(err)
				}
				s.must("/v1/reports/"+q.Report, &got)
				if d := subset(want, got, ""); d != "" {
					t.Errorf("%s (%s): %s", q.Report, c.Rule, d)
				}
			}
		})
	}
}

// subset returns "" when every field of want is in got with the same value (arrays
// element-wise and of the same length), or where they first differ.
func subset(want, got any, path string) string {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return fmt.Sprintf("%s: want an object, got %v", path, got)
		}
		for k, v := range w {
			if d := subset(v, g[k], path+"."+k); d != "" {
				return d
			}
		}
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return fmt.Sprintf("%s: want %d elements, got %v", path, len(w), got)
		}
		for i := range w {
			if d := subset(w[i], g[i], fmt.Sprintf("%s[%d]", path, i)); d != "" {
				return d
			}
		}
	default:
		if !reflect.DeepEqual(want, got) {
			return fmt.Sprintf("%s: want %v, got %v", path, want, got)
		}
	}
	return ""
}
