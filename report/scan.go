package report

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/statepipe/statepipe/schema"
)

// ScanParams scope the scan report.
type ScanParams struct {
	Scope Scope // its Tree, in a site hierarchy, counts every site of the tree from its cells
	Days  int   // a client is stale without a successful scan in this many days (default DefaultStaleDays)
}

// DefaultStaleDays is the scan report's stale threshold when none is given.
const DefaultStaleDays = 7

// MaxStaleListed caps the stale client ids a scan report lists; StaleClients counts them all.
const MaxStaleListed = 1000

// Scan is the scan report (DESIGN §4): the clients in scope by the state of their latest scan
// (501), and the clients with no successful scan in the last StaleDays days.
type Scan struct {
	Site           string    `json:"site"`
	AsOf           time.Time `json:"as_of"`
	Collection     string    `json:"collection,omitempty"`
	CollectionName string    `json:"collection_name,omitempty"`
	// States counts the clients by the state of their latest scan across their update
	// sources. In a site hierarchy it is absent when a site of the tree has several sources:
	// the sites count per source, and a client's latest scan across sources is not among
	// their counts (Sources has them).
	States []StateCount `json:"states,omitempty"`
	// Sources counts, per update source (the 501 topic id), the clients in scope by their
	// scan state for it, those without one in 0 Unknown (each source's states add up to
	// Total).
	Sources      []ScanSource `json:"sources"`
	Total        int64        `json:"total"`
	StaleDays    int          `json:"stale_days"`
	StaleClients int64        `json:"stale_clients"`
	Stale        []string     `json:"stale"` // sorted, at most MaxStaleListed
	// StaleOf, in a site hierarchy, names the site whose stale clients Stale lists: the site
	// answering (absent, with Stale empty, when site= named a subtree below it). Stale clients
	// of the sites below are counted in StaleClients and listed by their own site.
	StaleOf string `json:"stale_of,omitempty"`
	// BySite, in a site hierarchy, is each site's own part (ConfigMgr's "Scan 2 – Last scan
	// states by site"), in the order of Sites; they add up to States (where present), Total
	// and StaleClients.
	BySite []SiteScan `json:"by_site,omitempty"`
	// Sites lists, in a site hierarchy, every site counted with its watermark and link state.
	Sites []SiteStatus `json:"sites,omitempty"`
}

// SiteScan is one site's clients in scope by the state of their latest scan, and those of
// them without a recent successful scan.
type SiteScan struct {
	Site  string `json:"site"`
	Total int64  `json:"total"`
	// States is absent when the site has several update sources (its counts are per source).
	States       []StateCount `json:"states,omitempty"`
	StaleClients int64        `json:"stale_clients"`
}

// ScanSource is the clients in scope by their scan state for one update source.
type ScanSource struct {
	Source string       `json:"source"`
	States []StateCount `json:"states"`
}

