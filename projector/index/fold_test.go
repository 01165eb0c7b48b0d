package index_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/statepipe/statepipe/projector/index"
	"github.com/statepipe/statepipe/schema"
)

// TestIndexByHand checks a small history against cells computed by hand (which also checks
// the oracle), in every order of the first client's reports.
func TestIndexByHand(t *testing.T) {
	const e, f = int32(-2145124341), int32(-2147024894)
	ref := index.Ref{
		Catalog: map[string]index.Update{
			"A": {FirstSynced: 100},
			"B": {FirstSynced: 200},
			"X": {FirstSynced: 1, Expired: true}, // expired past any cleanup age
		},
		Lists:       map[string][]string{"L": {"A", "B", "C"}}, // C is not in the catalog
		Collections: map[string][]string{"G": {"c1"}},
	}
	m := func(serial uint64, tt schema.TopicType, id string, state, err int32, tm int64) schema.StateMessage {
		return schema.StateMessage{Serial: serial, Time: tm, TopicType: tt, TopicID: id, State: state, Error: err}
	}
	c1 := []*schema.Report{
		{Client: "c1", FullTypes: []schema.TopicType{500}, Messages: []schema.StateMessage{
			m(5, 500, "A", 2, 0, 1), m(3, 500, "B", 3, 0, 1), m(4, 402, "A", 11, e, 1)}},
		{Client: "c1", Messages: []schema.StateMessage{m(6, 501, "S", 3, 0, 150), m(7, 500, "C", 1, 0, 1), m(2, 500, "B", 1, 0, 1)}},
		// marker 8 removes B and C; 9 (not first) replaces A
		{Client: "c1", FullTypes: []schema.TopicType{500}, Messages: []schema.StateMessage{m(9, 500, "A", 3, 0, 1), m(8, 701, "", 0, 0, 1)}},
	}
	others := []*schema.Report{
		{Client: "c2", Messages: []schema.StateMessage{
			m(1, 500, "B", 1, 0, 1), m(2, 501, "S", 6, 0, 300), m(3, 402, "B", 5, e, 1), m(4, 301, "D", 6, e, 1), m(5, 300, "D", 2, f, 1),
			m(6, 501, "S2", 5, 0, 900)}}, // a failed scan is not a scan
		{Client: "c3", Messages: []schema.StateMessage{m(1, 701, "", 0, 0, 1)}},
		// the greatest serial sets the latest scan, not the latest time: 400, so A counts scanned
		{Client: "c4", Messages: []schema.StateMessage{m(10, 500, "A", 2, 0, 1), m(12, 501, "S", 6, 0, 400), m(11, 501, "S3", 3, 0, 700)}},
	}
	S := func(scope string, tt uint16, id string, state int16, clients, scanned int64) index.Cell {
		return index.Cell{Table: "agg_states", Scope: scope, Type: tt, Topic: id, State: state, Clients: clients, Scanned: scanned}
	}
	E := func(scope string, tt uint16, id string, err int32, clients int64) index.Cell {
		return index.Cell{Table: "agg_errors", Scope: scope, Type: tt, Topic: id, Error: err, Clients: clients}
	}
	L := func(scope, list string, status int16, clients int64) index.Cell {
		return index.Cell{Table: "agg_lists", Scope: scope, Topic: list, State: status, Clients: clients}
	}
	N := func(scope string, scan int64, clients int64) index.Cell {
		return index.Cell{Table: "agg_scans", Scope: scope, Scan: scan, Clients: clients}
	}
	want := map[index.Cell]bool{
		S("", 0, "", 0, 4, 0):    true,
		S("", 500, "A", 3, 1, 1): true, S("", 402, "A", 11, 1, 0): true, S("", 501, "S", 3, 1, 0): true, // c1
		S("", 500, "B", 1, 1, 1): true, S("", 501, "S", 6, 2, 0): true, S("", 402, "B", 5, 1, 0): true, // c2 (S 6: and c4)
		S("", 301, "D", 6, 1, 0): true, S("", 300, "D", 2, 1, 0): true, S("", 501, "S2", 5, 1, 0): true,
		S("", 500, "A", 2, 1, 1): true, S("", 501, "S3", 3, 1, 0): true, // c4
		N("", 150, 1): true, N("", 300, 1): true, N("", 400, 1): true, N("G", 150, 1): true, // c1, c2, c4; c3 never scanned
		E("", 402, "A", e, 1): true, E("", 402, "B", e, 1): true, E("", 301, "D", e, 1): true, E("", 0, "", e, 2): true,
		L("", "L", 0, 3): true, L("", "L", 2, 1): true, // c2: A inferred, B stated, C unknown
		L("", "", 0, 2): true, L("", "", 1, 1): true, L("", "", 2, 1): true,
		S("G", 0, "", 0, 1, 0): true, S("G", 500, "A", 3, 1, 1): true, S("G", 402, "A", 11, 1, 0): true, S("G", 501, "S", 3, 1, 0): true,
		E("G", 402, "A", e, 1): true, E("G", 0, "", e, 1): true,
		L("G", "L", 0, 1): true, L("G", "", 0, 1): true,
	}
	perms := [][]int{{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}}
	now := time.UnixMilli(1000)
	for _, perm := range perms {
		var history []*schema.Report
		for _, i := range perm {
			history = append(history, c1[i])
		}
		history = append(history, others...)
		checkCells(t, fmt.Sprintf("oracle, order %v", perm), oracle(buildModel(history), ref, now), want)
		for _, batch := range []int{1, len(history)} {
			x := index.New(cleanup)
			x.SetRef(ref, now)
			st := store{}
			for i, r := range history {
				x.Fold(0, int64(i), r)
				if (i+1)%batch == 0 {
					x.End()
					st.apply(t, x.Changed(index.Target{DB: "db"}))
				}
			}
			x.End()
			st.apply(t, x.Changed(index.Target{DB: "db"}))
			checkCells(t, fmt.Sprintf("index, order %v, batch %d", perm, batch), x.Cells(), want)
			checkCells(t, fmt.Sprintf("store, order %v, batch %d", perm, batch), st.sum(), want)
		}
	}
}

