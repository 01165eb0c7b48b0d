package index_test

// The index is checked against an oracle written from the folding rules, not from the index's
// counters: the oracle recomputes every aggregate cell from the whole message history, the
// reference data and the clock. A randomized history (duplicates, full and delta reports,
// reports shuffled across and within clients) is folded in random batches; after every batch
// the index's cells and a model of the store (ReplacingMergeTree(version) per partition, fed
// only the rows Changed emits) must both equal the oracle. Reference-data changes, the expiry
// clock, a replay and a restore from the store (clean and corrupted) are checked the same way.

import (
	"cmp"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/statepipe/statepipe/projector/index"
	"github.com/statepipe/statepipe/schema"
)

const cleanup = 30 * 24 * time.Hour

var (
	t0   = time.Date(2025, 11, 25, 0, 0, 0, 0, time.UTC)
	t0ms = t0.UnixMilli()
)

const minute = int64(60_000)

// keyedTypes are the topic types that fold into current state (rule 1), written out here
// rather than taken from schema so the oracle does not share the index's source of truth.
var keyedTypes = []schema.TopicType{300, 301, 302, 402, 500, 501}

func TestIndexRandomized(t *testing.T) {
	seeds := []uint64{1, 2}
	if testing.Short() {
		seeds = seeds[:1]
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) { testRandomized(t, seed) })
	}
}