// ScanReport computes the scan report of site (database db).
//
// A client's scan state is the live 501 state with the greatest serial across its update
// sources (the latest scan it reported); a client in scope that never reported one counts as
// 0 Unknown. A client is stale when its latest successful scan (501 = 3 or 6, by the client's
// clock, as ConfigMgr's last scan time) is older than Days days before as_of, or when it never
// scanned successfully.
//
// In a site hierarchy (p.Scope.Tree) the counts come from the cells of every site of the tree:
// Total from the clients each heard from in scope (topic type 0), Sources from the cells of
// topic type 501, States as their sum where every site has at most one source (a client's
// latest scan is then its one source's; otherwise States is absent), and StaleClients from
// the latest successful scans (agg_scans): the clients in scope less those whose latest
// successful scan is at or after the threshold; BySite has the same per site. Stale lists the
// site's own stale clients only (StaleOf).
func ScanReport(ctx context.Context, q Querier, db, site string, p ScanParams) (*Scan, error) {
	if p.Days == 0 {
		p.Days = DefaultStaleDays
	}
	if p.Days < 0 || p.Days > 36500 {
		return nil, &ParamError{Field: "days", Message: "days must be a number of days from 1 to 36500"}
	}
	name, err := p.Scope.check(ctx, q, db)
	if err != nil {
		return nil, err
	}
	rep := &Scan{Site: site, AsOf: time.Now().UTC(), Collection: p.Scope.Collection, CollectionName: name, StaleDays: p.Days, Stale: []string{}}
	since := rep.AsOf.Add(-time.Duration(p.Days) * 24 * time.Hour)
	scope := p.Scope.clientsSQL(db)
	if tree := p.Scope.Tree; tree != nil {
		if err := treeScan(ctx, q, db, tree, rep, since); err != nil {
			return nil, err
		}
		if !tree.counts(tree.Self) {
			return rep, nil
		}
		rep.StaleOf = tree.Self
		// The site's own stale clients (its clients in scope: those it heard from).
		_, stale, err := staleClients(ctx, q, db, scope, since)
		if err != nil {
			return nil, err
		}
		rep.Stale = append(rep.Stale, stale...)
		return rep, nil
	}
	res, err := q.Query(ctx, fmt.Sprintf(`SELECT ifNull(s.state, 0) AS state, count()
	FROM (%[2]s) AS c
	LEFT JOIN (SELECT client, argMax(state, serial) AS state FROM %[1]s.v_live_state
	           WHERE topic_type = 501 GROUP BY client) AS s ON s.client = c.client
	GROUP BY state`, db, scope))
	if err != nil {
		return nil, fmt.Errorf("cannot count scan states: %w", err)
	}
	if rep.States, rep.Total, err = stateCounts(schema.TopicScan, res); err != nil {
		return nil, err
	}
	res, err = q.Query(ctx, fmt.Sprintf(`SELECT topic_id, state, count() FROM %s.v_live_state
	WHERE topic_type = 501 AND client IN (%s) GROUP BY topic_id, state`, db, scope))
	if err != nil {
		return nil, fmt.Errorf("cannot count scan states per source: %w", err)
	}
	if rep.Sources, err = scanSources(res, func(string) int64 { return rep.Total }, 0); err != nil {
		return nil, err
	}
	var stale []string
	if rep.StaleClients, stale, err = staleClients(ctx, q, db, scope, since); err != nil {
		return nil, err
	}
	rep.Stale = append(rep.Stale, stale...)
	return rep, nil
}

// scanSources reads rows of (source, state, clients) — with an origin site first when sited
// — into each source's states, those without a state for it (total(source) less the
// clients with a state ≥ 1) in 0 Unknown; sorted by source.
func scanSources(res *schema.Result, total func(source string) int64, sited int) ([]ScanSource, error) {
	t := schema.TopicScan
	by := map[string]*ScanSource{}
	for i := range res.Rows {
		var origin, source string
		var st, n int64
		dst := []any{&source, &st, &n}
		if sited == 1 {
			dst = append([]any{&origin}, dst...)
		}
		if err := scanRow(res, i, "scan states per source", dst...); err != nil {
			return nil, err
		}
		s := by[source]
		if s == nil {
			s = &ScanSource{Source: source, States: emptyStates(t)}
			by[source] = s
		}
		if st > 0 {
			s.States[0].Clients -= n // of the total set below
			if st < int64(len(s.States)) {
				s.States[st].Clients += n
			}
		}
	}
	out := []ScanSource{}
	for _, id := range slices.Sorted(maps.Keys(by)) {
		s := by[id]
		s.States[0].Clients += total(id)
		out = append(out, *s)
	}
	return out, nil
}

