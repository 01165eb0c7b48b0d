package report

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/statepipe/statepipe/replicator"
)

// Reports in a site hierarchy. A site's replicator sends its counted aggregate cells up to its
// parent, and a middle site passes its descendants' on, so every site holds the latest cells of
// every site below it (hier_cells, with each origin's heartbeat in hier_origins). A site of a
// hierarchy answers the reports that count from cells — compliance, deployment, errors, scan,
// update — over itself and every site below it (the v_tree_agg_* views: its own v_agg_* plus
// the descendants'), and lists each contributing site with its watermark and link state. The
// site= parameter narrows the answer to the subtree of a site below.
//
// In a hierarchy every site counts the clients it has heard from: a collection defined above
// may hold clients of many sites, each site counts its own members, and a member no site has
// heard from is counted nowhere (its site is not known). A standalone site counts every member
// of a collection, heard from or not, as before.

// Hierarchy makes a site's reports cover the sites below it.
type Hierarchy struct {
	// Expected maps each site below, as the topology names them, to its parent: listed (with
	// a failed link) before they first report. Sites that report without being named are
	// listed too.
	Expected map[string]string
	// Links say when a link is degraded, then failed: when nothing came over it for that long.
	Links replicator.LinkThresholds
}

// SiteStatus is one site contributing to an answer.
type SiteStatus struct {
	Site   string `json:"site"`
	Parent string `json:"parent,omitempty"`
	// Watermark: every report the site accepted before it is counted here; null when none
	// came yet.
	Watermark *time.Time `json:"watermark"`
	// LinkState is local for the site answering, else the state of the site's link as seen
	// from here: active, degraded or failed by how long ago its last heartbeat arrived.
	LinkState        string   `json:"link_state"`
	FreshnessSeconds *float64 `json:"freshness_seconds"` // now − watermark
	LagRecords       int64    `json:"lag_records"`       // accepted at the site, not folded there
	BacklogRecords   int64    `json:"backlog_records"`   // accepted at the site, not counted here yet
	LastHeardSeconds *float64 `json:"last_heard_seconds,omitempty"`
}

// LinkLocal is the link state of the site answering.
const LinkLocal = "local"

// Tree is the part of a hierarchy one answer covers.
type Tree struct {
	Self    string       // the site answering
	Top     string       // the site asked about: Self, or a site below it
	Origins []string     // the sites whose cells count, sorted
	Sites   []SiteStatus // each of them, top first then by depth
}

// Below reports whether cells of sites other than the one answering count.
func (t *Tree) Below() bool { return t != nil && (len(t.Origins) > 1 || t.Top != t.Self) }

// originFilter is the condition on origin_site of the v_tree_agg_* views.
func (t *Tree) originFilter() string { return "origin_site IN " + inList(t.Origins) }

// cells returns where a report reads the cells of one aggregate ("states", "errors", "lists"
// or "scans") and the condition that keeps the counted ones: the site's own agg_* table of
// the current epochs, or in a hierarchy the tree's.
func (t *Tree) cells(db, kind string) (from, cond string) {
	if t == nil {
		return db + ".agg_" + kind + " FINAL", Fenced(db)
	}
	return db + ".v_tree_agg_" + kind, t.originFilter()
}

// origin is one site's heartbeat as this site holds it.
type origin struct {
	site, parent        string
	watermark, received time.Time
	lag, backlog        int64
	heard               bool
}

// LoadTree reads which sites below the site answering have reported, and builds the tree of
// top (the site itself when empty): 404 naming site when top is not the site or one below it.
// own is the site's own watermark and unfolded records.
func LoadTree(ctx context.Context, q Querier, db, self, top string, h *Hierarchy, own func() (time.Time, int64), now time.Time) (*Tree, error) {
	res, err := q.Query(ctx, fmt.Sprintf(`SELECT origin, parent, toUnixTimestamp64Milli(watermark), toUnixTimestamp64Milli(received_at),
	lag_records, backlog_records FROM %s.v_hier_origins ORDER BY origin`, db))
	if err != nil {
		return nil, fmt.Errorf("cannot read the sites below: %w", err)
	}
	byCode := map[string]*origin{}
	for code, parent := range h.Expected {
		byCode[code] = &origin{site: code, parent: parent}
	}
	for i := range res.Rows {
		var o origin
		var wm, rcv int64
		if err := scanRow(res, i, "sites below", &o.site, &o.parent, &wm, &rcv, &o.lag, &o.backlog); err != nil {
			return nil, err
		}
		if o.site == self {
			continue
		}
		o.heard = true
		if wm > 0 {
			o.watermark = time.UnixMilli(wm).UTC()
		}
		o.received = time.UnixMilli(rcv).UTC()
		byCode[o.site] = &o
	}
	if top == "" {
		top = self
	}
	if top != self && byCode[top] == nil {
		known := []string{self}
		for c := range byCode {
			known = append(known, c)
		}
		slices.Sort(known)
		return nil, &NotFoundError{Field: "site", Message: fmt.Sprintf("site %s is neither this site nor one below it (here: %s)", top, strings.Join(known, ", "))}
	}
	// The subtree of top, depth first by code.
	children := map[string][]string{}
	for c, o := range byCode {
		children[o.parent] = append(children[o.parent], c)
	}
	t := &Tree{Self: self, Top: top}
	var walk func(code string, depth int)
	seen := map[string]bool{}
	walk = func(code string, depth int) {
		if seen[code] || depth > 64 {
			return
		}
		seen[code] = true
		t.Origins = append(t.Origins, code)
		if code == self {
			t.Sites = append(t.Sites, selfStatus(self, own, now))
		} else {
			t.Sites = append(t.Sites, byCode[code].status(h, now))
		}
		kids := children[code]
		slices.Sort(kids)
		for _, c := range kids {
			walk(c, depth+1)
		}
	}
	walk(top, 0)
	slices.Sort(t.Origins)
	return t, nil
}

func selfStatus(self string, own func() (time.Time, int64), now time.Time) SiteStatus {
	s := SiteStatus{Site: self, LinkState: LinkLocal}
	if own == nil {
		return s
	}
	wm, lag := own()
	s.LagRecords, s.BacklogRecords = lag, lag
	if !wm.IsZero() {
		s.Watermark = &wm
		f := max(now.Sub(wm), 0).Seconds()
		s.FreshnessSeconds = &f
	}
	return s
}

func (o *origin) status(h *Hierarchy, now time.Time) SiteStatus {
	s := SiteStatus{Site: o.site, Parent: o.parent, LinkState: replicator.LinkFailed, LagRecords: o.lag, BacklogRecords: o.backlog}
	if !o.heard {
		return s
	}
	age := max(now.Sub(o.received), 0)
	a := age.Seconds()
	s.LastHeardSeconds = &a
	s.LinkState = h.Links.State(age)
	if !o.watermark.IsZero() {
		wm := o.watermark
		s.Watermark = &wm
		f := max(now.Sub(wm), 0).Seconds()
		s.FreshnessSeconds = &f
	}
	return s
}
