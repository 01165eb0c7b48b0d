package report

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/statepipe/statepipe/replicator"
	"github.com/statepipe/statepipe/schema"
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
// of a collection, heard from or not, as before. A site of a hierarchy counts from cells even
// when nothing is below it yet, so its answers do not change shape when a child arrives.
//
// Each report in a hierarchy (every answer carries sites: the sites counted, with their
// watermarks and link states):
//
//   - compliance: per update and per computer from the cells; updates= (an ad-hoc set's
//     per-computer counts) and source=scan over sites below are refused naming the parameter.
//     vendor= and released= keep updates by the catalog (at every site): per update and by=
//     groups from the cells, the computers line only its total (computers_uncounted says why).
//   - deployment: per site, the collection's members it heard from (topic type 0) by their
//     301 state for the deployment, the rest in state 0; by_site lists each site's counts,
//     which add up to the answer. state= (the machine list) over sites below is refused
//     naming state, pointing to the machines report; over the site alone it lists its own.
//   - errors: machines per HRESULT from the cells of topic type 0 (a client is one site's,
//     so the sites' distinct counts add up), updates and deployments ranked by their cells.
//     deployment= over sites below is refused naming deployment: the distinct machines over
//     one deployment's updates and itself are not among the cells; over the site alone it
//     reads the live states.
//   - scan: sources (per update source, from the cells of topic type 501), states as their
//     sum when every site counts at most one source (absent otherwise: a client's latest scan
//     across sources is not among the cells), stale_clients from the latest successful scans
//     (agg_scans); stale lists the site's own stale clients only (stale_of).
//   - update: compliance with rule 3 (the stated 3/2/1, the scans newer than the update's
//     first synchronisation less the stated among them) and 402 states, from the cells.
//   - machines: a site holds only its own clients' rows, so it lists its own machines of the
//     cell (none when site= names a subtree below it) and, in elsewhere, every other site of
//     the tree with machines in the cell — counted from its cells (null for an ad-hoc
//     updates= set, which the cells do not count) — with the request that lists them there.
//   - trend and computer read per-client rows (history, live states) that stay at the
//     client's site: they answer for the site's own clients (own_site_only, sites the site
//     alone); a client not heard here is not found, and site= naming a subtree below the site
//     is refused naming site.
//   - backlog: every site of the tree and its link.

// Hierarchy makes a site's reports cover the sites below it.
type Hierarchy struct {
	// Expected maps each site below, as the topology names them, to its parent: listed (with
	// a failed link) before they first report. Sites that report without being named are
	// listed too.
	Expected map[string]string
	// Links say when a link is degraded, then failed: when nothing came over it for that long.
	Links replicator.LinkThresholds
	// URLs are the sites' report URLs, where the topology names them (server mode): a
	// drill-down elsewhere gives the whole URL to ask.
	URLs map[string]string
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
	// Pacing is the site's pacing controller as its last heartbeat carried it (the backlog
	// report shows it); nil: none.
	Pacing *Pacing `json:"-"`
}

// LinkLocal is the link state of the site answering.
const LinkLocal = "local"

// LinkFailed is the state of a link nothing came over for --replicator.failed-after.
const LinkFailed = replicator.LinkFailed

// Tree is the part of a hierarchy one answer covers.
type Tree struct {
	Self    string       // the site answering
	Top     string       // the site asked about: Self, or a site below it
	Origins []string     // the sites whose cells count, sorted
	Sites   []SiteStatus // each of them, top first then by depth
	URLs    map[string]string
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
	pacing              string
}