// treeScan fills the counts of the scan report over the sites of a tree from their cells.
func treeScan(ctx context.Context, q Querier, db string, tree *Tree, rep *Scan, since time.Time) error {
	sc := Quote(rep.Collection)
	var res *schema.Result
	var err error
	if rep.BySite, res, err = scanBySite(ctx, q, db, tree, rep.Collection); err != nil {
		return err
	}
	single := true
	for _, s := range rep.BySite {
		rep.Total += s.Total
		single = single && s.States != nil
	}
	// A source's Unknown is every client in scope without a state for it, as at a standalone
	// site.
	if rep.Sources, err = scanSources(res, func(string) int64 { return rep.Total }, 1); err != nil {
		return err
	}
	if single { // each client has at most one scan state, its latest: States is the sites' sum
		rep.States = emptyStates(schema.TopicScan)
		for _, s := range rep.BySite {
			for i, st := range s.States {
				rep.States[i].Clients += st.Clients
			}
		}
	}
	from, cond := tree.cells(db, "scans")
	fresh, err := bySite(ctx, q, fmt.Sprintf(`SELECT origin_site, toInt64(sum(clients)) FROM %s WHERE %s AND scope = %s AND last_scan >= %s GROUP BY origin_site`,
		from, cond, sc, sqlTime(since)), "recent successful scans per site")
	if err != nil {
		return err
	}
	rep.StaleClients = rep.Total
	for _, n := range fresh {
		rep.StaleClients -= n
	}
	for i := range rep.BySite {
		rep.BySite[i].StaleClients = rep.BySite[i].Total - fresh[rep.BySite[i].Site]
	}
	rep.Sites = tree.Sites
	return nil
}

// scanBySite counts, per site of the tree (in the order of Sites), its clients in scope
// (collection id, or "" for the whole site) by the state of their latest scan, from its cells:
// a site with at most one update source has each client's one scan state, its latest (those
// without one in 0 Unknown); for a site with several, States is nil (its cells count per
// source). It returns the cells read too: rows of (origin site, source, state, clients).
func scanBySite(ctx context.Context, q Querier, db string, tree *Tree, collection string) ([]SiteScan, *schema.Result, error) {
	totals, err := tree.originTotals(ctx, q, db, collection)
	if err != nil {
		return nil, nil, err
	}
	out := make([]SiteScan, 0, len(tree.Sites))
	at := map[string]int{}
	for _, site := range tree.order() {
		at[site] = len(out)
		states := emptyStates(schema.TopicScan)
		states[0].Clients = totals[site]
		out = append(out, SiteScan{Site: site, Total: totals[site], States: states})
	}
	from, cond := tree.cells(db, "states")
	res, err := q.Query(ctx, fmt.Sprintf(`SELECT origin_site, topic_id, toInt64(state), toInt64(sum(clients)) FROM %s
	WHERE %s AND scope = %s AND topic_type = 501 GROUP BY origin_site, topic_id, state HAVING sum(clients) != 0`, from, cond, Quote(collection)))
	if err != nil {
		return nil, nil, fmt.Errorf("cannot count scan states per source: %w", err)
	}
	sourcesOf := map[string]map[string]bool{}
	for i := range res.Rows {
		var origin, source string
		var st, n int64
		if err := scanRow(res, i, "scan states per source", &origin, &source, &st, &n); err != nil {
			return nil, nil, err
		}
		j, ok := at[origin]
		if !ok {
			continue // not a site of the tree: the filter keeps none
		}
		if sourcesOf[origin] == nil {
			sourcesOf[origin] = map[string]bool{}
		}
		sourcesOf[origin][source] = true
		if s := out[j].States; st > 0 && st < int64(len(s)) {
			s[st].Clients += n
			s[0].Clients -= n
		}
	}
	for site, sources := range sourcesOf {
		if len(sources) > 1 {
			out[at[site]].States = nil
		}
	}
	return out, res, nil
}

