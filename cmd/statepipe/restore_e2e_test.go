package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/statepipe/statepipe/internal/chdb"
	"github.com/statepipe/statepipe/projector"
	"github.com/statepipe/statepipe/projector/fold"
	"github.com/statepipe/statepipe/schema"
)

// hookedReader runs hook once, just before the first query containing match.
type hookedReader struct {
	projector.Reader
	match string
	hook  func()
}

func (h *hookedReader) Each(ctx context.Context, q string, fn func([]any) error) error {
	if h.hook != nil && strings.Contains(q, h.match) {
		h.hook()
		h.hook = nil
	}
	return h.Reader.Each(ctx, q, fn)
}

// A restore that reads the store while another projector inserts a batch must know it missed
// part of it (the multi-member failure): the raw log is a batch's first insert, so a restore
// that took "how far was this partition folded" from it would hold the batch's offsets without
// its states. The batch's offsets row is its last insert; a partition whose offsets moved
// during the restore is torn and restored again at its next record.
func TestRestoreDuringAnotherMembersBatchIsTorn(t *testing.T) {
	requireChdb(t)
	st, err := chdb.New(chdb.Config{Path: chdbDir})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	db := fmt.Sprintf("restore_torn_%d", time.Now().UnixNano())
	if _, err := schema.Migrate(ctx, st, db); err != nil {
		t.Fatal(err)
	}
	batch := func(from int64, state int32) []schema.Rows {
		b := fold.NewBatch(db)
		for i := range int64(5) {
			off := from + i
			b.Processed(0, off)
			b.Add(fold.Record{Partition: 0, Offset: off, AcceptedAt: 1, Report: &schema.Report{V: 1, Client: fmt.Sprint("pc-", i), Site: "X",
				Messages: []schema.StateMessage{{Serial: uint64(from + 1), Time: 1, TopicType: schema.TopicUpdateCompliance, TopicID: "KB1", State: state}}}})
		}
		return b.Tables()
	}
	insert := func(rows []schema.Rows) {
		for _, r := range rows {
			if err := st.Insert(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
	}
	insert(batch(0, 2)) // offsets 0..4: five clients Required
	second := batch(5, 3)
	insert(second[:1]) // offsets 5..9: the raw log is in …
	if second[0].Table() != db+".state_messages" || second[len(second)-1].Table() != db+".offsets" {
		t.Fatalf("a batch must insert the raw log first and the offsets last: %s … %s", second[0].Table(), second[len(second)-1].Table())
	}
	rd := &hookedReader{Reader: st, match: "agg_states", hook: func() { insert(second[1:]) }} // … the rest lands mid-restore
	x, err := projector.RestoreIndex(ctx, rd, db, 7*24*time.Hour, time.Now(), true)
	if err != nil {
		t.Fatal(err)
	}
	if !x.NeedsRestore(0, 10) {
		t.Fatalf("the restore read the states before the second batch but did not mark partition 0 torn (next %d)", x.Next(0))
	}
	// Restored again once nothing moves, it is whole: five clients Installed.
	x, err = projector.RestoreIndex(ctx, st, db, 7*24*time.Hour, time.Now(), true)
	if err != nil {
		t.Fatal(err)
	}
	if x.NeedsRestore(0, 10) || x.Next(0) != 10 {
		t.Fatalf("a quiet restore must be current: next %d", x.Next(0))
	}
	if serial, state, _, ok := x.State("pc-4", schema.TopicUpdateCompliance, "KB1"); !ok || state != 3 || serial != 6 {
		t.Errorf("pc-4 KB1: serial %d state %d live %v, want serial 6 Installed", serial, state, ok)
	}
}
