package main

import (
	"context"
	"fmt"
	"slices"
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
	t.Parallel()
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
	if n := len(second); second[0].Table() != db+".batches_begun" || second[1].Table() != db+".raw_reports" || second[n-1].Table() != db+".offsets" {
		t.Fatalf("a batch must insert batches_begun first, then the raw log, and offsets last: %s, %s … %s", second[0].Table(), second[1].Table(), second[n-1].Table())
	}
	// Offsets 5..9: batches_begun and the raw log are in before the restore starts; the rest
	// lands while it reads — all of it (the batch finished during the restore), or all but the
	// offsets row (the batch is still in flight when the restore ends).
	for k, finished := range []bool{true, false} {
		b := second
		if k > 0 {
			b = batch(int64(5+5*k), 3)
		}
		rest := b[2:]
		if !finished {
			rest = b[2 : len(b)-1]
		}
		insert(b[:2])
		rd := &hookedReader{Reader: st, match: "agg_states", hook: func() { insert(rest) }}
		x, err := projector.RestoreIndex(ctx, rd, db, 7*24*time.Hour, time.Now(), true)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(x.Torn(), 0) || !x.NeedsRestore(0, x.Next(0)) {
			t.Fatalf("finished %v: the restore read some of a batch but did not mark partition 0 torn (next %d, torn %v)", finished, x.Next(0), x.Torn())
		}
		insert(b[len(b)-1:])
	}
	// Restored again once nothing moves, it is whole: five clients Installed.
	x, err := projector.RestoreIndex(ctx, st, db, 7*24*time.Hour, time.Now(), true)
	if err != nil {
		t.Fatal(err)
	}
	if x.NeedsRestore(0, 15) || x.Next(0) != 15 || len(x.Torn()) > 0 {
		t.Fatalf("a quiet restore must be current: next %d", x.Next(0))
	}
	if serial, state, _, ok := x.State("pc-4", schema.TopicUpdateCompliance, "KB1"); !ok || state != 3 || serial != 11 {
		t.Errorf("pc-4 KB1: serial %d state %d live %v, want serial 11 Installed", serial, state, ok)
	}
}