// LoadTree reads which sites below the site answering have reported, and builds the tree of
// top (the site itself when empty): 404 naming site when top is not the site or one below it.
// own is the site's own watermark and unfolded records.
func LoadTree(ctx context.Context, q Querier, db, self, top string, h *Hierarchy, own func() (time.Time, int64), now time.Time) (*Tree, error) {
	res, err := q.Query(ctx, fmt.Sprintf(`SELECT origin, parent, toUnixTimestamp64Milli(watermark), toUnixTimestamp64Milli(received_at),
	lag_records, backlog_records, pacing FROM %s.v_hier_origins ORDER BY origin`, db))
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
		if err := scanRow(res, i, "sites below", &o.site, &o.parent, &wm, &rcv, &o.lag, &o.backlog, &o.pacing); err != nil {
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
	t := &Tree{Self: self, Top: top, URLs: h.URLs}
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
	if o.pacing != "" {
		var p Pacing
		if json.Unmarshal([]byte(o.pacing), &p) == nil {
			s.Pacing = &p
		}
	}
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

// counts reports whether the site answering is one of the tree's origins: false when site=
// narrowed the answer to a subtree below it, whose clients it does not hold.
func (t *Tree) counts(site string) bool { return t != nil && slices.Contains(t.Origins, site) }

// order returns the tree's origins as Sites lists them: top first, then depth first by code.
func (t *Tree) order() []string {
	out := make([]string, 0, len(t.Sites))
	for _, s := range t.Sites {
		out = append(out, s.Site)
	}
	return out
}

// ownSites is the answering site's own status, for a report that reads its per-client rows
// only (trend, computer): the one site such an answer covers.
func (t *Tree) ownSites() []SiteStatus {
	if t == nil {
		return nil
	}
	for _, s := range t.Sites {
		if s.Site == t.Self {
			return []SiteStatus{s}
		}
	}
	return nil
}

// ownOnly refuses, naming site, a report that reads per-client rows when site= named a
// subtree the site answering is not part of.
func (t *Tree) ownOnly(report string) error {
	if t == nil || t.counts(t.Self) {
		return nil
	}
	return &ParamError{Field: "site", Message: fmt.Sprintf("the %s report reads each client's own rows, which only the client's site holds, and %s sends counts only: ask site %s itself (its own URL, or site=%s where a topology serves every site)", report, t.Top, t.Top, t.Top)}
}

// originTotals counts, per origin of the tree, the clients in scope (collection id, or "" for
// the whole site) it has heard from: its cells of topic type 0.
func (t *Tree) originTotals(ctx context.Context, q Querier, db, scope string) (map[string]int64, error) {
	from, cond := t.cells(db, "states")
	return bySite(ctx, q, fmt.Sprintf(`SELECT origin_site, toInt64(sum(clients)) FROM %s
	WHERE %s AND scope = %s AND topic_type = 0 GROUP BY origin_site`, from, cond, Quote(scope)), "clients per site")
}

// bySite runs query, whose rows are (origin site, count), into a map; what names the counts
// in errors.
func bySite(ctx context.Context, q Querier, query, what string) (map[string]int64, error) {
	res, err := q.Query(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("cannot count %s: %w", what, err)
	}
	out := map[string]int64{}
	for i := range res.Rows {
		var site string
		var n int64
		if err := scanRow(res, i, what, &site, &n); err != nil {
			return nil, err
		}
		out[site] += n
	}
	return out, nil
}

// SiteStates is one site's part of a report over a hierarchy: its clients in scope and how
// many of them are in each state (every state listed).
type SiteStates struct {
	Site   string       `json:"site"`
	Total  int64        `json:"total"`
	States []StateCount `json:"states"`
}

// deploymentBySite counts a deployment's targeted clients per origin of the tree from the
// cells, as DeploymentReport counts them at one site (folding rule 4): the members of its
// collection each site heard from (topic type 0 of the collection's scope) by their 301 state
// for the deployment, those without one (or in state 0) in state 0. Every origin is listed, in
// the order of Sites.
func deploymentBySite(ctx context.Context, q Querier, db string, t *Tree, dep *deploymentRef) ([]SiteStates, error) {
	return targetedBySite(ctx, q, db, t, dep, schema.TopicDeploymentEnforcement, dep.id)
}

// targetedBySite is deploymentBySite for the targeted clients' states of another topic: the
// deployment's evaluation (302) or compliance (300), or one of its updates' enforcement (402,
// topic id the update). The cells of the collection's scope count exactly the targeted
// clients each site heard from, so each is as the site counts it alone.
func targetedBySite(ctx context.Context, q Querier, db string, t *Tree, dep *deploymentRef, states schema.TopicType, topicID string) ([]SiteStates, error) {
	from, cond := t.cells(db, "states")
	res, err := q.Query(ctx, fmt.Sprintf(`SELECT origin_site, topic_type, toInt64(state), toInt64(sum(clients)) FROM %s
	WHERE %s AND scope = %s AND (topic_type = 0 OR (topic_type = %d AND topic_id = %s AND state != 0))
	GROUP BY origin_site, topic_type, state`, from, cond, Quote(dep.collection), int(states), Quote(topicID)))
	if err != nil {
		return nil, fmt.Errorf("cannot count deployment states per site (%s, %d %s): %w", dep.id, states, topicID, err)
	}
	out := make([]SiteStates, 0, len(t.Sites))
	at := map[string]int{}
	for _, site := range t.order() {
		at[site] = len(out)
		out = append(out, SiteStates{Site: site, States: emptyStates(states)})
	}
	stated := make([]int64, len(out))
	for i := range res.Rows {
		var site string
		var tt, st, n int64
		if err := scanRow(res, i, "deployment states per site", &site, &tt, &st, &n); err != nil {
			return nil, err
		}
		j, ok := at[site]
		if !ok {
			continue // not an origin of the tree: the filter keeps none
		}
		s := &out[j]
		switch {
		case tt == 0:
			s.Total += n
		case st > 0:
			stated[j] += n
			if st < int64(len(s.States)) {
				s.States[st].Clients += n
			}
		}
	}
	for j := range out {
		out[j].States[0].Clients = out[j].Total - stated[j]
	}
	return out, nil
}

// emptyStates lists every state of t with no clients.
func emptyStates(t schema.TopicType) []StateCount {
	out := make([]StateCount, t.StateCount())
	for i := range out {
		out[i] = StateCount{State: i, Name: t.StateName(i)}
	}
	return out
}

// sumSites adds the sites' counts up: the total and each state's clients.
func sumSites(t schema.TopicType, sites []SiteStates) ([]StateCount, int64) {
	out := emptyStates(t)
	var total int64
	for _, s := range sites {
		total += s.Total
		for i, st := range s.States {
			if i < len(out) {
				out[i].Clients += st.Clients
			}
		}
	}
	return out, total
}

// updateCounts is one site's compliance with one update by folding rule 3, from its cells.
type updateCounts struct {
	total, installed, required, notRequired int64
}

func (c updateCounts) unknown() int64 { return c.total - c.installed - c.required - c.notRequired }

// updateBySite counts, per origin of the tree, the clients in scope by their compliance with
// update as UpdateReport does at one site: the stated 3/2/1 from the cells of topic type 500,
// plus (for an update in the catalog) the clients whose latest successful scan is newer than
// the update's first synchronisation (agg_scans) less those of them already stated 1–3 (the
// cells' scanned), as Not required; the rest of the site's clients in scope are Unknown.
func updateBySite(ctx context.Context, q Querier, db string, t *Tree, scope, update string, inCatalog bool) (map[string]*updateCounts, error) {
	from, cond := t.cells(db, "states")
	res, err := q.Query(ctx, fmt.Sprintf(`SELECT origin_site, topic_type, toInt64(state), toInt64(sum(clients)), toInt64(sum(scanned)) FROM %s
	WHERE %s AND scope = %s AND (topic_type = 0 OR (topic_type = 500 AND topic_id = %s AND state IN (1, 2, 3)))
	GROUP BY origin_site, topic_type, state`, from, cond, Quote(scope), Quote(update)))
	if err != nil {
		return nil, fmt.Errorf("cannot count compliance with update %q per site: %w", update, err)
	}
	out := map[string]*updateCounts{}
	for _, site := range t.Origins {
		out[site] = &updateCounts{}
	}
	for i := range res.Rows {
		var site string
		var tt, st, n, scanned int64
		if err := scanRow(res, i, "compliance per site", &site, &tt, &st, &n, &scanned); err != nil {
			return nil, err
		}
		c, ok := out[site]
		if !ok {
			continue
		}
		switch {
		case tt == 0:
			c.total += n
		case st == 3:
			c.installed += n
		case st == 2:
			c.required += n
		case st == 1:
			c.notRequired += n
		}
		if inCatalog && tt != 0 {
			c.notRequired -= scanned // counted again below, among the scans newer than the update
		}
	}
	if !inCatalog {
		return out, nil // no first synchronisation: nothing is inferred
	}
	from, cond = t.cells(db, "scans")
	res, err = q.Query(ctx, fmt.Sprintf(`SELECT origin_site, toInt64(sum(clients)) FROM %s
	WHERE %s AND scope = %s AND last_scan > (SELECT first_synced FROM %s.v_updates WHERE id = %s)
	GROUP BY origin_site`, from, cond, Quote(scope), db, Quote(update)))
	if err != nil {
		return nil, fmt.Errorf("cannot count scans newer than update %q per site: %w", update, err)
	}
	for i := range res.Rows {
		var site string
		var n int64
		if err := scanRow(res, i, "scans per site", &site, &n); err != nil {
			return nil, err
		}
		if c, ok := out[site]; ok {
			c.notRequired += n
		}
	}
	return out, nil
}

// listBySite counts, per origin of the tree, the clients in scope by their compliance with an
// update list ("" the catalog) from the cells of agg_lists: status 1 compliant, 2
// non-compliant, the rest of the site's clients in scope unknown (index 0).
func listBySite(ctx context.Context, q Querier, db string, t *Tree, scope, list string) (map[string]*[3]int64, error) {
	totals, err := t.originTotals(ctx, q, db, scope)
	if err != nil {
		return nil, err
	}
	from, cond := t.cells(db, "lists")
	res, err := q.Query(ctx, fmt.Sprintf(`SELECT origin_site, toInt64(status), toInt64(sum(clients)) FROM %s
	WHERE %s AND scope = %s AND list = %s AND status IN (1, 2) GROUP BY origin_site, status`, from, cond, Quote(scope), Quote(list)))
	if err != nil {
		return nil, fmt.Errorf("cannot count compliance with list %q per site: %w", list, err)
	}
	out := map[string]*[3]int64{}
	for _, site := range t.Origins {
		out[site] = &[3]int64{totals[site], 0, 0}
	}
	for i := range res.Rows {
		var site string
		var status, n int64
		if err := scanRow(res, i, "list compliance per site", &site, &status, &n); err != nil {
			return nil, err
		}
		if c, ok := out[site]; ok && (status == 1 || status == 2) {
			c[status] += n
			c[0] -= n
		}
	}
	return out, nil
}