func testRandomized(t *testing.T, seed uint64) {
	w := genWorld(t, seed, 200)
	rng := rand.New(rand.NewPCG(seed, 2))
	x := index.New(cleanup)
	ref, now := w.ref, w.now
	if !x.SetRef(cloneRef(ref), now) {
		t.Fatal("SetRef of the first reference data did not recompute")
	}
	st := store{}
	if n := st.apply(t, x.Changed(index.Target{DB: "db"})); n != 0 {
		t.Fatalf("an empty index wrote %d rows", n)
	}
	f := &folder{x: x, w: w, offsets: map[int32]int64{}}
	var history []*schema.Report
	model := map[string]*oclient{}
	bs := batches(rng, w.deliveries, 40)
	mid := len(bs) / 2
	for bi, b := range bs {
		f.fold(b)
		history = append(history, b...)
		addToModel(model, b)
		st.apply(t, x.Changed(index.Target{DB: "db"}))
		want := oracle(model, ref, now)
		checkCells(t, fmt.Sprintf("batch %d: index", bi), x.Cells(), want)
		checkCells(t, fmt.Sprintf("batch %d: store", bi), st.sum(), want)

		if bi == mid/2 {
			// Another projector takes the partitions over: it restores from the store and folds on.
			y := restore(t, rng, w, model, st, ref, now, f.offsets)
			if n := len(decode(t, y.Changed(index.Target{DB: "db"}))); n != 0 {
				t.Fatalf("takeover: restore from a right store wrote %d rows", n)
			}
			checkCells(t, "takeover: restored index", y.Cells(), want)
			x, f.x = y, y
		}
		if bi != mid {
			continue
		}
		// (c) Reference data change mid-stream, then the clock makes update 4 leave the lists.
		if len(diffCells(oracle(model, w.ref2, w.now), oracle(model, w.ref, w.now))) == 0 ||
			len(diffCells(oracle(model, w.ref2, w.now2), oracle(model, w.ref2, w.now))) == 0 {
			t.Fatal("the reference data change or the tick changes no cell: the test would prove nothing")
		}
		ref = w.ref2
		if !x.SetRef(cloneRef(ref), now) {
			t.Fatal("SetRef with changed lists, collections and catalog did not recompute")
		}
		st.apply(t, x.Changed(index.Target{DB: "db"}))
		want = oracle(model, ref, now)
		checkCells(t, "after SetRef: index", x.Cells(), want)
		checkCells(t, "after SetRef: store", st.sum(), want)

		if x.Tick(w.now2.Add(-time.Millisecond)) {
			t.Error("Tick 1 ms before update 4 reaches the cleanup age recomputed")
		}
		now = w.now2
		if !x.Tick(now) {
			t.Fatal("Tick past update 4's cleanup age did not recompute")
		}
		st.apply(t, x.Changed(index.Target{DB: "db"}))
		want = oracle(model, ref, now)
		checkCells(t, "after Tick: index", x.Cells(), want)
		checkCells(t, "after Tick: store", st.sum(), want)

		if x.Tick(now.Add(time.Hour)) {
			t.Error("Tick that crosses no cleanup age recomputed")
		}
		if x.SetRef(cloneRef(ref), now) {
			t.Error("SetRef with equal reference data recomputed")
		}
		if n := len(decode(t, x.Changed(index.Target{DB: "db"}))); n != 0 {
			t.Errorf("no-op Tick/SetRef wrote %d rows", n)
		}
	}

	if !maps.EqualFunc(model, buildModel(history), func(a, b *oclient) bool {
		return maps.Equal(a.markers, b.markers) && len(a.keys) == len(b.keys) && (a.scan == nil) == (b.scan == nil)
	}) {
		t.Fatal("the incremental model differs from the model of the whole history")
	}
	want := oracle(model, ref, now)
	checkCells(t, "final: index", x.Cells(), want)
	checkCells(t, "final: store", st.sum(), want)
	checkCoverage(t, model, want)

	// Sanity check of the comparison itself: an off-by-one must be seen.
	for c := range want {
		bad := map[index.Cell]bool{}
		for k := range want {
			bad[k] = true
		}
		delete(bad, c)
		c.Clients++
		bad[c] = true
		if len(diffCells(bad, want)) == 0 {
			t.Fatal("diffCells does not see an off-by-one")
		}
		break
	}

	t.Run("restore", func(t *testing.T) {
		y := restore(t, rng, w, model, st, ref, now, f.offsets)
		if n := len(decode(t, y.Changed(index.Target{DB: "db"}))); n != 0 {
			t.Errorf("restore from a right store wrote %d rows", n)
		}
		checkCells(t, "restored index", y.Cells(), want)
		if y.Clients() != x.Clients() || y.Keys() != x.Keys() {
			t.Errorf("restored index holds %d clients, %d keys; folded holds %d, %d", y.Clients(), y.Keys(), x.Clients(), x.Keys())
		}
	})

	t.Run("restore corrupted", func(t *testing.T) {
		bad := st.clone()
		var nonzero []skey
		for _, k := range bad.sortedKeys() {
			if bad[k].clients != 0 {
				nonzero = append(nonzero, k)
			}
		}
		if len(nonzero) < 2 {
			t.Fatal("store too small to corrupt")
		}
		expected := map[skey]srow{}
		// One cell off by one, one cell lost, one stale cell that should not exist.
		off := nonzero[rng.IntN(len(nonzero))]
		expected[off] = srow{clients: st[off].clients, scanned: st[off].scanned}
		r := bad[off]
		r.clients++
		bad[off] = r
		var lost skey
		for lost = nonzero[rng.IntN(len(nonzero))]; lost == off; lost = nonzero[rng.IntN(len(nonzero))] {
		}
		expected[lost] = srow{clients: st[lost].clients, scanned: st[lost].scanned}
		delete(bad, lost)
		stale := skey{table: "agg_errors", scope: "C2", topic: "KB-ghost", tt: 402, err: -1, part: 2}
		bad[stale] = srow{clients: 3, version: 1}
		expected[stale] = srow{}
		stale2 := skey{table: "agg_lists", scope: "", topic: "L-gone", state: 1, part: 7} // a partition without clients
		// Never above the partition's processed offset, which restores load (LoadPartition):
		// cells are written at it.
		bad[stale2] = srow{clients: 5, version: 0}
		expected[stale2] = srow{}
		stale3 := skey{table: "agg_scans", scope: "C1", scan: t0ms - 7, part: 1} // a scan time no client has
		bad[stale3] = srow{clients: 2, version: 1}
		expected[stale3] = srow{}
		// An agg_scans row stored under a wrong scan time: the right cell is lost, a wrong one stale.
		for _, k := range nonzero {
			moved := k
			moved.scan++
			if _, taken := st[moved]; k.table != "agg_scans" || k == off || k == lost || taken {
				continue
			}
			expected[k] = srow{clients: st[k].clients}
			expected[moved] = srow{}
			bad[moved] = bad[k]
			delete(bad, k)
			break
		}

		y := restore(t, rng, w, model, bad, ref, now, f.offsets)
		rows := y.Changed(index.Target{DB: "db"})
		got := map[skey]srow{}
		for _, e := range decode(t, rows) {
			if _, dup := got[e.k]; dup {
				t.Errorf("row %+v written twice in one Changed", e.k)
			}
			got[e.k] = srow{clients: e.r.clients, scanned: e.r.scanned}
		}
		for k, v := range expected {
			if g, ok := got[k]; !ok || g != v {
				t.Errorf("corrective row %+v: got %+v (written %v), want %+v", k, g, ok, v)
			}
		}
		for k, v := range got {
			if _, ok := expected[k]; !ok {
				t.Errorf("needless row %+v = %+v", k, v)
			}
		}
		bad.apply(t, rows)
		checkCells(t, "corrected store", bad.sum(), want)
		if n := len(decode(t, y.Changed(index.Target{DB: "db"}))); n != 0 {
			t.Errorf("second Changed after a restore wrote %d rows", n)
		}
	})

	t.Run("replay", func(t *testing.T) {
		// Redelivering the whole history (new offsets) changes no cell.
		for bi, b := range batches(rng, w.deliveries, 60) {
			f.fold(b)
			if n := len(decode(t, x.Changed(index.Target{DB: "db"}))); n != 0 {
				t.Fatalf("replayed batch %d wrote %d rows", bi, n)
			}
		}
		checkCells(t, "after replay", x.Cells(), want)
	})
}

