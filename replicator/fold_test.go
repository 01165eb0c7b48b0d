package replicator

import (
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/statepipe/statepipe/schema"
)

// fakeInserter keeps the rows it acknowledged; it refuses the first fail calls, and notes how
// many records the source had committed at each call.
type fakeInserter struct {
	mu    sync.Mutex
	fail  int
	calls int
	rows  []schema.Rows
	src   *fakeSource
	seen  []int
}

func (s *fakeInserter) Insert(_ context.Context, rows schema.Rows) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.src != nil {
		s.seen = append(s.seen, s.src.committedN())
	}
	if s.calls <= s.fail {
		return errors.New("store down")
	}
	s.rows = append(s.rows, rows)
	return nil
}

// table returns the rows inserted into table, in one Rows; it fails the test when they came
// in more than one insert.
func (s *fakeInserter) table(t *testing.T, table string) schema.Rows {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out schema.Rows
	for _, r := range s.rows {
		if r.Table() == table {
			if out != nil {
				t.Fatalf("%s inserted twice", table)
			}
			out = r
		}
	}
	if out == nil {
		t.Fatalf("nothing inserted into %s", table)
	}
	return out
}

// runUntilCommitted runs run until src has committed want records (or fails the test after
// 10 s), then stops it and waits for it to return.
func runUntilCommitted(t *testing.T, run func(context.Context) error, src *fakeSource, want int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for src.committedN() < want && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return within 5 s of its context's end")
	}
	if n := src.committedN(); n != want {
		t.Fatalf("committed %d records, want %d", n, want)
	}
}

// hierRecord is a record of hier.CEN carrying m, keyed by key, vouched with priv (nil: not).
func hierRecord(t *testing.T, offset int64, key string, m *Message, priv ed25519.PrivateKey) Record {
	t.Helper()
	v, err := Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	r := Record{Topic: "hier.CEN", Partition: 1, Offset: offset, Key: []byte(key), Value: v,
		Time: time.UnixMilli(1_800_000_100_000 + offset).In(time.FixedZone("CET", 3600))}
	if priv != nil {
		r.Headers = []Header{{Key: schema.HeaderVouch, Value: schema.Vouch(priv, VouchTopic, r.Key, v, 0)}}
	}
	return r
}

// rowBinary decodes one row of RowBinary with the given column types.
func rowBinary(t *testing.T, b []byte, types ...string) []any {
	t.Helper()
	var out []any
	for _, typ := range types {
		switch typ {
		case "String":
			n, k := binary.Uvarint(b)
			if k <= 0 || uint64(len(b)-k) < n {
				t.Fatalf("bad String at %x", b)
			}
			out, b = append(out, string(b[k:k+int(n)])), b[k+int(n):]
		case "UInt8":
			out, b = append(out, b[0]), b[1:]
		case "UInt16":
			out, b = append(out, binary.LittleEndian.Uint16(b)), b[2:]
		case "Int64":
			out, b = append(out, int64(binary.LittleEndian.Uint64(b))), b[8:]
		case "UInt64":
			out, b = append(out, binary.LittleEndian.Uint64(b)), b[8:]
		default:
			panic("BUG: type " + typ)
		}
	}
	if len(b) != 0 {
		t.Fatalf("%d bytes left after the row", len(b))
	}
	return out
}

