package index_test

import (
	"fmt"
	"testing"

	"github.com/statepipe/statepipe/projector/index"
	"github.com/statepipe/statepipe/schema"
)

// BenchmarkFold folds one full report per client (1,000 clients × 300 updates, plus a scan)
// in batches of 100 reports, as the projector does: Fold each report, End, Changed. Every
// iteration is a new round (higher serials, other states), so each round replaces every key
// and rewrites the cells it moves. One op is a whole round of 301,000 messages.
func BenchmarkFold(b *testing.B) { benchmarkFold(b, false, false) }

// BenchmarkFoldDelta: after one full round, every op is a round of deltas — each client
// reports 30 of its 300 updates in another state (a rescan that found changes), 30,000
// messages per op. A delta should cost its own size, not the client's 300 keys.
func BenchmarkFoldDelta(b *testing.B) { benchmarkFold(b, true, false) }

// BenchmarkFoldRescan: as BenchmarkFoldDelta, but each delta also carries the rescan's own
// state message (topic 501, a newer successful scan), as a client that rescans and finds
// changes reports them: 31 messages per report. The new scan moves only the keys whose update
// was first synchronised between the two scans, so it too should cost the delta's size.
func BenchmarkFoldRescan(b *testing.B) { benchmarkFold(b, true, true) }

func benchmarkFold(b *testing.B, delta, rescan bool) {
	const clients, updates, batch, parts = 1000, 300, 100, 4
	ref := index.Ref{Catalog: map[string]index.Update{}, Lists: map[string][]string{}, Collections: map[string][]string{}}
	ids := make([]string, updates)
	for u := range ids {
		ids[u] = fmt.Sprintf("KB50%05d", u)
		ref.Catalog[ids[u]] = index.Update{FirstSynced: t0ms + int64(u)*minute}
	}
	for l := range 5 {
		ref.Lists[fmt.Sprintf("L%d", l)] = ids[l*50 : l*50+40]
	}
	reports := make([]*schema.Report, clients)
	deltas := make([]*schema.Report, clients)
	for c := range reports {
		name := fmt.Sprintf("9f1c2d3e-0000-4000-8000-%012d", c)
		if c%10 == 0 {
			ref.Collections["C1"] = append(ref.Collections["C1"], name)
		}
		r := &schema.Report{V: schema.Version, Client: name, Site: "P01", FullTypes: []schema.TopicType{500}}
		for _, id := range ids {
			r.Messages = append(r.Messages, schema.StateMessage{TopicType: 500, TopicID: id})
		}
		r.Messages = append(r.Messages, schema.StateMessage{TopicType: 501, TopicID: "S0", State: 3})
		reports[c] = r
		d := &schema.Report{V: schema.Version, Client: name, Site: "P01"}
		for u := 0; u < 30; u++ {
			d.Messages = append(d.Messages, schema.StateMessage{TopicType: 500, TopicID: ids[(c+u*10)%updates]})
		}
		if rescan {
			d.Messages = append(d.Messages, schema.StateMessage{TopicType: 501, TopicID: "S0", State: 3})
		}
		deltas[c] = d
	}
	msgs := clients * (updates + 1)

	x := index.New(cleanup)
	x.SetRef(ref, t0)
	offsets := make([]int64, parts)
	round := func(n int) {
		for c, r := range reports {
			for i := range r.Messages {
				m := &r.Messages[i]
				m.Serial = uint64(n*(updates+1) + i + 1)
				m.Time = t0ms + int64(m.Serial)*minute
				if m.TopicType == 500 {
					m.State = int32((c + i + n) % 4)
				}
			}
		}
	}
	deltaRound := func(n int) {
		for c, r := range deltas {
			for i := range r.Messages {
				m := &r.Messages[i]
				m.Serial = uint64((n+1)*(updates+1) + i + 1)
				if m.TopicType == 500 {
					m.State = int32((c + i + n + 1) % 4)
				} else {
					m.Time = t0ms + int64(m.Serial)*minute // the rescan: a newer scan
				}
			}
		}
	}
	fold := func(rs []*schema.Report) {
		for i := 0; i < clients; i += batch {
			for c := i; c < i+batch; c++ {
				p := int32(c % parts)
				x.Fold(p, offsets[p], rs[c])
				offsets[p]++
			}
			x.End()
			_ = x.Changed(index.Target{DB: "db"})
		}
	}
	if delta {
		round(0)
		fold(reports)
		msgs = clients * len(deltas[0].Messages)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		b.StopTimer()
		if delta {
			deltaRound(n)
		} else {
			round(n)
		}
		b.StartTimer()
		if delta {
			fold(deltas)
		} else {
			fold(reports)
		}
	}
	b.ReportMetric(float64(msgs)*float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