// staleClients counts the clients of scope (a subquery of clients) whose latest successful
// scan is older than since or who never scanned successfully, and lists the first
// MaxStaleListed of them.
func staleClients(ctx context.Context, q Querier, db, scope string, since time.Time) (int64, []string, error) {
	res, err := q.Query(ctx, fmt.Sprintf(`SELECT count(), arraySlice(arraySort(groupArray(client)), 1, %[4]d)
	FROM (SELECT c.client AS client
	      FROM (%[2]s) AS c
	      LEFT JOIN (SELECT client, argMax(time, serial) AS last_scan, 1 AS scanned FROM %[1]s.scan_history
	                 WHERE client IN (%[2]s) GROUP BY client) AS h ON h.client = c.client
	      WHERE h.scanned = 0 OR h.last_scan < %[3]s)`, db, scope, sqlTime(since), MaxStaleListed))
	if err != nil {
		return 0, nil, fmt.Errorf("cannot list clients without a recent successful scan: %w", err)
	}
	var n int64
	var stale []string
	if err := scanRow(res, 0, "stale clients", &n, &stale); err != nil {
		return 0, nil, err
	}
	return n, stale, nil
}

// printScan prints the scan report: clients per state of their latest scan, then the stale.
func printScan(w io.Writer, s *Scan) {
	header(w, "scan", s.Site, s.AsOf, scopeText(s.Collection, s.CollectionName), plural(s.Total, "client"))
	if s.States != nil {
		tw := columns(w)
		fmt.Fprintln(tw, "state\tname\tclients\tshare")
		for _, st := range s.States {
			fmt.Fprintf(tw, "%d\t%s\t%d\t%s\n", st.State, st.Name, st.Clients, percent(st.Clients, s.Total))
		}
		_ = tw.Flush()
	} else {
		fmt.Fprintln(w, "by latest scan: not counted (a site has several update sources; per source below)")
	}
	if len(s.Sources) > 1 || (s.States == nil && len(s.Sources) > 0) {
		fmt.Fprintln(w, "per update source:")
		tw := columns(w)
		fmt.Fprintln(tw, "  source"+scanStateColumns())
		for _, src := range s.Sources {
			fmt.Fprintf(tw, "  %s%s\n", clipText(src.Source, 40), scanStateCells(src.States))
		}
		_ = tw.Flush()
	}
	fmt.Fprintf(w, "no successful scan in %d days: %s (%s)\n", s.StaleDays, plural(s.StaleClients, "client"), percent(s.StaleClients, s.Total))
	label, listed := "stale", s.StaleClients
	if s.StaleOf != "" { // a hierarchy: the site's own are listed, the others' counted only
		label, listed = "stale at "+s.StaleOf, int64(len(s.Stale))
	}
	printIDs(w, label, s.Stale, listed, 20)
	if len(s.BySite) > 0 {
		fmt.Fprintln(w, "by site (latest scan; ? where a site has several update sources):")
		tw := columns(w)
		fmt.Fprintf(tw, "  site\tclients%s\tstale %dd\n", scanStateColumns(), s.StaleDays)
		for _, site := range s.BySite {
			fmt.Fprintf(tw, "  %s\t%d%s\t%d\n", site.Site, site.Total, scanStateCells(site.States), site.StaleClients)
		}
		_ = tw.Flush()
	}
	printSites(w, s.Sites)
}

// scanStateColumns is a table's columns of the scan states, by name, each after a tab.
func scanStateColumns() string {
	var b strings.Builder
	t := schema.TopicScan
	for i := range t.StateCount() {
		b.WriteString("\t" + clipText(t.StateName(i), 20))
	}
	return b.String()
}

// scanStateCells is a row's cells under scanStateColumns: the clients in each state, or "?"
// in each when states is nil (not counted).
func scanStateCells(states []StateCount) string {
	var b strings.Builder
	for i := range schema.TopicScan.StateCount() {
		if states == nil || i >= len(states) {
			b.WriteString("\t?")
		} else {
			fmt.Fprintf(&b, "\t%d", states[i].Clients)
		}
	}
	return b.String()
}
