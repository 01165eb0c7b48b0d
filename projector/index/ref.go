package index

import (
	"slices"
	"time"
)

// Reference data: what the cells need of the catalog, the update lists and the collections,
// derived once per change (setRef) rather than per fold.

// list is an update list (or the catalog list) as compliance needs it.
type list struct {
	id          uint32  // interned list id
	updates     int     // distinct updates, not expired past the cleanup age
	firstSynced []int64 // sorted first synchronisation (Unix ms) of its catalog updates
}

// listTally counts one client's 500 keys of the updates of one list (contributeSummary).
type listTally struct {
	required  int // in state 2 Required
	satisfied int // in state 1 Not required or 3 Installed
	scanned   int // in states 1–3, of a client that scanned after the update's first sync
}

// SetRef replaces the reference data and recomputes every contribution when what the cells
// depend on changed. It returns whether it recomputed.
func (x *Index) SetRef(r Ref, now time.Time) bool {
	if x.sameDerived(r, now) {
		x.ref = r
		return false
	}
	x.zero()
	x.setRef(r, now)
	for _, c := range x.clients {
		c.scopes = x.collectionsOf[c.name]
		x.contribute(c, 1)
	}
	return true
}

// Tick re-evaluates the expiry cleanup at now (an update expired longer than the cleanup age
// leaves the lists) and recomputes if it changed anything.
func (x *Index) Tick(now time.Time) bool { return x.SetRef(x.ref, now) }

func (x *Index) zero() {
	for _, pt := range x.parts {
		for k, c := range pt.cells {
			if c.clients != 0 || c.scanned != 0 {
				c.clients, c.scanned = 0, 0
				pt.mark(k, &c)
				pt.cells[k] = c
			}
		}
	}
}

func (x *Index) excludedAt(r Ref, now time.Time) map[string]bool {
	ex := map[string]bool{}
	cut := now.Add(-x.cleanup).UnixMilli()
	for id, u := range r.Catalog {
		if u.Expired && u.ExpiredAt <= cut {
			ex[id] = true
		}
	}
	return ex
}

// sameDerived reports whether r at now derives the same first synchronisations, lists and
// memberships as the current reference data.
func (x *Index) sameDerived(r Ref, now time.Time) bool {
	if len(r.Catalog) != len(x.ref.Catalog) || len(r.Lists) != len(x.ref.Lists) || len(r.Collections) != len(x.ref.Collections) {
		return false
	}
	for id, u := range r.Catalog {
		if o, ok := x.ref.Catalog[id]; !ok || o.FirstSynced != u.FirstSynced {
			return false
		}
	}
	for id, l := range r.Lists {
		if o, ok := x.ref.Lists[id]; !ok || !slices.Equal(l, o) {
			return false
		}
	}
	for id, m := range r.Collections {
		if o, ok := x.ref.Collections[id]; !ok || !slices.Equal(m, o) {
			return false
		}
	}
	ex := x.excludedAt(r, now)
	if len(ex) != len(x.excluded) {
		return false
	}
	for id := range ex {
		if !x.excluded[id] {
			return false
		}
	}
	return true
}

func (x *Index) setRef(r Ref, now time.Time) {
	x.ref = r
	x.excluded = x.excludedAt(r, now)
	for id := range r.Catalog {
		x.intern(id)
	}
	for id, updates := range r.Lists {
		x.intern(id)
		for _, u := range updates {
			x.intern(u)
		}
	}
	x.updates = make([]updateRef, len(x.names))
	for id, u := range r.Catalog {
		x.updates[x.ids[id]] = updateRef{firstSynced: u.FirstSynced, inCatalog: true}
	}
	x.lists = x.lists[:0]
	addList := func(id string, updates []string) {
		if len(x.lists) >= 1<<16 {
			return // more lists than a cell can name; never in practice
		}
		l := list{id: x.intern(id)}
		seen := map[uint32]bool{}
		for _, u := range updates {
			if x.excluded[u] {
				continue
			}
			uid := x.intern(u)
			if seen[uid] {
				continue
			}
			seen[uid] = true
			l.updates++
			u := &x.updates[uid]
			u.lists = append(u.lists, uint16(len(x.lists)))
			if u.inCatalog {
				l.firstSynced = append(l.firstSynced, u.firstSynced)
			}
		}
		slices.Sort(l.firstSynced)
		x.lists = append(x.lists, l)
	}
	if len(r.Catalog) > 0 {
		all := make([]string, 0, len(r.Catalog))
		for id := range r.Catalog {
			all = append(all, id)
		}
		addList(CatalogList, all)
	}
	for id, updates := range r.Lists {
		addList(id, updates)
	}
	x.tallies = make([]listTally, len(x.lists))
	x.collectionsOf = map[string][]uint32{}
	for id, members := range r.Collections {
		sid := x.intern(id)
		for _, m := range members {
			if s := x.collectionsOf[m]; len(s) == 0 || s[len(s)-1] != sid {
				x.collectionsOf[m] = append(s, sid)
			}
		}
	}
}
