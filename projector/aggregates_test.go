package projector

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/statepipe/statepipe/projector/index"
	"github.com/statepipe/statepipe/schema"
)

// cannedReader answers each query with the rows of the first entry whose key the query
// contains (none: no rows), as the store adapters normalise them.
type cannedReader []struct {
	match string
	rows  [][]any
}

func (c cannedReader) rowsOf(query string) [][]any {
	for _, e := range c {
		if strings.Contains(query, e.match) {
			return e.rows
		}
	}
	return nil
}

func (c cannedReader) Query(_ context.Context, query string) (*schema.Result, error) {
	return &schema.Result{Rows: c.rowsOf(query)}, nil
}

func (c cannedReader) Each(_ context.Context, query string, fn func([]any) error) error {
	for _, r := range c.rowsOf(query) {
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

// storeRows is what the store holds of one client in partition 1: an update of the catalog
// Required with an HRESULT, its full-report marker, a successful scan and the cells written
// for it under epoch 5.
func storeRows() cannedReader {
	return cannedReader{
		// The cell queries first: they name v_agg_fences too.
		{"db.agg_states", [][]any{{int64(1), "", "KB1", int64(500), int64(2), int64(0), int64(0), int64(1), int64(1)}}},
		{"db.agg_errors", [][]any{{int64(1), "C1", "KB1", int64(402), int64(0), int64(-2145124341), int64(0), int64(1), int64(0)}}},
		{"db.agg_lists", [][]any{{int64(1), "", "L1", int64(0), int64(2), int64(0), int64(0), int64(1), int64(0)}}},
		{"db.agg_scans", [][]any{{int64(1), "", "", int64(0), int64(0), int64(0), int64(2000), int64(1), int64(0)}}},
		{"v_updates", [][]any{{"KB1", int64(1000), int64(0), int64(0)}}},
		{"v_update_lists", [][]any{{"L1", []any{"KB1"}}}},
		{"v_collections", [][]any{{"C1", []any{"pc-a"}}}},
		{"v_agg_fences", [][]any{{int64(1), int64(5)}}},
		// The offsets, read first and again at the end (with batches_begun).
		{"db.offsets GROUP BY partition", [][]any{{int64(1), int64(41)}}},
		{"db.clients GROUP BY client) AS c", [][]any{{"pc-a", int64(1)}}},
		{"db.full_reports", [][]any{{"pc-a", int64(500), int64(3)}}},
		{"db.scan_history", [][]any{{"pc-a", int64(4), int64(2000)}}},
		{"db.current_state", [][]any{{"pc-a", int64(402), "KB1", int64(5), int64(11), int64(-2145124341)}, {"pc-a", int64(500), "KB1", int64(6), int64(2), int64(0)}}},
	}
}

// RestoreIndex decodes every table it reads: the restored index has the client's state, and
// the cells the store holds need no correction but those the canned rows leave out.
func TestRestoreIndexReadsEveryTable(t *testing.T) {
	x, err := RestoreIndex(context.Background(), storeRows(), "db", schema.DefaultExpiredCleanup, time.UnixMilli(5000), true)
	if err != nil {
		t.Fatal(err)
	}
	if serial, state, code, ok := x.State("pc-a", 402, "KB1"); !ok || serial != 5 || state != 11 || code != -2145124341 {
		t.Errorf("pc-a 402 KB1: serial %d state %d error %d live %v", serial, state, code, ok)
	}
	if x.Epoch(1) != 5 || x.Next(1) != 42 || len(x.Torn()) != 0 {
		t.Errorf("partition 1: epoch %d, next %d, torn %v; want 5, 42, none", x.Epoch(1), x.Next(1), x.Torn())
	}
	cells := x.Cells()
	for _, c := range []index.Cell{
		{Table: "agg_states", Topic: "KB1", Type: 500, State: 2, Clients: 1, Scanned: 1},
		{Table: "agg_errors", Scope: "C1", Topic: "KB1", Type: 402, Error: -2145124341, Clients: 1},
		{Table: "agg_lists", Topic: "L1", State: index.StatusNonCompliant, Clients: 1},
		{Table: "agg_scans", Scan: 2000, Clients: 1},
	} {
		if !cells[c] {
			t.Errorf("no cell %+v in %v", c, cells)
		}
	}
	// The four cells loaded are what the index derives: Changed writes only the others.
	written := map[string]int{}
	for _, rows := range x.Changed(index.Target{DB: "db"}) {
		written[rows.Table()] += rows.Len()
	}
	if want := map[string]int{"db.agg_states": 5, "db.agg_errors": 3, "db.agg_lists": 3, "db.agg_scans": 1}; fmt.Sprint(written) != fmt.Sprint(want) {
		t.Errorf("corrections written %v, want %v", written, want)
	}
}

// A value of another type than the column's is an error naming the step, the column and
// what was found, not a panic.
func TestRestoreIndexRefusesMistypedValues(t *testing.T) {
	for _, c := range []struct {
		match string
		row   []any
		want  string
	}{
		{"db.clients GROUP BY client) AS c", []any{"pc-a", "1"}, `cannot restore the index (clients): cannot decode column 1: found string "1", want Int32`},
		{"db.current_state", []any{"pc-a", int64(500), "KB1", int64(6), int64(40000), int64(0)}, "cannot restore the index (current states): cannot decode column 4: found int64 40000, want Int16"},
		{"db.agg_scans", []any{int64(1), "", "", int64(0), int64(0), int64(0), nil, int64(1), int64(0)}, "cannot restore the index (agg_scans): cannot decode column 6: found NULL, want Int64"},
		{"v_update_lists", []any{"L1", []any{"KB1", int64(2)}}, "cannot read reference data (SELECT id, updates FROM db.v_update_lists): cannot decode column 1: element 1: found int64 2, want String"},
		{"v_updates", []any{"KB1", int64(1000), int64(2), int64(0)}, "cannot read the catalog: cannot decode column 2: found int64 2, want Bool"},
		{"db.batches_begun", []any{int64(1)}, "cannot restore the index (partitions, again): cannot decode a row of 1 values into 2 destinations"},
	} {
		rd := append(cannedReader{{c.match, [][]any{c.row}}}, storeRows()...)
		_, err := RestoreIndex(context.Background(), rd, "db", schema.DefaultExpiredCleanup, time.UnixMilli(5000), true)
		if err == nil || err.Error() != c.want {
			t.Errorf("%s row %v:\n got %v\nwant %s", c.match, c.row, err, c.want)
		}
	}
}

func TestRebuildCountRefusesAnEmptyAnswer(t *testing.T) {
	_, err := Rebuild(context.Background(), rebuildStore{}, "db", schema.DefaultExpiredCleanup)
	if err == nil || !strings.Contains(err.Error(), "cannot count the raw log of db: cannot decode row 0: the result has 0 rows") {
		t.Fatalf("got %v", err)
	}
}

// rebuildStore answers every query with no rows.
type rebuildStore struct{ schema.Store }

func (rebuildStore) Query(context.Context, string) (*schema.Result, error) {
	return &schema.Result{}, nil
}
