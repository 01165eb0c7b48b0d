package index_test

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/statepipe/statepipe/projector/index"
	"github.com/statepipe/statepipe/schema"
)

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