// The fold writes each message's cells into hier_cells and its heartbeat into hier_origins,
// with the message's version and the record's time, then commits the whole batch.
func TestFoldRows(t *testing.T) {
	m1 := &Message{V: wireVersion, Origin: "S01", Epoch: 7, Seq: 1, Cells: []Cell{
		{Kind: KindStates, Scope: "SMS00001", TopicType: 500, TopicID: "U1", Code: 3, Clients: 12, Scanned: 4},
		{Kind: KindScans, Scope: "", Code: 1_800_000_000_000, Clients: 9},
	}}
	m2 := &Message{V: wireVersion, Origin: "S02", Epoch: 8, Seq: 5,
		Cells: []Cell{{Kind: KindLists, Scope: "SMS00002", TopicID: "L1", Code: 2, Clients: 1}},
		Heartbeat: &Heartbeat{Parent: "M01", Sweep: Version(8, 1), Watermark: 1_800_000_050_000, SentAt: 1_800_000_060_000,
			LagRecords: 3, BacklogRecords: 4, Cells: 17, Pacing: `{"mode":"auto"}`}}
	m3 := &Message{V: wireVersion, Origin: "S01", Epoch: 7, Seq: 2, Heartbeat: &Heartbeat{Parent: "CEN", Sweep: Version(7, 1)}}
	src := &fakeSource{recs: []Record{hierRecord(t, 10, "S01", m1, nil), hierRecord(t, 11, "S02", m2, nil), hierRecord(t, 12, "S01", m3, nil)}}
	recTimes := []time.Time{src.recs[1].Time, src.recs[2].Time}
	store := &fakeInserter{src: src}
	reg := prometheus.NewRegistry()
	f := NewFold(FoldConfig{Site: "CEN", Database: "statepipe_CEN"}, FoldParams{Source: src, Store: store, Registerer: reg})
	runUntilCommitted(t, f.Run, src, 3)

	cells := store.table(t, "statepipe_CEN.hier_cells")
	if got, want := cells.Columns(), []string{"origin", "kind", "scope", "topic_type", "topic_id", "code", "clients", "scanned", "version"}; !reflect.DeepEqual(got, want) {
		t.Errorf("hier_cells columns %v, want %v", got, want)
	}
	wantCells := [][]any{
		{"S01", "states", "SMS00001", uint16(500), "U1", int64(3), int64(12), int64(4), Version(7, 1)},
		{"S01", "scans", "", uint16(0), "", int64(1_800_000_000_000), int64(9), int64(0), Version(7, 1)},
		{"S02", "lists", "SMS00002", uint16(0), "L1", int64(2), int64(1), int64(0), Version(8, 5)},
	}
	if cells.Len() != len(wantCells) {
		t.Fatalf("%d hier_cells rows, want %d", cells.Len(), len(wantCells))
	}
	kinds := map[string]uint8{"states": 1, "errors": 2, "lists": 3, "scans": 4}
	for i, want := range wantCells {
		if got := cells.Values(i); !reflect.DeepEqual(got, want) {
			t.Errorf("hier_cells row %d: %#v, want %#v", i, got, want)
		}
		bin := append([]any{want[0], kinds[want[1].(string)]}, want[2:]...)
		if got := rowBinary(t, cells.AppendRowBinary(nil, i), "String", "UInt8", "String", "UInt16", "String", "Int64", "Int64", "Int64", "UInt64"); !reflect.DeepEqual(got, bin) {
			t.Errorf("hier_cells row %d in RowBinary: %#v, want %#v", i, got, bin)
		}
	}

	origins := store.table(t, "statepipe_CEN.hier_origins")
	if got, want := origins.Columns(), []string{"origin", "parent", "version", "sweep", "watermark", "sent_at", "received_at", "lag_records", "backlog_records", "cells", "pacing"}; !reflect.DeepEqual(got, want) {
		t.Errorf("hier_origins columns %v, want %v", got, want)
	}
	wantOrigins := [][]any{
		{"S02", "M01", Version(8, 5), Version(8, 1), time.UnixMilli(1_800_000_050_000).UTC(), time.UnixMilli(1_800_000_060_000).UTC(), recTimes[0].UTC(), int64(3), int64(4), int64(17), `{"mode":"auto"}`},
		{"S01", "CEN", Version(7, 2), Version(7, 1), time.UnixMilli(0).UTC(), time.UnixMilli(0).UTC(), recTimes[1].UTC(), int64(0), int64(0), int64(0), ""},
	}
	if origins.Len() != len(wantOrigins) {
		t.Fatalf("%d hier_origins rows, want %d", origins.Len(), len(wantOrigins))
	}
	for i, want := range wantOrigins {
		if got := origins.Values(i); !reflect.DeepEqual(got, want) {
			t.Errorf("hier_origins row %d: %v, want %v", i, got, want)
		}
		bin := []any{want[0], want[1], want[2], want[3], want[4].(time.Time).UnixMilli(), want[5].(time.Time).UnixMilli(), want[6].(time.Time).UnixMilli(), want[7], want[8], want[9], want[10]}
		if got := rowBinary(t, origins.AppendRowBinary(nil, i), "String", "String", "UInt64", "UInt64", "Int64", "Int64", "Int64", "Int64", "Int64", "Int64", "String"); !reflect.DeepEqual(got, bin) {
			t.Errorf("hier_origins row %d in RowBinary: %v, want %v", i, got, bin)
		}
	}
	if n := gathered(t, reg, "statepipe_hierarchy_folded_records_total"); n != 3 {
		t.Errorf("folded_records_total %v, want 3", n)
	}
	if n := gathered(t, reg, "statepipe_hierarchy_folded_cells_total"); n != 3 {
		t.Errorf("folded_cells_total %v, want 3", n)
	}
	if n := gathered(t, reg, "statepipe_hierarchy_rejected_records_total"); n != 0 {
		t.Errorf("rejected_records_total %v, want 0", n)
	}
}

