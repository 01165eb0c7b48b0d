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
	"math"
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

// ---------------------------------------------------------------------------------------
// Oracle.

type okey struct {
	tt schema.TopicType
	id string
}

// oclient is what the history says of one client: the greatest-serial message of every key
// ever reported (live or not), the greatest marker per type and the latest successful scan.
type oclient struct {
	markers map[schema.TopicType]uint64
	keys    map[okey]schema.StateMessage
	scan    *schema.StateMessage
}

func (c *oclient) live(k okey) (schema.StateMessage, bool) {
	m, ok := c.keys[k]
	return m, ok && m.Serial >= c.markers[k.tt]
}

func (c *oclient) scanTime() int64 {
	if c.scan == nil {
		return 0
	}
	return c.scan.Time
}

func isKeyed(tt schema.TopicType) bool { return slices.Contains(keyedTypes, tt) }

// buildModel applies rules 1–3 to the history, in fold order.
func buildModel(history []*schema.Report) map[string]*oclient {
	m := map[string]*oclient{}
	addToModel(m, history)
	return m
}

// addToModel applies rules 1–3 to more of the history.
func addToModel(m map[string]*oclient, history []*schema.Report) {
	for _, r := range history {
		c := m[r.Client]
		if c == nil {
			c = &oclient{markers: map[schema.TopicType]uint64{}, keys: map[okey]schema.StateMessage{}}
			m[r.Client] = c
		}
		if len(r.FullTypes) > 0 {
			low := uint64(math.MaxUint64)
			for _, msg := range r.Messages {
				low = min(low, msg.Serial)
			}
			for _, t := range r.FullTypes {
				c.markers[t] = max(c.markers[t], low)
			}
		}
		for _, msg := range r.Messages {
			if msg.TopicType == 501 && (msg.State == 3 || msg.State == 6) && (c.scan == nil || msg.Serial >= c.scan.Serial) {
				s := msg
				c.scan = &s
			}
			if isKeyed(msg.TopicType) {
				k := okey{msg.TopicType, msg.TopicID}
				if old, ok := c.keys[k]; !ok || msg.Serial >= old.Serial {
					c.keys[k] = msg
				}
			}
		}
	}
}

type ckey struct {
	table, scope, topic string
	tt                  uint16
	state               int16
	err                 int32
	scan                int64 // agg_scans: the latest successful scan, Unix ms
}

func (k ckey) cell(clients, scanned int64) index.Cell {
	return index.Cell{Table: k.table, Scope: k.scope, Topic: k.topic, Type: k.tt, State: k.state, Error: k.err, Scan: k.scan, Clients: clients, Scanned: scanned}
}

// oracleLists returns the update lists at now (rule 5): every Ref list and, when the catalog
// is not empty, the catalog list; updates expired past the cleanup age are left out (a list
// left empty is returned empty: the oracle gives it no cells).
func oracleLists(ref index.Ref, now time.Time) map[string]map[string]bool {
	cut := now.Add(-cleanup).UnixMilli()
	excluded := func(u string) bool {
		e, ok := ref.Catalog[u]
		return ok && e.Expired && e.ExpiredAt <= cut
	}
	lists := map[string]map[string]bool{}
	for id, us := range ref.Lists {
		set := map[string]bool{}
		for _, u := range us {
			if !excluded(u) {
				set[u] = true
			}
		}
		lists[id] = set
	}
	if len(ref.Catalog) > 0 {
		set := map[string]bool{}
		for u := range ref.Catalog {
			if !excluded(u) {
				set[u] = true
			}
		}
		lists[index.CatalogList] = set
	}
	return lists
}

// compliance is rule 4: the stated state 1–3 of a live 500 key, else Not required inferred
// from a scan after the catalog update's first synchronisation, else Unknown.
func compliance(c *oclient, ref index.Ref, u string) int32 {
	if m, ok := c.live(okey{500, u}); ok && m.State >= 1 && m.State <= 3 {
		return m.State
	}
	if e, ok := ref.Catalog[u]; ok && c.scanTime() > e.FirstSynced {
		return 1
	}
	return 0
}

