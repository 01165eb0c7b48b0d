package replicator

import (
	"context"
	"errors"
	"maps"
	"strings"
	"sync"
	"testing"

	"github.com/statepipe/statepipe/schema"
)

// fakeStore answers every query with its cells as rows of ReadCells' shape (or with res, or
// err, when set), and keeps the queries.
type fakeStore struct {
	mu      sync.Mutex
	cells   Cells
	res     *schema.Result
	err     error
	queries []string
}

var cellColumns = []schema.Column{{Name: "kind", Type: "UInt8"}, {Name: "scope", Type: "String"}, {Name: "topic_type", Type: "UInt16"},
	{Name: "topic_id", Type: "String"}, {Name: "code", Type: "Int64"}, {Name: "clients", Type: "Int64"}, {Name: "scanned", Type: "Int64"}}

func (s *fakeStore) Query(_ context.Context, q string) (*schema.Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queries = append(s.queries, q)
	if s.err != nil {
		return nil, s.err
	}
	if s.res != nil {
		return s.res, nil
	}
	res := &schema.Result{Columns: cellColumns}
	for k, v := range s.cells {
		// As both adapters normalise: every integer an int64, strings as they are.
		res.Rows = append(res.Rows, []any{int64(k.Kind), k.Scope, int64(k.TopicType), k.TopicID, k.Code, v.Clients, v.Scanned})
	}
	return res, nil
}

func (s *fakeStore) set(c Cells) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cells = maps.Clone(c)
}

var (
	cellA = CellKey{Kind: KindStates, Scope: "SMS00001", TopicType: 500, TopicID: "U1", Code: 3}
	cellB = CellKey{Kind: KindErrors, Scope: "SMS00001", TopicType: 500, TopicID: "U1", Code: -2147024891}
	cellC = CellKey{Kind: KindLists, Scope: "SMS00001", TopicID: "L1", Code: 1}
	cellD = CellKey{Kind: KindScans, Scope: "SMS00001", Code: 1_800_000_000_000}
)

func TestChanged(t *testing.T) {
	before := Cells{cellA: {Clients: 5, Scanned: 9}, cellB: {Clients: 2}, cellC: {Clients: 7}, cellD: {Clients: 1}}
	now := Cells{
		cellA: {Clients: 5, Scanned: 10}, // scanned changed
		cellB: {Clients: 2},              // unchanged
		cellC: {Clients: 8},              // clients changed
		// cellD disappeared
		{Kind: KindScans, Scope: "SMS00001", Code: 1_800_000_060_000}: {Clients: 1}, // new
	}
	want := Cells{cellA: {Clients: 5, Scanned: 10}, cellC: {Clients: 8}, cellD: {},
		{Kind: KindScans, Scope: "SMS00001", Code: 1_800_000_060_000}: {Clients: 1}}
	if got := Changed(before, now); !maps.Equal(got, want) {
		t.Errorf("Changed:\n got %v\nwant %v", got, want)
	}
	if got := Changed(now, now); len(got) != 0 {
		t.Errorf("Changed of equal sets: %v, want none", got)
	}
	if got := Changed(nil, now); !maps.Equal(got, now) {
		t.Errorf("Changed from nothing: %v, want every cell", got)
	}
	if got := Changed(before, nil); !maps.Equal(got, Cells{cellA: {}, cellB: {}, cellC: {}, cellD: {}}) {
		t.Errorf("Changed to nothing: %v, want every cell as zero", got)
	}
	if len(before) != 4 || len(now) != 4 {
		t.Errorf("Changed modified its arguments: %v, %v", before, now)
	}
}

// ReadCells reads a row of each kind from the v_agg_* views of the database it is given.
func TestReadCells(t *testing.T) {
	want := Cells{cellA: {Clients: 5, Scanned: 9}, cellB: {Clients: 2}, cellC: {Clients: 7}, cellD: {Clients: 1}}
	st := &fakeStore{cells: want}
	got, err := ReadCells(context.Background(), st, "statepipe_S01")
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(got, want) {
		t.Errorf("ReadCells:\n got %v\nwant %v", got, want)
	}
	for _, view := range []string{"statepipe_S01.v_agg_states", "statepipe_S01.v_agg_errors", "statepipe_S01.v_agg_lists", "statepipe_S01.v_agg_scans"} {
		if !strings.Contains(st.queries[0], view) {
			t.Errorf("the query does not read %s:\n%s", view, st.queries[0])
		}
	}
	if strings.Contains(st.queries[0], " agg_") || strings.Contains(st.queries[0], "FINAL") {
		t.Errorf("the query reads the agg_* tables, which sum every epoch:\n%s", st.queries[0])
	}
}

func TestReadCellsFails(t *testing.T) {
	row := func(vals ...any) *schema.Result { return &schema.Result{Columns: cellColumns, Rows: [][]any{vals}} }
	for name, st := range map[string]*fakeStore{
		"query":          {err: errors.New("connection refused")},
		"string code":    {res: row(int64(1), "SMS00001", int64(500), "U1", "3", int64(5), int64(0))},
		"int scope":      {res: row(int64(1), int64(7), int64(500), "U1", int64(3), int64(5), int64(0))},
		"short row":      {res: row(int64(1), "SMS00001", int64(500), "U1", int64(3), int64(5))},
		"null clients":   {res: row(int64(1), "SMS00001", int64(500), "U1", int64(3), nil, int64(0))},
		"float scanned":  {res: row(int64(1), "SMS00001", int64(500), "U1", int64(3), int64(5), 1.5)},
		"uint64 too big": {res: row(int64(1), "SMS00001", int64(500), "U1", uint64(1<<63), int64(5), int64(0))},
	} {
		cells, err := ReadCells(context.Background(), st, "statepipe_S01")
		if err == nil {
			t.Errorf("%s: no error, cells %v", name, cells)
			continue
		}
		if cells != nil || !strings.HasPrefix(err.Error(), "cannot read the counted cells of statepipe_S01: ") {
			t.Errorf("%s: %v (cells %v), want no cells and an error naming the database", name, err, cells)
		}
	}
}
