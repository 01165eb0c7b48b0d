package index_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/statepipe/statepipe/projector/index"
	"github.com/statepipe/statepipe/schema"
)

func TestNeedsRestore(t *testing.T) {
	x := index.New(cleanup)
	if x.NeedsRestore(0, 0) {
		t.Error("offset 0 of an unseen partition needs no restore")
	}
	if !x.NeedsRestore(0, 5) {
		t.Error("offset 5 of an unseen partition needs a restore")
	}
	x.LoadPartition(0, 4)
	if x.NeedsRestore(0, 5) || x.NeedsRestore(0, 3) {
		t.Error("after LoadPartition(0, 4), offsets up to 5 need no restore")
	}
	if !x.NeedsRestore(0, 6) {
		t.Error("after LoadPartition(0, 4), offset 6 follows a gap")
	}
	x.Seen(0, 5)
	if x.NeedsRestore(0, 6) {
		t.Error("after Seen(0, 5), offset 6 needs no restore")
	}
}

// TestEpochs: a partition's cells are written under its epoch, held back at -1, and written
// whole under a new epoch after Rewrite (the store holds nothing under it yet).
func TestEpochs(t *testing.T) {
	x := index.New(cleanup)
	fold := func(off int64, state int32) {
		x.Fold(3, off, &schema.Report{Client: "c", Messages: []schema.StateMessage{
			{Serial: uint64(off + 1), TopicType: 500, TopicID: "A", State: state}, {Serial: uint64(off + 1), TopicType: 500, TopicID: "B", State: 3}}})
		x.End()
	}
	epochs := func(rows []schema.Rows) (n int, epochs map[any]bool) {
		epochs = map[any]bool{}
		for _, r := range rows {
			cols := r.Columns()
			if cols[len(cols)-1] != "epoch" {
				t.Fatalf("%s: last column %q, want epoch", r.Table(), cols[len(cols)-1])
			}
			for i := 0; i < r.Len(); i++ {
				v := r.Values(i)
				epochs[v[len(v)-1]] = true
				n++
			}
		}
		return n, epochs
	}
	fold(0, 2)
	if n, e := epochs(x.Changed(index.Target{DB: "db"})); n != 3 || len(e) != 1 || !e[uint64(0)] {
		t.Fatalf("first write: %d rows under epochs %v, want 3 under 0", n, e)
	}
	x.SetEpoch(3, -1)
	fold(1, 3)
	if n, _ := epochs(x.Changed(index.Target{DB: "db"})); n != 0 || len(x.Pending()) != 1 {
		t.Fatalf("held back: %d rows written, pending %v", n, x.Pending())
	}
	x.Rewrite(3, 7<<32|5)
	// Every non-zero cell (the client count, A and B installed), not only A's two that changed
	// since the last write (and not A's zero cell: absent means zero under the new epoch).
	if n, e := epochs(x.Changed(index.Target{DB: "db"})); n != 3 || len(e) != 1 || !e[uint64(7<<32|5)] {
		t.Fatalf("after Rewrite: %d rows under epochs %v, want 3 under %d", n, e, 7<<32|5)
	}
	if n, _ := epochs(x.Changed(index.Target{DB: "db"})); n != 0 {
		t.Fatalf("nothing changed since: %d rows", n)
	}
	if x.Epoch(3) != 7<<32|5 || x.Epoch(9) != 0 {
		t.Errorf("epochs %d, %d", x.Epoch(3), x.Epoch(9))
	}
	x.SetDefaultEpoch(-1)
	if x.Epoch(9) != -1 {
		t.Errorf("a partition first met after SetDefaultEpoch(-1) has epoch %d", x.Epoch(9))
	}
}

// TestChangedTarget: Changed writes to the target's tables (with the suffix) and only the
// partitions Allow accepts; the others stay pending, written whole once allowed.
func TestChangedTarget(t *testing.T) {
	x := index.New(cleanup)
	for p := int32(0); p < 2; p++ {
		x.Fold(p, 0, &schema.Report{Client: fmt.Sprintf("c%d", p), Messages: []schema.StateMessage{{Serial: 1, TopicType: 500, TopicID: "A", State: 2}}})
	}
	x.End()
	only := func(want int32) func(int32) bool { return func(p int32) bool { return p == want } }
	written := func(rows []schema.Rows) (tables []string, parts map[int32]int) {
		parts = map[int32]int{}
		for _, r := range rows {
			tables = append(tables, r.Table())
			pi := slices.Index(r.Columns(), "partition")
			for i := 0; i < r.Len(); i++ {
				parts[r.Values(i)[pi].(int32)]++
			}
		}
		return tables, parts
	}
	tables, parts := written(x.Changed(index.Target{DB: "db", Suffix: "_rebuild", Allow: only(1)}))
	if !slices.Equal(tables, []string{"db.agg_states_rebuild"}) || len(parts) != 1 || parts[1] != 2 {
		t.Fatalf("Allow(1) with suffix: tables %v, rows per partition %v; want db.agg_states_rebuild, 2 rows of partition 1", tables, parts)
	}
	if got := x.Pending(); !slices.Equal(got, []int32{0}) {
		t.Fatalf("pending %v, want [0]", got)
	}
	if tables, parts = written(x.Changed(index.Target{DB: "db"})); !slices.Equal(tables, []string{"db.agg_states"}) || len(parts) != 1 || parts[0] != 2 {
		t.Fatalf("then all: tables %v, rows per partition %v; want db.agg_states, 2 rows of partition 0", tables, parts)
	}
}