// oracle computes every non-zero aggregate cell from scratch.
func oracle(model map[string]*oclient, ref index.Ref, now time.Time) map[index.Cell]bool {
	type val struct{ clients, scanned int64 }
	cells := map[ckey]*val{}
	add := func(k ckey, scanned int64) {
		v := cells[k]
		if v == nil {
			v = &val{}
			cells[k] = v
		}
		v.clients++
		v.scanned += scanned
	}
	member := map[string]map[string]bool{}
	for col, ms := range ref.Collections {
		for _, m := range ms {
			if member[m] == nil {
				member[m] = map[string]bool{}
			}
			member[m][col] = true
		}
	}
	lists := oracleLists(ref, now)
	for name, c := range model {
		scopes := []string{""}
		for col := range member[name] {
			scopes = append(scopes, col)
		}
		for _, s := range scopes {
			add(ckey{table: "agg_states", scope: s}, 0)
			// agg_scans: clients per scope by the time of their latest successful scan (the
			// greatest-serial 501 of state 3 or 6); a client that never scanned is in no cell.
			if c.scan != nil {
				add(ckey{table: "agg_scans", scope: s, scan: c.scan.Time}, 0)
			}
		}
		errs := map[int32]bool{}
		for k := range c.keys {
			m, live := c.live(k)
			if !live {
				continue
			}
			var scanned int64
			if k.tt == 500 && m.State >= 1 && m.State <= 3 {
				if e, ok := ref.Catalog[k.id]; ok && c.scanTime() > e.FirstSynced {
					scanned = 1
				}
			}
			for _, s := range scopes {
				add(ckey{table: "agg_states", scope: s, topic: k.id, tt: uint16(k.tt), state: int16(m.State)}, scanned)
			}
			if (k.tt == 402 || k.tt == 301) && m.Error != 0 {
				errs[m.Error] = true
				for _, s := range scopes {
					add(ckey{table: "agg_errors", scope: s, topic: k.id, tt: uint16(k.tt), err: m.Error}, 0)
				}
			}
		}
		for e := range errs {
			for _, s := range scopes {
				add(ckey{table: "agg_errors", scope: s, err: e}, 0)
			}
		}
		for id, set := range lists {
			if len(set) == 0 {
				continue // nothing to comply with: an empty list has no cells
			}
			required, all := false, true
			for u := range set {
				switch compliance(c, ref, u) {
				case 2:
					required = true
				case 1, 3:
				default:
					all = false
				}
			}
			status := int16(index.StatusUnknown)
			if required {
				status = index.StatusNonCompliant
			} else if all {
				status = index.StatusCompliant
			}
			for _, s := range scopes {
				add(ckey{table: "agg_lists", scope: s, topic: id, state: status}, 0)
			}
		}
	}
	out := map[index.Cell]bool{}
	for k, v := range cells {
		if v.clients != 0 || v.scanned != 0 {
			out[k.cell(v.clients, v.scanned)] = true
		}
	}
	return out
}

// ---------------------------------------------------------------------------------------
// Store model: ReplacingMergeTree(version) per (table, ordering key); equal versions keep the
// later insert.

type skey struct {
	table, scope, topic string
	tt                  uint16
	state               int16 // state or list status
	err                 int32
	scan                int64 // agg_scans.last_scan, Unix ms
	part                int32
}

type srow struct {
	clients, scanned int64
	version          uint64
}

type store map[skey]srow

func as[T any](t testing.TB, v any, what string) T {
	t.Helper()
	x, ok := v.(T)
	if !ok {
		var z T
		t.Fatalf("column %s is %T, want %T", what, v, z)
	}
	return x
}