// restore builds an index from what the store holds: the live state (every key's latest row,
// dead ones included, markers and scans in random order) and the aggregate rows.
func restore(t testing.TB, rng *rand.Rand, w *world, model map[string]*oclient, st store, ref index.Ref, now time.Time, offsets map[int32]int64) *index.Index {
	t.Helper()
	y := index.New(cleanup)
	y.SetRef(cloneRef(ref), now)
	for p, next := range offsets {
		y.LoadPartition(p, next-1)
	}
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range model {
			if !yield(n) {
				return
			}
		}
	})
	rng.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
	for _, name := range names {
		c := model[name]
		y.LoadClient(name, w.part[name])
		var ops []func()
		for tt, s := range c.markers {
			ops = append(ops, func() { y.LoadMarker(name, tt, s) })
		}
		if c.scan != nil {
			s := *c.scan
			ops = append(ops, func() { y.LoadScan(name, s.Serial, s.Time) })
			if s.Serial > 1 {
				// an older scan loaded in any order must not win
				ops = append(ops, func() { y.LoadScan(name, s.Serial-1, s.Time+minute) })
			}
		}
		keys := slices.SortedFunc(func(yield func(okey) bool) {
			for k := range c.keys {
				if !yield(k) {
					return
				}
			}
		}, func(a, b okey) int { return cmp.Or(cmp.Compare(a.tt, b.tt), strings.Compare(a.id, b.id)) })
		for _, k := range keys {
			m := c.keys[k]
			ops = append(ops, func() { y.LoadState(name, k.tt, k.id, m.Serial, int16(m.State), m.Error) })
			if m.Serial > 1 && rng.IntN(5) == 0 {
				// an older row of the key must not win whatever the order
				ops = append(ops, func() { y.LoadState(name, k.tt, k.id, m.Serial-1, int16((m.State+1)%4), m.Error+1) })
			}
		}
		rng.Shuffle(len(ops), func(i, j int) { ops[i], ops[j] = ops[j], ops[i] })
		for _, op := range ops {
			op()
		}
	}
	keys := st.sortedKeys()
	rng.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
	for _, k := range keys {
		r := st[k]
		y.LoadCell(k.part, index.Cell{Table: k.table, Scope: k.scope, Topic: k.topic, Type: k.tt, State: k.state, Error: k.err, Scan: k.scan,
			Clients: r.clients, Scanned: r.scanned})
	}
	y.Recompute()
	y.Recompute() // idempotent
	return y
}

// checkCoverage makes sure the random world exercises what the rules distinguish.
func checkCoverage(t *testing.T, model map[string]*oclient, want map[index.Cell]bool) {
	t.Helper()
	dead, noScan := 0, 0
	for _, c := range model {
		if c.scan == nil {
			noScan++
		}
		for k := range c.keys {
			if _, live := c.live(k); !live {
				dead++
			}
		}
	}
	status := map[int16]int{}
	var scanned, errAll, errSum, collectionCells, scanCells, sharedScans int
	for c := range want {
		switch {
		case c.Table == "agg_scans":
			scanCells++
			if c.Clients > 1 {
				sharedScans++
			}
		case c.Table == "agg_lists":
			status[c.State]++
		case c.Table == "agg_states" && c.Scanned > 0 && c.Scanned < c.Clients:
			scanned++
		case c.Table == "agg_errors" && c.Type == 0 && c.Clients > 1:
			errAll++
		case c.Table == "agg_errors":
			errSum++
		}
		if c.Scope != "" {
			collectionCells++
		}
	}
	if dead == 0 || noScan == 0 || status[0] == 0 || status[1] == 0 || status[2] == 0 || scanned == 0 || errAll == 0 || errSum == 0 || collectionCells == 0 ||
		scanCells == 0 || sharedScans == 0 {
		t.Errorf("weak coverage: dead keys %d, clients without scan %d, list statuses %v, partly scanned cells %d, error cells %d/%d, collection cells %d, scan cells %d (%d shared)",
			dead, noScan, status, scanned, errAll, errSum, collectionCells, scanCells, sharedScans)
	}
}