// With keys, the fold folds only what verifies with the origin's keys, under the origin's own
// record key; what it cannot decode or verify is skipped, counted, and committed with the rest.
func TestFoldRejects(t *testing.T) {
	s01Pub, s01 := newKey(t)
	_, s02 := newKey(t)
	_, forger := newKey(t)
	keys := func(origin string) ([]ed25519.PublicKey, error) {
		if origin == "S01" {
			return []ed25519.PublicKey{s01Pub}, nil
		}
		return nil, fmt.Errorf("no key for site %s", origin)
	}
	msg := func(origin string, seq uint32) *Message {
		return &Message{V: wireVersion, Origin: origin, Epoch: 1, Seq: seq, Cells: []Cell{{Kind: KindStates, Scope: "X", Clients: int64(seq)}},
			Heartbeat: &Heartbeat{Parent: "CEN"}}
	}
	altered := hierRecord(t, 6, "S01", msg("S01", 6), s01)
	altered.Value = hierRecord(t, 6, "S01", msg("S01", 60), nil).Value
	src := &fakeSource{recs: []Record{
		hierRecord(t, 0, "S01", msg("S01", 1), s01),    // folded
		hierRecord(t, 1, "S01", msg("S01", 2), forger), // wrong key
		hierRecord(t, 2, "S01", msg("S01", 3), nil),    // not vouched
		hierRecord(t, 3, "S02", msg("S01", 4), s01),    // record key not the origin
		hierRecord(t, 4, "S02", msg("S02", 5), s02),    // origin without keys
		{Topic: "hier.CEN", Offset: 5, Key: []byte("S01"), Value: []byte("not msgpack")},
		altered,
		hierRecord(t, 7, "S01", &Message{V: 2, Origin: "S01", Epoch: 1, Seq: 7}, s01), // vouched, but not v1
		hierRecord(t, 8, "S01", msg("S01", 8), s01),                                   // folded
		hierRecord(t, 9, "CEN", msg("CEN", 9), s01),                                   // the site's own: not below it
	}}
	store := &fakeInserter{}
	reg := prometheus.NewRegistry()
	f := NewFold(FoldConfig{Site: "CEN", Database: "statepipe_CEN", Below: map[string]bool{"S01": true, "S02": true}},
		FoldParams{Source: src, Store: store, Keys: keys, Registerer: reg})
	runUntilCommitted(t, f.Run, src, 10)

	cells := store.table(t, "statepipe_CEN.hier_cells")
	var versions []uint64
	for i := range cells.Len() {
		versions = append(versions, cells.Values(i)[8].(uint64))
	}
	if !reflect.DeepEqual(versions, []uint64{Version(1, 1), Version(1, 8)}) {
		t.Errorf("folded versions %x, want 1:1 and 1:8 only", versions)
	}
	if n := store.table(t, "statepipe_CEN.hier_origins").Len(); n != 2 {
		t.Errorf("%d hier_origins rows, want 2", n)
	}
	if n := gathered(t, reg, "statepipe_hierarchy_rejected_records_total"); n != 8 {
		t.Errorf("rejected_records_total %v, want 8", n)
	}
	if n := gathered(t, reg, "statepipe_hierarchy_folded_records_total"); n != 10 {
		t.Errorf("folded_records_total %v, want 10 (every record committed)", n)
	}
}

// Without keys (auth off) an unvouched record is folded.
func TestFoldAuthOff(t *testing.T) {
	src := &fakeSource{recs: []Record{hierRecord(t, 0, "S09", &Message{V: wireVersion, Origin: "S01", Epoch: 1, Seq: 1, Heartbeat: &Heartbeat{Parent: "CEN"}}, nil)}}
	store := &fakeInserter{}
	runUntilCommitted(t, NewFold(FoldConfig{Site: "CEN", Database: "d"}, FoldParams{Source: src, Store: store}).Run, src, 1)
	if n := store.table(t, "d.hier_origins").Len(); n != 1 {
		t.Errorf("%d hier_origins rows, want 1", n)
	}
}

