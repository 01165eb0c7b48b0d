package index_test

import (
	"math"
	"slices"
	"time"

	"github.com/statepipe/statepipe/projector/index"
	"github.com/statepipe/statepipe/schema"
)

// The oracle: every aggregate cell recomputed from the whole history, by the folding rules.

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
		errs, scanErrs := map[int32]bool{}, map[int32]bool{}
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
			if (k.tt == 402 || k.tt == 301 || k.tt == 501) && m.Error != 0 {
				if k.tt == 501 {
					scanErrs[m.Error] = true
				} else {
					errs[m.Error] = true
				}
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
		for e := range scanErrs { // over every source: topic type 501, no topic id
			for _, s := range scopes {
				add(ckey{table: "agg_errors", scope: s, tt: 501, err: e}, 0)
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