// decode reads emitted rows through Columns and Values, checking the Go types the native
// protocol needs.
func decode(t testing.TB, rows []schema.Rows) []struct {
	k skey
	r srow
} {
	t.Helper()
	var out []struct {
		k skey
		r srow
	}
	for _, rs := range rows {
		table, ok := strings.CutPrefix(rs.Table(), "db.")
		if !ok {
			t.Fatalf("table %q is not in database db", rs.Table())
		}
		cols := rs.Columns()
		for i := range rs.Len() {
			vals := rs.Values(i)
			if len(vals) != len(cols) {
				t.Fatalf("%s row %d: %d values for %d columns", table, i, len(vals), len(cols))
			}
			get := func(name string) any {
				j := slices.Index(cols, name)
				if j < 0 {
					t.Fatalf("%s has no column %s (%v)", table, name, cols)
				}
				return vals[j]
			}
			if b := rs.AppendRowBinary(nil, i); len(b) == 0 {
				t.Fatalf("%s row %d: empty RowBinary", table, i)
			}
			var k skey
			var r srow
			k.table = table
			k.scope = as[string](t, get("scope"), "scope")
			k.part = as[int32](t, get("partition"), "partition")
			r.clients = as[int64](t, get("clients"), "clients")
			r.version = as[uint64](t, get("version"), "version")
			switch table {
			case "agg_states":
				k.tt = as[uint16](t, get("topic_type"), "topic_type")
				k.topic = as[string](t, get("topic_id"), "topic_id")
				k.state = as[int16](t, get("state"), "state")
				r.scanned = as[int64](t, get("scanned"), "scanned")
			case "agg_errors":
				k.tt = as[uint16](t, get("topic_type"), "topic_type")
				k.topic = as[string](t, get("topic_id"), "topic_id")
				k.err = as[int32](t, get("error"), "error")
			case "agg_lists":
				k.topic = as[string](t, get("list"), "list")
				k.state = int16(as[int8](t, get("status"), "status"))
			case "agg_scans":
				ls := as[time.Time](t, get("last_scan"), "last_scan")
				if ls.Location() != time.UTC {
					t.Fatalf("agg_scans row %d: last_scan %v is not UTC", i, ls)
				}
				k.scan = ls.UnixMilli()
				if !ls.Equal(time.UnixMilli(k.scan)) {
					t.Fatalf("agg_scans row %d: last_scan %v is not a whole millisecond", i, ls)
				}
			default:
				t.Fatalf("unexpected table %s", rs.Table())
			}
			out = append(out, struct {
				k skey
				r srow
			}{k, r})
		}
	}
	return out
}

// apply inserts rows and returns how many there were.
func (s store) apply(t testing.TB, rows []schema.Rows) int {
	t.Helper()
	rs := decode(t, rows)
	for _, e := range rs {
		if old, ok := s[e.k]; ok && old.version > e.r.version {
			t.Errorf("row %+v written with version %d below the stored %d: the store would ignore it", e.k, e.r.version, old.version)
			continue
		}
		s[e.k] = e.r
	}
	return len(rs)
}

func (s store) clone() store {
	c := store{}
	for k, v := range s {
		c[k] = v
	}
	return c
}

// sum is what the v_agg_* views show: latest rows summed over partitions, zeros left out.
func (s store) sum() map[index.Cell]bool {
	type val struct{ clients, scanned int64 }
	sums := map[ckey]val{}
	for k, r := range s {
		ck := ckey{table: k.table, scope: k.scope, topic: k.topic, tt: k.tt, state: k.state, err: k.err, scan: k.scan}
		v := sums[ck]
		sums[ck] = val{v.clients + r.clients, v.scanned + r.scanned}
	}
	out := map[index.Cell]bool{}
	for k, v := range sums {
		if v.clients != 0 || v.scanned != 0 {
			out[k.cell(v.clients, v.scanned)] = true
		}
	}
	return out
}

