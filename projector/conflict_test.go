package projector

import (
	"fmt"
	"testing"
	"time"

	"github.com/statepipe/statepipe/projector/fold"
	"github.com/statepipe/statepipe/projector/index"
	"github.com/statepipe/statepipe/schema"
)

// conflictFixture is a projector whose index holds one client with n live keys, folded from
// a full report (and, with moved, a second one that moved every key to a greater serial).
func conflictFixture(n int, moved bool) (*Projector, *schema.Report) {
	pr := &Projector{idx: index.New(time.Hour), liveSerials: map[string]map[uint64]index.SerialKey{}}
	r := &schema.Report{V: 1, Client: "c", Site: "P01", FullTypes: []schema.TopicType{500}}
	for i := 0; i < n; i++ {
		r.Messages = append(r.Messages, schema.StateMessage{Serial: uint64(i + 1), Time: 1, TopicType: 500, TopicID: fmt.Sprint("KB", i), State: 2})
	}
	pr.idx.Fold(0, 1, r)
	if moved {
		next := &schema.Report{V: 1, Client: "c", Site: "P01", FullTypes: []schema.TopicType{500}}
		for i := 0; i < n; i++ {
			next.Messages = append(next.Messages, schema.StateMessage{Serial: uint64(n + i + 1), Time: 2, TopicType: 500, TopicID: fmt.Sprint("KB", i), State: 3})
		}
		pr.idx.Fold(0, 2, next)
	}
	pr.idx.End()
	return pr, r
}

func TestConflictOfReportsSentAgain(t *testing.T) {
	for _, moved := range []bool{false, true} {
		pr, r := conflictFixture(100, moved)
		if err := pr.conflict(fold.NewBatch("db"), r); err != nil {
			t.Errorf("moved %v: the same report again is a duplicate, not a conflict: %v", moved, err)
		}
		other := *r
		other.Messages = append([]schema.StateMessage(nil), r.Messages...)
		other.Messages[7].TopicID = "KB-OTHER" // serial 8 used for another update
		err := pr.conflict(fold.NewBatch("db"), &other)
		if moved && err != nil {
			t.Errorf("a reuse of a serial whose message was superseded is outside the window: %v", err)
		}
		if !moved && err == nil {
			t.Error("serial 8 reused for another update while KB7 is live at it: want a conflict")
		}
	}
}

// BenchmarkConflictOfAReportSentAgain: a 30,000-key full report sent again, against a client
// whose keys moved on (the case that looked every message up among all the client's keys: 5.8 s
// a report before the per-batch index of live serials).
func BenchmarkConflictOfAReportSentAgain(b *testing.B) {
	pr, r := conflictFixture(30000, true)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		clear(pr.liveSerials) // a new batch each time: the index is built once per client and batch
		if err := pr.conflict(fold.NewBatch("db"), r); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(r.Messages)*b.N)/b.Elapsed().Seconds(), "msgs/s")
}