// A refused insert is tried again, and nothing is committed before the store has the rows; a
// batch with nothing to fold is committed without an insert.
func TestFoldCommitsOnlyAfterInsert(t *testing.T) {
	src := &fakeSource{recs: []Record{hierRecord(t, 0, "S01", &Message{V: wireVersion, Origin: "S01", Epoch: 1, Seq: 1,
		Cells: []Cell{{Kind: KindLists, Scope: "X", TopicID: "L", Clients: 1}}, Heartbeat: &Heartbeat{Parent: "CEN"}}, nil)}}
	store := &fakeInserter{fail: 2, src: src}
	start := time.Now()
	runUntilCommitted(t, NewFold(FoldConfig{Site: "CEN", Database: "d"}, FoldParams{Source: src, Store: store}).Run, src, 1)
	if store.calls != 4 || len(store.rows) != 2 {
		t.Fatalf("%d insert calls, %d acknowledged; want 4 (2 refused), 2", store.calls, len(store.rows))
	}
	for i, n := range store.seen {
		if n != 0 {
			t.Errorf("insert call %d: %d records already committed, want 0", i+1, n)
		}
	}
	if src.commits != 1 {
		t.Errorf("%d commits, want 1", src.commits)
	}
	if el := time.Since(start); el < 2*time.Second {
		t.Errorf("two retries in %v: want a second's pause each", el)
	}

	src = &fakeSource{recs: []Record{{Topic: "hier.CEN", Key: []byte("S01"), Value: []byte{0xc1}}}}
	store = &fakeInserter{}
	runUntilCommitted(t, NewFold(FoldConfig{Site: "CEN", Database: "d"}, FoldParams{Source: src, Store: store}).Run, src, 1)
	if store.calls != 0 {
		t.Errorf("%d inserts of nothing", store.calls)
	}
}

// The fold group is renamed after each rebuild of the hierarchy tables, so the fold reads
// hier.<site> from its start again.
func TestFoldGroup(t *testing.T) {
	count := func(n int64) *fakeStore {
		return &fakeStore{res: &schema.Result{Columns: []schema.Column{{Name: "count()", Type: "UInt64"}}, Rows: [][]any{{n}}}}
	}
	for n, want := range map[int64]string{0: "statepipe-hier-CEN", 1: "statepipe-hier-CEN-r1", 12: "statepipe-hier-CEN-r12"} {
		q := count(n)
		got, err := FoldGroup(context.Background(), q, "CEN", "statepipe_CEN")
		if err != nil || got != want {
			t.Errorf("%d rebuilds: %q, %v; want %q", n, got, err, want)
		}
		if len(q.queries) != 1 || !strings.Contains(q.queries[0], "statepipe_CEN.hier_rebuilds") {
			t.Errorf("queries %q, want one of statepipe_CEN.hier_rebuilds", q.queries)
		}
	}
	for name, q := range map[string]*fakeStore{
		"query fails": {err: errors.New("store down")},
		"no row":      {res: &schema.Result{}},
		"not a count": {res: &schema.Result{Rows: [][]any{{"three"}}}},
	} {
		if got, err := FoldGroup(context.Background(), q, "CEN", "statepipe_CEN"); err == nil {
			t.Errorf("%s: %q, want an error", name, got)
		}
	}
}

type fakeExecer struct {
	fail  int // refuse the fail-th statement (1-based); 0: none
	execs []string
}

func (e *fakeExecer) Exec(_ context.Context, q string) error {
	e.execs = append(e.execs, q)
	if len(e.execs) == e.fail {
		return errors.New("store down")
	}
	return nil
}

func TestResetFold(t *testing.T) {
	ex := &fakeExecer{}
	if err := ResetFold(context.Background(), ex, "statepipe_CEN"); err != nil {
		t.Fatal(err)
	}
	want := []string{"TRUNCATE TABLE statepipe_CEN.hier_cells", "TRUNCATE TABLE statepipe_CEN.hier_origins", "INSERT INTO statepipe_CEN.hier_rebuilds"}
	if len(ex.execs) != len(want) {
		t.Fatalf("statements %q, want %d", ex.execs, len(want))
	}
	for i, w := range want {
		if !strings.HasPrefix(ex.execs[i], w) {
			t.Errorf("statement %d: %q, want %q…", i, ex.execs[i], w)
		}
	}
	ex = &fakeExecer{fail: 2}
	if err := ResetFold(context.Background(), ex, "statepipe_CEN"); err == nil || len(ex.execs) != 2 {
		t.Errorf("second statement refused: %v after %d statements, want an error, and no rebuild recorded", err, len(ex.execs))
	}
}
