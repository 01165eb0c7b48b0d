package index_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/statepipe/statepipe/projector/index"
	"github.com/statepipe/statepipe/schema"
)

// The randomized world: clients, reference data and a history of reports to fold.

type world struct {
	clients    []string
	part       map[string]int32
	deliveries []*schema.Report // in delivery order: shuffled, with redeliveries
	ref, ref2  index.Ref        // before and after the mid-stream change
	now, now2  time.Time        // before and when the expiry of update 4 reaches the cleanup age
}

func upd(i int) string { return fmt.Sprintf("KB50%05d", i) }

func cloneRef(r index.Ref) index.Ref {
	c := index.Ref{Catalog: map[string]index.Update{}, Lists: map[string][]string{}, Collections: map[string][]string{}}
	for k, v := range r.Catalog {
		c.Catalog[k] = v
	}
	for k, v := range r.Lists {
		c.Lists[k] = slices.Clone(v)
	}
	for k, v := range r.Collections {
		c.Collections[k] = slices.Clone(v)
	}
	return c
}

func cloneReport(r *schema.Report) *schema.Report {
	c := *r
	c.FullTypes = slices.Clone(r.FullTypes)
	c.Messages = slices.Clone(r.Messages)
	return &c
}

var errPool = []int32{-2145124341, -2147024894, -2145107924, -2146889721}

