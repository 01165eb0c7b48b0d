package projector

import (
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"testing"

	"github.com/statepipe/statepipe/internal/chdb"
	"github.com/statepipe/statepipe/schema"
)

// openStore opens chDB in a temporary directory (one data path per process: the tests that
// need it share this one test's store), or skips without the library unless
// STATEPIPE_REQUIRE_CHDB is set.
func openStore(t *testing.T, db string) *chdb.Store {
	t.Helper()
	st, err := chdb.New(chdb.Config{Path: t.TempDir()})
	if errors.Is(err, chdb.ErrLibraryNotFound) && os.Getenv("STATEPIPE_REQUIRE_CHDB") == "" {
		t.Skipf("chDB not installed: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if _, err := schema.Migrate(context.Background(), st, db); err != nil {
		t.Fatal(err)
	}
	return st
}

// Ownership on a real store: a member whose generation ended before it recorded its claim
// records nothing; the next generation claims every partition under a new epoch and writes
// the cells of what it folds under it; a later process (a restart) restores its index from
// the store and claims again under a greater epoch, with the same counts.
func TestClaimsFenceThePartitions(t *testing.T) {
	const db = "statepipe_claims"
	st := openStore(t, db)
	ctx := context.Background()
	fences := func() [][]any {
		t.Helper()
		res, err := st.Query(ctx, "SELECT partition, epoch, generation, member FROM "+db+".agg_fences ORDER BY partition, epoch")
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res.Rows {
			r[1] = schema.ToUint64(r[1])
		}
		return res.Rows
	}
	// pc-a's one update, counted in partition 0's cells of epoch (readers' view: v_agg_states).
	counted := func(epoch uint64) string {
		res, err := st.Query(ctx, fmt.Sprintf("SELECT sum(clients) FROM %s.agg_states FINAL WHERE partition = 0 AND epoch = %d AND scope = '' AND topic_id = 'KB1'", db, epoch))
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprint(res.Rows[0][0])
	}
	tune := func(l *loop, c *Config, p *Params) { c.Database, p.Store, p.Reader = db, st, st }

	j := &journal{}
	ended, g2 := newGeneration(1, j, 0, 1), newGeneration(2, j, 0, 1)
	ended.alive = fmt.Errorf("heartbeat: %w", ErrGenerationEnded)
	g2.recs <- reportRecord(t, testTopic, 0, 0, "pc-a", true, 1)
	l := startLoop(t, tune, ended, g2)
	eventually(t, committed(g2, 1))
	e2 := nextEpoch(0, 2)
	want := [][]any{{int64(0), e2, int64(2), "member-1"}, {int64(1), e2, int64(2), "member-1"}}
	if got := fences(); !reflect.DeepEqual(got, want) {
		t.Errorf("fences %v, want only generation 2's claims %v", got, want)
	}
	if got := counted(e2); got != "1" {
		t.Errorf("pc-a counted %s times under epoch %#x, want 1", got, e2)
	}
	if got := counterValue(t, l.pr.m.claims); got != 2 {
		t.Errorf("partition_claims_total %v, want 2", got)
	}
	if err := l.stop(t); err != nil {
		t.Fatal(err)
	}

	// A restart: a new process in generation 5, which holds partition 0 only.
	g5 := newGeneration(5, &journal{}, 0)
	l = startLoop(t, tune, g5)
	e5 := nextEpoch(e2, 5)
	eventually(t, func() string {
		if got := fences(); len(got) != 3 || !reflect.DeepEqual(got[1], []any{int64(0), e5, int64(5), "member-1"}) {
			return fmt.Sprintf("fences %v: want partition 0 claimed again under %#x", got, e5)
		}
		return ""
	})
	if got := counted(e5); got != "1" {
		t.Errorf("after the restart pc-a counted %s times under epoch %#x, want 1 (restored, rewritten)", got, e5)
	}
}