func (s store) sortedKeys() []skey {
	keys := make([]skey, 0, len(s))
	for k := range s {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b skey) int {
		return cmp.Or(strings.Compare(a.table, b.table), strings.Compare(a.scope, b.scope), strings.Compare(a.topic, b.topic),
			cmp.Compare(a.tt, b.tt), cmp.Compare(a.state, b.state), cmp.Compare(a.err, b.err), cmp.Compare(a.scan, b.scan), cmp.Compare(a.part, b.part))
	})
	return keys
}

// diffCells lists the differences between two cell sets, keyed without the counts.
func diffCells(got, want map[index.Cell]bool) []string {
	strip := func(m map[index.Cell]bool) map[index.Cell][2]int64 {
		out := map[index.Cell][2]int64{}
		for c := range m {
			v := [2]int64{c.Clients, c.Scanned}
			c.Clients, c.Scanned = 0, 0
			out[c] = v
		}
		return out
	}
	g, w := strip(got), strip(want)
	var d []string
	for c, gv := range g {
		if wv, ok := w[c]; !ok || wv != gv {
			d = append(d, fmt.Sprintf("%+v: got clients/scanned %v, want %v", c, gv, wv))
		}
	}
	for c, wv := range w {
		if _, ok := g[c]; !ok {
			d = append(d, fmt.Sprintf("%+v: missing, want clients/scanned %v", c, wv))
		}
	}
	slices.Sort(d)
	return d
}

func checkCells(t testing.TB, what string, got, want map[index.Cell]bool) {
	t.Helper()
	if maps.Equal(got, want) {
		return
	}
	if d := diffCells(got, want); len(d) > 0 {
		if len(d) > 20 {
			d = append(d[:20], fmt.Sprintf("… and %d more", len(d)-20))
		}
		t.Fatalf("%s: %d cells differ from the oracle:\n  %s", what, len(d), strings.Join(d, "\n  "))
	}
}

// ---------------------------------------------------------------------------------------
// Randomized world.

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

