package index_test

import (
	"maps"
	"testing"
	"time"

	"github.com/statepipe/statepipe/projector/index"
	"github.com/statepipe/statepipe/schema"
)

// TestSetRefRenamedEmptyList: a list whose effective update set is empty has no cells (it
// is not counted as compliant or otherwise), before and after it is renamed.
func TestSetRefRenamedEmptyList(t *testing.T) {
	now := time.UnixMilli(1000)
	x := index.New(cleanup)
	ref := index.Ref{Lists: map[string][]string{"a": {}}}
	x.SetRef(cloneRef(ref), now)
	history := []*schema.Report{{Client: "c", Messages: []schema.StateMessage{{Serial: 1, TopicType: 701}}}}
	x.Fold(0, 0, history[0])
	x.End()
	want := map[index.Cell]bool{{Table: "agg_states", Clients: 1}: true}
	checkCells(t, "oracle with empty list a", oracle(buildModel(history), ref, now), want)
	checkCells(t, "with empty list a", x.Cells(), want)
	ref = index.Ref{Lists: map[string][]string{"b": {}}}
	x.SetRef(cloneRef(ref), now)
	checkCells(t, "oracle with empty list b", oracle(buildModel(history), ref, now), want)
	checkCells(t, "after renaming list a to b", x.Cells(), want)
}

// TestListEmptiedByExpiry: a list (and the catalog list) whose every update expires past the
// cleanup age loses all its cells, and the store is told so.
func TestListEmptiedByExpiry(t *testing.T) {
	now := time.UnixMilli(t0ms)
	ref := index.Ref{
		Catalog: map[string]index.Update{"U": {FirstSynced: t0ms - 10*minute, Expired: true, ExpiredAt: t0ms - minute}},
		Lists:   map[string][]string{"L": {"U"}, "M": {"U", "V"}}, // V is not in the catalog
	}
	history := []*schema.Report{{Client: "c", Messages: []schema.StateMessage{
		{Serial: 1, TopicType: 500, TopicID: "U", State: 3},
		{Serial: 2, Time: t0ms - 5*minute, TopicType: 501, TopicID: "S", State: 3}}}}
	x := index.New(cleanup)
	x.SetRef(cloneRef(ref), now)
	x.Fold(0, 0, history[0])
	x.End()
	st := store{}
	st.apply(t, x.Changed(index.Target{DB: "db"}))
	base := map[index.Cell]bool{
		{Table: "agg_states", Clients: 1}:                                              true,
		{Table: "agg_states", Type: 500, Topic: "U", State: 3, Clients: 1, Scanned: 1}: true,
		{Table: "agg_states", Type: 501, Topic: "S", State: 3, Clients: 1}:             true,
		{Table: "agg_scans", Scan: t0ms - 5*minute, Clients: 1}:                        true,
	}
	want := maps.Clone(base)
	want[index.Cell{Table: "agg_lists", Topic: "", State: index.StatusCompliant, Clients: 1}] = true
	want[index.Cell{Table: "agg_lists", Topic: "L", State: index.StatusCompliant, Clients: 1}] = true
	want[index.Cell{Table: "agg_lists", Topic: "M", State: index.StatusUnknown, Clients: 1}] = true
	checkCells(t, "oracle before the cleanup age", oracle(buildModel(history), ref, now), want)
	checkCells(t, "index before the cleanup age", x.Cells(), want)
	checkCells(t, "store before the cleanup age", st.sum(), want)

	now = now.Add(cleanup)
	if !x.Tick(now) {
		t.Fatal("Tick past U's cleanup age did not recompute")
	}
	st.apply(t, x.Changed(index.Target{DB: "db"}))
	want = maps.Clone(base)
	want[index.Cell{Table: "agg_lists", Topic: "M", State: index.StatusUnknown, Clients: 1}] = true // V is left
	checkCells(t, "oracle past the cleanup age", oracle(buildModel(history), ref, now), want)
	checkCells(t, "index past the cleanup age", x.Cells(), want)
	checkCells(t, "store past the cleanup age", st.sum(), want)
}
