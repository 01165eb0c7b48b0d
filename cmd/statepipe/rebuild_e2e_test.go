package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/statepipe/statepipe/internal/chdb"
	"github.com/statepipe/statepipe/projector"
	"github.com/statepipe/statepipe/report"
	"github.com/statepipe/statepipe/schema"
)

// snapshot reads every projection's folded values (not delivery metadata such as which of
// two identical deliveries' acceptance time a row kept).
func snapshot(t *testing.T, s *testSite) map[string]string {
	t.Helper()
	return snapshotWith(t, database(s.code), func(q string) ([][]any, bool) {
		res, code := s.sql(q)
		return res.Rows, code == 200
	})
}

// snapshotWith reads every projection of db (q runs one query).
func snapshotWith(t *testing.T, db string, run func(string) ([][]any, bool)) map[string]string {
	t.Helper()
	out := map[string]string{}
	for name, q := range map[string]string{
		"current_state": "SELECT topic_type, topic_id, client, serial, state, error, time FROM " + db + ".current_state FINAL ORDER BY ALL",
		"full_reports":  "SELECT client, topic_type, max(serial) FROM " + db + ".full_reports GROUP BY ALL ORDER BY ALL",
		"clients":       "SELECT client, max(last_serial) FROM " + db + ".clients GROUP BY ALL ORDER BY ALL",
		"scan_history":  "SELECT DISTINCT client, serial, source, state, time FROM " + db + ".scan_history ORDER BY ALL",
		"v_live_state":  "SELECT * EXCEPT accepted_at FROM " + db + ".v_live_state ORDER BY ALL",
		"client_scans":  "SELECT client, serial, time FROM " + db + ".client_scans FINAL ORDER BY ALL",
		"partitions":    "SELECT client, max(partition) FROM " + db + ".clients GROUP BY ALL ORDER BY ALL",
		"v_agg_states":  "SELECT * FROM " + db + ".v_agg_states WHERE clients != 0 OR scanned != 0 ORDER BY ALL",
		"v_agg_errors":  "SELECT * FROM " + db + ".v_agg_errors WHERE clients != 0 ORDER BY ALL",
		"v_agg_lists":   "SELECT * FROM " + db + ".v_agg_lists WHERE clients != 0 ORDER BY ALL",
	} {
		rows, ok := run(q)
		if !ok {
			t.Fatalf("snapshot %s failed", name)
		}
		out[name] = fmt.Sprint(rows)
	}
	return out
}

func TestRebuildFromTheRawLogEqualsLiveTables(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	s := startSite(t, siteOpts{data: data})
	ctx := context.Background()
	r := rand.New(rand.NewPCG(7, 7))
	distinct := 0
	for c := 0; c < 30; c++ {
		id := fmt.Sprintf("pc-%02d", c)
		serial := uint64(0)
		next := func() uint64 { serial++; return serial }
		var reps []*schema.Report
		for k := 0; k < 4; k++ {
			rep := &schema.Report{V: 1, Client: id, Site: s.code}
			if k%2 == 0 {
				rep.FullTypes = []schema.TopicType{500}
			}
			for u := 0; u < 6; u++ {
				if r.IntN(3) == 0 {
					continue
				}
				rep.Messages = append(rep.Messages, msg(next(), fmt.Sprintf("KB%d", u), int32(r.IntN(4))))
			}
			rep.Messages = append(rep.Messages, schema.StateMessage{Serial: next(), Time: 1764100000000 + int64(k), TopicType: 501, TopicID: "wsus", State: int32(3 + 2*r.IntN(2))})
			distinct += len(rep.Messages)
			reps = append(reps, rep)
		}
		r.Shuffle(len(reps), func(i, j int) { reps[i], reps[j] = reps[j], reps[i] })
		for _, rep := range reps {
			for n := 0; n <= r.IntN(2); n++ { // sometimes twice
				if _, err := s.client(id).Send(ctx, rep); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	eventually(t, func() string {
		res, _ := s.sql("SELECT count() FROM " + database(s.code) + ".state_messages FINAL")
		if n := int(res.Rows[0][0].(float64)); n != distinct {
			return fmt.Sprintf("raw log has %d of %d messages", n, distinct)
		}
		return ""
	})
	s.waitFolded() // the derived tables and aggregates are stored before the commit
	before := snapshot(t, s)
	var repBefore report.Compliance
	s.get("/v1/reports/compliance", &repBefore)
	s.stop()

	st, err := chdb.New(chdb.Config{Path: chdbDir})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	stats, err := projector.Rebuild(ctx, st, database(s.code), 7*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Messages != int64(distinct) {
		t.Errorf("rebuild read %d messages, want %d", stats.Messages, distinct)
	}
	// The rebuild alone (before any projector restores its index) re-derives the aggregates.
	rebuilt := snapshotWith(t, database(s.code), func(q string) ([][]any, bool) {
		res, err := st.Query(ctx, q)
		if err != nil {
			t.Log(err)
			return nil, false
		}
		return res.Rows, true
	})
	for name := range before {
		if before[name] != rebuilt[name] {
			t.Errorf("%s differs right after rebuild:\n before %s\n after  %s", name, before[name], rebuilt[name])
		}
	}
	s2 := startSite(t, siteOpts{code: s.code, data: data})
	after := snapshot(t, s2)
	for name := range before {
		if before[name] != after[name] {
			t.Errorf("%s differs after rebuild:\n before %s\n after  %s", name, before[name], after[name])
		}
	}
	var repAfter report.Compliance
	s2.get("/v1/reports/compliance", &repAfter)
	if !reflect.DeepEqual(repBefore.Updates, repAfter.Updates) || repBefore.Computers != repAfter.Computers {
		t.Errorf("compliance differs after rebuild:\n before %+v\n after  %+v", repBefore, repAfter)
	}
}