func genWorld(t testing.TB, seed uint64, nClients int) *world {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	const nUpdates = 30
	w := &world{part: map[string]int32{}}
	w.now = t0.Add(48 * time.Hour)
	w.now2 = w.now.Add(20 * 24 * time.Hour) // update 4 expired at now-10d: exactly the cleanup age
	day := int64(24 * time.Hour / time.Millisecond)
	nowms := w.now.UnixMilli()

	// Catalog: updates 0–24 (25–29 are reported but unknown to the catalog) and two updates no
	// client reports. 3 and 5 are expired past the cleanup age, 7 exactly at it, 4 reaches it at
	// now2, 6 does not.
	cat := map[string]index.Update{}
	for i := range 25 {
		cat[upd(i)] = index.Update{FirstSynced: t0ms + int64(rng.IntN(400))*minute}
	}
	cat["KB-catalog-only-1"] = index.Update{FirstSynced: t0ms + 10*minute}
	cat["KB-catalog-only-2"] = index.Update{FirstSynced: t0ms + 500*minute}
	cat[upd(3)] = index.Update{FirstSynced: cat[upd(3)].FirstSynced, Expired: true, ExpiredAt: nowms - 40*day}
	cat[upd(4)] = index.Update{FirstSynced: cat[upd(4)].FirstSynced, Expired: true, ExpiredAt: nowms - 10*day}
	cat[upd(5)] = index.Update{FirstSynced: cat[upd(5)].FirstSynced, Expired: true}
	cat[upd(6)] = index.Update{FirstSynced: cat[upd(6)].FirstSynced, Expired: true, ExpiredAt: nowms - day}
	cat[upd(7)] = index.Update{FirstSynced: cat[upd(7)].FirstSynced, Expired: true, ExpiredAt: w.now.Add(-cleanup).UnixMilli()}

	for i := range nClients {
		name := fmt.Sprintf("9f1c2d3e-0000-4000-8000-%012d", i)
		w.clients = append(w.clients, name)
		w.part[name] = int32(i % 4)
	}
	pick := func(f func(i int) bool) []string {
		var out []string
		for i, c := range w.clients {
			if f(i) {
				out = append(out, c)
			}
		}
		return out
	}
	w.ref = index.Ref{
		Catalog: cat,
		Lists: map[string][]string{
			"L1": {upd(0), upd(1), upd(2), upd(3), upd(25), upd(1), upd(8)}, // an excluded, a missing, a duplicate
			"L2": {upd(10), upd(11), upd(12), upd(13), upd(14)},
			"L3": {upd(26), upd(27)},         // not in the catalog: never inferred
			"L4": {upd(3), upd(5)},           // only excluded updates
			"L5": {upd(4), upd(15), upd(16)}, // 4 leaves it at now2
			"L6": {upd(20), "KB-catalog-only-1", upd(6), upd(7)},
		},
		Collections: map[string][]string{
			"C1":      append(pick(func(i int) bool { return i%3 == 0 }), "ghost-client", w.clients[0]),
			"C2":      pick(func(i int) bool { return i%7 == 0 }),
			"C3":      pick(func(i int) bool { return i >= 50 && i < 80 }),
			"C-empty": {},
		},
	}
	w.ref2 = cloneRef(w.ref)
	w.ref2.Lists["L1"] = []string{upd(0), upd(1), upd(2), upd(3), upd(25), upd(9)}
	delete(w.ref2.Lists, "L2")
	w.ref2.Lists["L7"] = []string{upd(17), upd(18)}
	w.ref2.Collections["C1"] = pick(func(i int) bool { return i%4 == 0 })
	w.ref2.Collections["C4"] = pick(func(i int) bool { return i < 20 })
	u1 := w.ref2.Catalog[upd(1)]
	u1.FirstSynced += 100 * minute
	w.ref2.Catalog[upd(1)] = u1
	w.ref2.Catalog[upd(25)] = index.Update{FirstSynced: t0ms + 50*minute}
	delete(w.ref2.Catalog, upd(24))

	// Reports.
	var reports []*schema.Report
	for _, name := range w.clients {
		var updates, deps, srcs []string
		for i := range nUpdates {
			if rng.IntN(3) != 0 {
				updates = append(updates, upd(i))
			}
		}
		for i := range 6 {
			if rng.IntN(2) == 0 {
				deps = append(deps, fmt.Sprintf("D%d", i))
			}
		}
		srcs = []string{"S0"}
		if rng.IntN(3) == 0 {
			srcs = append(srcs, "S1")
		}
		universe := map[schema.TopicType][]string{500: updates, 402: updates, 300: deps, 301: deps, 302: deps, 501: srcs}
		msg := func(tt schema.TopicType, id string) schema.StateMessage {
			m := schema.StateMessage{TopicType: tt, TopicID: id}
			switch tt {
			case 500:
				m.State = []int32{3, 3, 3, 3, 3, 1, 1, 1, 2, 2, 0}[rng.IntN(11)]
				if rng.IntN(10) == 0 {
					m.Error = errPool[rng.IntN(len(errPool))] // not an enforcement error
				}
			case 402, 301:
				m.State = int32(rng.IntN(tt.StateCount()))
				if rng.IntN(10) < 4 {
					m.Error = errPool[rng.IntN(len(errPool))]
				}
			case 300:
				m.State = int32(rng.IntN(4))
				if rng.IntN(10) == 0 {
					m.Error = errPool[rng.IntN(len(errPool))] // not an enforcement type
				}
			case 501:
				m.State = []int32{3, 6, 5, 2, 0}[rng.IntN(5)]
				if m.State == 5 || m.State == 6 || rng.IntN(10) == 0 {
					m.Error = errPool[rng.IntN(len(errPool))] // a scan error
				}
			default:
				m.State = int32(rng.IntN(tt.StateCount()))
			}
			return m
		}
		serial := uint64(1 + rng.IntN(150))
		nReports := 3 + rng.IntN(6)
		for r := range nReports {
			rep := &schema.Report{V: schema.Version, Client: name, Site: "P01"}
			var msgs []schema.StateMessage
			if (r == 0 && rng.IntN(10) < 7) || rng.IntN(4) == 0 {
				for _, tt := range keyedTypes {
					if rng.IntN(10) < 6 {
						rep.FullTypes = append(rep.FullTypes, tt)
						if rng.IntN(12) == 0 {
							continue // a full report with no key of this type
						}
						for _, id := range universe[tt] {
							if rng.IntN(10) < 8 {
								msgs = append(msgs, msg(tt, id))
							}
						}
					}
				}
			}
			for range rng.IntN(6) {
				tt := []schema.TopicType{500, 500, 500, 402, 402, 300, 301, 302}[rng.IntN(8)]
				ids := universe[tt]
				if len(ids) == 0 {
					continue
				}
				msgs = append(msgs, msg(tt, ids[rng.IntN(len(ids))]))
			}
			if rng.IntN(3) == 0 {
				msgs = append(msgs, msg(501, srcs[rng.IntN(len(srcs))]))
			}
			if rng.IntN(5) == 0 {
				msgs = append(msgs, schema.StateMessage{TopicType: 701})
			}
			if len(msgs) == 0 {
				msgs = append(msgs, schema.StateMessage{TopicType: 701})
			}
			for i := range msgs {
				serial += 1 + uint64(rng.IntN(3))
				msgs[i].Serial = serial
				msgs[i].Time = t0ms + int64(serial)*minute
				if msgs[i].TopicType == 501 && rng.IntN(3) == 0 {
					// A client's clock is shown, never used to order: a later scan may carry an
					// earlier time, so that a newer scan also takes keys out of "scanned after".
					msgs[i].Time -= int64(rng.IntN(400)) * minute
				}
			}
			rng.Shuffle(len(msgs), func(i, j int) { msgs[i], msgs[j] = msgs[j], msgs[i] })
			rep.Messages = msgs
			if err := rep.Validate(schema.DefaultLimits); err != nil {
				t.Fatalf("generated an invalid report: %v", err)
			}
			reports = append(reports, rep)
		}
	}
	// Redeliveries: whole reports (same serials, same content) and parts of reports as deltas.
	for _, r := range reports {
		w.deliveries = append(w.deliveries, r)
		switch rng.IntN(20) {
		case 0, 1, 2:
			w.deliveries = append(w.deliveries, cloneReport(r))
		case 3, 4:
			p := cloneReport(r)
			p.FullTypes = nil
			p.Messages = slices.DeleteFunc(p.Messages, func(schema.StateMessage) bool { return rng.IntN(2) == 0 })
			if len(p.Messages) > 0 {
				w.deliveries = append(w.deliveries, p)
			}
		}
	}
	rng.Shuffle(len(w.deliveries), func(i, j int) { w.deliveries[i], w.deliveries[j] = w.deliveries[j], w.deliveries[i] })
	return w
}

func batches(rng *rand.Rand, rs []*schema.Report, maxSize int) [][]*schema.Report {
	var out [][]*schema.Report
	for len(rs) > 0 {
		n := min(len(rs), 1+rng.IntN(maxSize))
		out = append(out, rs[:n])
		rs = rs[n:]
	}
	return out
}

// folder folds batches into an index with per-partition offsets.
type folder struct {
	x       *index.Index
	w       *world
	offsets map[int32]int64
}

func (f *folder) fold(b []*schema.Report) {
	for _, r := range b {
		p := f.w.part[r.Client]
		f.x.Fold(p, f.offsets[p], r)
		f.offsets[p]++
	}
	f.x.End()
}