// ---------------------------------------------------------------------------------------
// Tests.

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
	if n := st.apply(t, x.Changed("db")); n != 0 {
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
		st.apply(t, x.Changed("db"))
		want := oracle(model, ref, now)
		checkCells(t, fmt.Sprintf("batch %d: index", bi), x.Cells(), want)
		checkCells(t, fmt.Sprintf("batch %d: store", bi), st.sum(), want)

		if bi == mid/2 {
			// Another projector takes the partitions over: it restores from the store and folds on.
			y := restore(t, rng, w, model, st, ref, now, f.offsets)
			if n := len(decode(t, y.Changed("db"))); n != 0 {
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
		st.apply(t, x.Changed("db"))
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
		st.apply(t, x.Changed("db"))
		want = oracle(model, ref, now)
		checkCells(t, "after Tick: index", x.Cells(), want)
		checkCells(t, "after Tick: store", st.sum(), want)

		if x.Tick(now.Add(time.Hour)) {
			t.Error("Tick that crosses no cleanup age recomputed")
		}
		if x.SetRef(cloneRef(ref), now) {
			t.Error("SetRef with equal reference data recomputed")
		}
		if n := len(decode(t, x.Changed("db"))); n != 0 {
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
		if n := len(decode(t, y.Changed("db"))); n != 0 {
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
		rows := y.Changed("db")
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
		if n := len(decode(t, y.Changed("db"))); n != 0 {
			t.Errorf("second Changed after a restore wrote %d rows", n)
		}
	})

	t.Run("replay", func(t *testing.T) {
		// Redelivering the whole history (new offsets) changes no cell.
		for bi, b := range batches(rng, w.deliveries, 60) {
			f.fold(b)
			if n := len(decode(t, x.Changed("db"))); n != 0 {
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
		y.LoadCell(k.part, k.table, k.scope, k.topic, k.tt, k.state, k.err, k.scan, r.clients, r.scanned, int64(r.version))
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
					st.apply(t, x.Changed("db"))
				}
			}
			x.End()
			st.apply(t, x.Changed("db"))
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
	st.apply(t, x.Changed("db"))
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
	st.apply(t, x.Changed("db"))
	want = maps.Clone(base)
	want[index.Cell{Table: "agg_lists", Topic: "M", State: index.StatusUnknown, Clients: 1}] = true // V is left
	checkCells(t, "oracle past the cleanup age", oracle(buildModel(history), ref, now), want)
	checkCells(t, "index past the cleanup age", x.Cells(), want)
	checkCells(t, "store past the cleanup age", st.sum(), want)
}

func TestNeedsRestore(t *testing.T) {
	x := index.New(cleanup)
	if x.NeedsRestore(0, 0) {
		t.Error("offset 0 of an unseen partition needs no restore")
	}
	if !x.NeedsRestore(0, 5) {
		t.Error("offset 5 of an unseen partition needs a restore")
	}
	x.LoadPartition(0, 4)
	if x.NeedsRestore(0, 5) || x.NeedsRestore(0, 3) {
		t.Error("after LoadPartition(0, 4), offsets up to 5 need no restore")
	}
	if !x.NeedsRestore(0, 6) {
		t.Error("after LoadPartition(0, 4), offset 6 follows a gap")
	}
	x.Seen(0, 5)
	if x.NeedsRestore(0, 6) {
		t.Error("after Seen(0, 5), offset 6 needs no restore")
	}
}

// TestEpochs: a partition's cells are written under its epoch, held back at -1, and written
// whole under a new epoch after Rewrite (the store holds nothing under it yet).
func TestEpochs(t *testing.T) {
	x := index.New(cleanup)
	fold := func(off int64, state int32) {
		x.Fold(3, off, &schema.Report{Client: "c", Messages: []schema.StateMessage{
			{Serial: uint64(off + 1), TopicType: 500, TopicID: "A", State: state}, {Serial: uint64(off + 1), TopicType: 500, TopicID: "B", State: 3}}})
		x.End()
	}
	epochs := func(rows []schema.Rows) (n int, epochs map[any]bool) {
		epochs = map[any]bool{}
		for _, r := range rows {
			cols := r.Columns()
			if cols[len(cols)-1] != "epoch" {
				t.Fatalf("%s: last column %q, want epoch", r.Table(), cols[len(cols)-1])
			}
			for i := 0; i < r.Len(); i++ {
				v := r.Values(i)
				epochs[v[len(v)-1]] = true
				n++
			}
		}
		return n, epochs
	}
	fold(0, 2)
	if n, e := epochs(x.Changed("db")); n != 3 || len(e) != 1 || !e[uint64(0)] {
		t.Fatalf("first write: %d rows under epochs %v, want 3 under 0", n, e)
	}
	x.SetEpoch(3, -1)
	fold(1, 3)
	if n, _ := epochs(x.Changed("db")); n != 0 || len(x.Pending()) != 1 {
		t.Fatalf("held back: %d rows written, pending %v", n, x.Pending())
	}
	x.Rewrite(3, 7<<32|5)
	// Every non-zero cell (the client count, A and B installed), not only A's two that changed
	// since the last write (and not A's zero cell: absent means zero under the new epoch).
	if n, e := epochs(x.Changed("db")); n != 3 || len(e) != 1 || !e[uint64(7<<32|5)] {
		t.Fatalf("after Rewrite: %d rows under epochs %v, want 3 under %d", n, e, 7<<32|5)
	}
	if n, _ := epochs(x.Changed("db")); n != 0 {
		t.Fatalf("nothing changed since: %d rows", n)
	}
	if x.Epoch(3) != 7<<32|5 || x.Epoch(9) != 0 {
		t.Errorf("epochs %d, %d", x.Epoch(3), x.Epoch(9))
	}
	x.SetDefaultEpoch(-1)
	if x.Epoch(9) != -1 {
		t.Errorf("a partition first met after SetDefaultEpoch(-1) has epoch %d", x.Epoch(9))
	}
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