// TestEqualSerialLaterWins: of two messages of a key with the same serial, the later folded
// wins (rule 1), as in the store.
func TestEqualSerialLaterWins(t *testing.T) {
	x := index.New(cleanup)
	x.Fold(0, 0, &schema.Report{Client: "c", Messages: []schema.StateMessage{{Serial: 5, TopicType: 500, TopicID: "A", State: 2}}})
	x.Fold(0, 1, &schema.Report{Client: "c", Messages: []schema.StateMessage{{Serial: 5, TopicType: 500, TopicID: "A", State: 3}}})
	x.End()
	got := x.Cells()
	want := map[index.Cell]bool{
		{Table: "agg_states", Clients: 1}:                                  true,
		{Table: "agg_states", Type: 500, Topic: "A", State: 3, Clients: 1}: true,
	}
	checkCells(t, "cells", got, want)

	// The same for the latest scan (client_scans is a ReplacingMergeTree(serial) too): the
	// later of two successful scans with the same serial sets the scan time.
	x = index.New(cleanup)
	x.SetRef(index.Ref{Catalog: map[string]index.Update{"A": {FirstSynced: 100}}}, time.UnixMilli(1000))
	for i, tm := range []int64{50, 150} {
		x.Fold(0, int64(i), &schema.Report{Client: "c", Messages: []schema.StateMessage{
			{Serial: 5, Time: tm, TopicType: 501, TopicID: "S", State: 3}, {Serial: 1, TopicType: 500, TopicID: "A", State: 3}}})
	}
	x.End()
	got = x.Cells()
	want = map[index.Cell]bool{
		{Table: "agg_states", Clients: 1}:                                              true,
		{Table: "agg_states", Type: 501, Topic: "S", State: 3, Clients: 1}:             true,
		{Table: "agg_states", Type: 500, Topic: "A", State: 3, Clients: 1, Scanned: 1}: true,
		{Table: "agg_lists", Topic: "", State: 1, Clients: 1}:                          true,
		{Table: "agg_scans", Scan: 150, Clients: 1}:                                    true,
	}
	checkCells(t, "cells after two scans with one serial", got, want)
}

func TestLiveSerialsFindTheLiveKeyAtASerial(t *testing.T) {
	x := index.New(time.Hour)
	x.Fold(0, 1, &schema.Report{Client: "c", Messages: []schema.StateMessage{
		{Serial: 10, TopicType: 500, TopicID: "U-ONE", State: 2}, {Serial: 11, TopicType: 402, TopicID: "U-ONE", State: 11, Error: -5}}})
	x.End()
	live := x.LiveSerials("c")
	if k, ok := live[11]; !ok || k != (index.SerialKey{TopicType: 402, TopicID: "U-ONE", State: 11, Err: -5}) {
		t.Fatalf("serial 11: %+v %v", k, ok)
	}
	if _, ok := live[9]; ok || x.MaxSerial("c") != 11 {
		t.Errorf("serial 9 has no live key; the greatest is 11 (got %d)", x.MaxSerial("c"))
	}
	x.Fold(0, 2, &schema.Report{Client: "c", Messages: []schema.StateMessage{{Serial: 20, TopicType: 500, TopicID: "U-ONE", State: 3}}})
	x.End()
	if _, ok := x.LiveSerials("c")[10]; ok {
		t.Error("serial 10 is no longer live once U-ONE moved to 20")
	}
	if x.LiveSerials("other") != nil || x.MaxSerial("other") != 0 {
		t.Error("an unknown client has no serials")
	}
}
