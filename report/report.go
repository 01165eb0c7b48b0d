// Package report computes the named reports of DESIGN §4 over a site's store and serves them:
// GET /v1/reports/NAME as JSON (the same structures back `statepipe report NAME` and, later,
// the Grafana datasource), and POST /v1/sql, analyst SQL that the store vets and runs within
// its SQL limits (schema.SQLLimits). One table, Reports (registry.go), names every report with
// its parameters, its run and its table for people: the API's routes, the CLI's verbs, flags
// and help, and the printed tables all derive from it. Every parameter is judged before a
// query runs (400 naming it), and result rows are decoded with checks, never a panic (rows.go).
//
// Compliance reads the projector's aggregates (agg_states, agg_lists, agg_scans: counts kept
// per scope as reports fold) unless asked to scan. Every other report but trend, and
// compliance with source=scan, read state through the view v_live_state: the greatest serial
// per key, minus keys a later full report removed (folding rules 1 and 2), so an unmerged
// duplicate or a replaced key never shows. Trend reads the raw history (state_messages) to
// rebuild past states, without full-report removal. Compliance applies rule 3: a client in scope with no live
// Installed / Required / Not required state for an update is Not required when its latest
// successful scan is newer than the update's first synchronisation, and Unknown otherwise.
//
// It must not write: every query it runs is a read.
package report

import (
	"context"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/statepipe/statepipe/schema"
)

// Querier runs read statements.
type Querier interface {
	Query(ctx context.Context, query string) (*schema.Result, error)
}

// ReadOnlyQuerier runs a statement supplied by a user, refusing anything that writes or
// reads outside database, the site's.
type ReadOnlyQuerier interface {
	QueryReadOnly(ctx context.Context, database, query string) (*schema.Result, error)
}

// ComplianceParams scope the compliance report.
type ComplianceParams struct {
	List    string   // update list id; or
	Updates []string // update ids; neither: every catalog update (or, with no catalog, every update with states)
	Scope   Scope
	// ExpiredCleanup drops updates that have been expired for longer than this (default 7 days).
	ExpiredCleanup time.Duration
	// Scan computes every count from the live states instead of the projector's aggregates
	// (slower; the aggregates must always agree with it).
	Scan bool
	// NotDeployed keeps of the update set those no deployment of the site holds, and lists
	// only those some client in scope requires (ConfigMgr's "Management 2 – Updates required
	// but not deployed"); the computers line is over the kept set.
	NotDeployed bool
	// Vendor keeps of the update set the updates whose catalog vendor is exactly this (ConfigMgr's
	// "Compliance 4 – Updates by vendor, month, year"); "": any.
	Vendor string
	// Released keeps of the update set the updates the vendor released in this month or year
	// (UTC); an update whose release is unknown, or that is not in the catalog, is not kept.
	// Zero: any.
	Released ReleasedPeriod
	// By groups the per-update counts: GroupVendor, GroupMonth or GroupYear; "": no groups.
	By string
}

// The groupings of the compliance report (by=).
const (
	GroupVendor = "vendor"
	GroupMonth  = "month" // of release, 2026-11
	GroupYear   = "year"  // of release, 2026
)

// ReleasedPeriod is a month or a year of release, UTC: [From, To).
type ReleasedPeriod struct {
	Text     string // as asked and answered: 2026-11 or 2026
	From, To time.Time
}

// IsZero reports whether no period was asked.
func (r ReleasedPeriod) IsZero() bool { return r.Text == "" }

var releasedPeriod = regexp.MustCompile(`^([0-9]{4})(?:-([0-9]{2}))?$`)

// ParseReleasedPeriod reads a month (2026-11) or a year (2026) from 1970 to 2299 (the range
// of a catalog's released); other text is a *ParamError naming released.
func ParseReleasedPeriod(s string) (ReleasedPeriod, error) {
	m := releasedPeriod.FindStringSubmatch(s)
	y, month := 0, 1
	if m != nil {
		y, _ = strconv.Atoi(m[1])
		if m[2] != "" {
			month, _ = strconv.Atoi(m[2])
		}
	}
	if m == nil || y < 1970 || y > 2299 || month < 1 || month > 12 {
		return ReleasedPeriod{}, &ParamError{Field: "released", Message: fmt.Sprintf("released %q: want a month (2026-11) or a year (2026), from 1970 to 2299", s)}
	}
	from := time.Date(y, time.Month(month), 1, 0, 0, 0, 0, time.UTC)
	to := from.AddDate(1, 0, 0)
	if m[2] != "" {
		to = from.AddDate(0, 1, 0)
	}
	return ReleasedPeriod{Text: s, From: from, To: to}, nil
}

// filtered reports whether p keeps of its update set only some by catalog fields.
func (p ComplianceParams) filtered() bool { return p.Vendor != "" || !p.Released.IsZero() }

// catalogFilter is the condition on v_updates that p's vendor and released keep.
func (p ComplianceParams) catalogFilter() string {
	var conds []string
	if p.Vendor != "" {
		conds = append(conds, "vendor = "+Quote(p.Vendor))
	}
	if !p.Released.IsZero() {
		conds = append(conds, fmt.Sprintf("released >= %s AND released < %s", sqlTime(p.Released.From), sqlTime(p.Released.To)))
	}
	return strings.Join(conds, " AND ")
}

// Compliance is the compliance report (DESIGN §4).
type Compliance struct {
	Site             string    `json:"site"`
	AsOf             time.Time `json:"as_of"`
	List             string    `json:"list,omitempty"`
	ListName         string    `json:"list_name,omitempty"`
	RequestedUpdates []string  `json:"requested_updates,omitempty"` // the ids of updates=, sorted, each once
	// NotDeployed: only the updates no deployment holds and some client in scope requires
	// (not_deployed=true).
	NotDeployed bool `json:"not_deployed,omitempty"`
	// Vendor and Released echo the filters asked (vendor=, released=: a month or a year).
	Vendor         string             `json:"vendor,omitempty"`
	Released       string             `json:"released,omitempty"`
	Scope          string             `json:"collection,omitempty"`
	CollectionName string             `json:"collection_name,omitempty"`
	Updates        []UpdateCompliance `json:"updates"` // expired updates past the cleanup age left
	Computers      ComputerCounts     `json:"computers"`
	// ComputersUncounted says why computers holds only the total: over the sites below, the
	// cells count computers per update list, not for a set filtered by vendor or released.
	ComputersUncounted string `json:"computers_uncounted,omitempty"`
	// By and Groups: the per-update counts summed per vendor, month or year of release (by=);
	// a group's counts are update × client pairs.
	By     string            `json:"by,omitempty"`
	Groups []ComplianceGroup `json:"groups,omitzero"`
	// Sites lists, in a site hierarchy, every site counted with its watermark and link state.
	Sites []SiteStatus `json:"sites,omitempty"`
}

// UpdateCompliance counts the clients in scope by their compliance with one update.
type UpdateCompliance struct {
	UpdateID     string  `json:"update_id"`
	Title        string  `json:"title"`
	Installed    int64   `json:"installed"`
	Required     int64   `json:"required"`
	NotRequired  int64   `json:"not_required"`
	Unknown      int64   `json:"unknown"`
	Total        int64   `json:"total"`
	CompliantPct float64 `json:"compliant_pct"` // (installed + not_required) / total × 100; 0 when total is 0
	// Vendor and Released are the catalog's ("" and null when not given, or not in the catalog).
	Vendor   string     `json:"vendor"`
	Released *time.Time `json:"released"`
}

// ComplianceGroup sums the per-update counts of the updates of one vendor, month or year of
// release (by=): Installed … Total count update × client pairs.
type ComplianceGroup struct {
	Group        string  `json:"group"` // the vendor, month (2026-11) or year (2026); "" when not given or unknown
	Updates      int64   `json:"updates"`
	Installed    int64   `json:"installed"`
	Required     int64   `json:"required"`
	NotRequired  int64   `json:"not_required"`
	Unknown      int64   `json:"unknown"`
	Total        int64   `json:"total"`
	CompliantPct float64 `json:"compliant_pct"` // (installed + not_required) / total × 100; 0 when total is 0
}

// ComputerCounts counts clients by compliance with the whole set of updates: compliant when
// every update is Installed or Not required, non-compliant when any is Required, unknown
// otherwise.
type ComputerCounts struct {
	Compliant    int64   `json:"compliant"`
	NonCompliant int64   `json:"non_compliant"`
	Unknown      int64   `json:"unknown"`
	Total        int64   `json:"total"`
	CompliantPct float64 `json:"compliant_pct"` // compliant / total × 100; 0 when total is 0
}

// complianceSet is the update set and scope of a compliance question, resolved: the ids
// (sorted), their SQL (a tuple, or a subquery for a large set) and the WITH clause of the
// queries that count them.
type complianceSet struct {
	ids                      []string
	idSQL                    string
	cte                      string // WITH scope, upd, scans
	catalog                  int64  // catalog size when no list or ids were given
	listName, collectionName string
}

// resolveCompliance resolves the update set and scope of p.
func resolveCompliance(ctx context.Context, q Querier, db string, p ComplianceParams) (*complianceSet, error) {
	if p.ExpiredCleanup == 0 {
		p.ExpiredCleanup = schema.DefaultExpiredCleanup
	}
	cs := &complianceSet{}
	var err error
	if cs.collectionName, err = p.Scope.check(ctx, q, db); err != nil {
		return nil, err
	}
	// The update set as a subquery of one column, uid: a catalog-sized set never inflates the
	// query text, and expired updates past the cleanup age drop out in SQL.
	var base string
	switch {
	case p.List != "":
		if cs.listName, _, err = listUpdates(ctx, q, db, p.List); err != nil {
			return nil, err
		}
		base = fmt.Sprintf("SELECT arrayJoin(updates) AS uid FROM %s.v_update_lists WHERE id = %s", db, Quote(p.List))
	case len(p.Updates) > 0:
		if err := checkUpdates(ctx, q, db, p.Updates, p.Scope.Tree); err != nil {
			return nil, err
		}
		base = "SELECT arrayJoin(" + sqlArray(p.Updates) + ") AS uid"
	default:
		res, err := q.Query(ctx, "SELECT count() FROM "+db+".v_updates")
		if cs.catalog, err = count(res, err, "the catalog's size"); err != nil {
			return nil, err
		}
		base = fmt.Sprintf("SELECT id AS uid FROM %s.v_updates", db)
		switch {
		case cs.catalog == 0 && p.Scope.Tree != nil:
			from, cond := p.Scope.Tree.cells(db, "states")
			base = fmt.Sprintf("SELECT DISTINCT topic_id AS uid FROM %s WHERE %s AND topic_type = 500", from, cond)
		case cs.catalog == 0:
			base = fmt.Sprintf("SELECT DISTINCT topic_id AS uid FROM %s.v_live_state WHERE topic_type = 500", db)
		}
	}
	if p.NotDeployed {
		base = fmt.Sprintf("SELECT uid FROM (%s) WHERE uid NOT IN (SELECT arrayJoin(updates) FROM %s.v_deployments)", base, db)
	}
	if p.filtered() {
		base = fmt.Sprintf("SELECT uid FROM (%s) WHERE uid IN (SELECT id FROM %s.v_updates WHERE %s)", base, db, p.catalogFilter())
	}
	cs.idSQL = fmt.Sprintf(`(SELECT DISTINCT uid FROM (%s) WHERE uid NOT IN
		(SELECT id FROM %s.v_updates WHERE expired = 1 AND expired_at <= now64(3) - toIntervalSecond(%d)))`,
		base, db, int64(p.ExpiredCleanup.Seconds()))
	idRes, err := q.Query(ctx, "SELECT uid FROM "+cs.idSQL+" ORDER BY uid")
	if err != nil {
		return nil, fmt.Errorf("cannot resolve the update set: %w", err)
	}
	if cs.ids, err = stringColumn(idRes, 0, "the update set"); err != nil {
		return nil, err
	}
	// The clients in scope, the updates (with first synchronisation; absent from the catalog
	// means no inference) and each in-scope client's latest successful scan. A resolved set
	// of modest size is inlined, which spares every query re-reading the catalog.
	if len(cs.ids) <= 2000 {
		cs.idSQL = inList(cs.ids)
	}
	scanScope := ""
	if p.Scope.Collection != "" {
		scanScope = "WHERE client IN (SELECT client FROM scope)" // every scanning client is a site client
	}
	cs.cte = fmt.Sprintf(`WITH
	scope AS (%[2]s),
	upd AS (SELECT id, title, first_synced, vendor, released FROM %[1]s.v_updates WHERE id IN %[3]s),
	scans AS (SELECT client, time AS last_scan FROM %[1]s.client_scans FINAL %[4]s)
`, db, p.Scope.clientsSQL(db), cs.idSQL, scanScope)
	return cs, nil
}

// ComplianceReport computes the compliance report of site (database db).
func ComplianceReport(ctx context.Context, q Querier, db, site string, p ComplianceParams) (*Compliance, error) {
	tree := p.Scope.Tree
	if tree.Below() {
		if p.NotDeployed {
			return nil, &ParamError{Field: "not_deployed", Message: "the updates not deployed are a set of this site's: the sites below send per-list counts, not per set; ask each site with site=CODE"}
		}
		if p.Scan {
			return nil, &ParamError{Field: "source", Message: "source=scan recounts this site's own states, and the sites below send counts only: ask each site with site=CODE"}
		}
		unfiltered := p
		unfiltered.Vendor, unfiltered.Released = "", ReleasedPeriod{}
		if _, ok := aggregatedList(unfiltered, 1); !ok {
			return nil, &ParamError{Field: "updates", Message: "per-computer compliance over the sites below needs an update list (list=ID, or none for the catalog): the sites send per-list counts, not their machines"}
		}
	}
	cs, err := resolveCompliance(ctx, q, db, p)
	if err != nil {
		return nil, err
	}
	ids, cte := cs.ids, cs.cte
	rep := &Compliance{Site: site, AsOf: time.Now().UTC(), List: p.List, ListName: cs.listName, Scope: p.Scope.Collection,
		CollectionName: cs.collectionName, Updates: []UpdateCompliance{}, NotDeployed: p.NotDeployed,
		Vendor: p.Vendor, Released: p.Released.Text, By: p.By}
	if p.By != "" {
		rep.Groups = []ComplianceGroup{}
	}
	if tree != nil {
		rep.Sites = tree.Sites
	}
	if len(p.Updates) > 0 {
		rep.RequestedUpdates = slices.Compact(slices.Sorted(slices.Values(p.Updates)))
	}
	total, err := scopeTotal(ctx, q, db, p.Scope)
	if err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		rep.Computers = ComputerCounts{Unknown: total, Total: total}
		return rep, nil
	}
	// Per update: how many clients in scope scanned after the update was synchronised; the
	// inferred Not required are those of them without a live 1/2/3 state (rule 3). The
	// distinct scan times carry how many scans are at least as new (a running sum); each
	// update takes that of the oldest scan newer than its first synchronisation (ASOF). The
	// aggregate path counts scans from agg_scans, the same generation as agg_states.
	dist := `dist AS (SELECT 1 AS k, last_scan, sum(count()) OVER (ORDER BY last_scan DESC) AS newer FROM scans GROUP BY last_scan)`
	if !p.Scan {
		from, cond := tree.cells(db, "scans")
		dist = fmt.Sprintf(`dist AS (SELECT 1 AS k, last_scan, sum(sum(clients)) OVER (ORDER BY last_scan DESC) AS newer
		     FROM %s WHERE scope = %s AND %s GROUP BY last_scan HAVING sum(clients) != 0)`, from, Quote(p.Scope.Collection), cond)
	}
	scanned, err := q.Query(ctx, cte+`,
	`+dist+`
	SELECT u.id, u.title, u.vendor, ifNull(toUnixTimestamp64Milli(u.released), 0), s.newer
	FROM (SELECT 1 AS k, id, title, vendor, released, first_synced FROM upd) AS u
	ASOF LEFT JOIN dist AS s ON u.k = s.k AND u.first_synced < s.last_scan`)
	if err != nil {
		return nil, fmt.Errorf("cannot count scans per update: %w", err)
	}
	// Per update: live counts of 3/2/1 and how many of those clients scanned after the
	// update's first synchronisation — from the aggregates, or by scanning the live states.
	var byUpdate *schema.Result
	if p.Scan {
		byUpdate, err = q.Query(ctx, cte+liveSQL(db, cs.idSQL)+`SELECT topic_id, state, count(), countIf(stated_scanned)
		FROM stx WHERE state IN (1, 2, 3) GROUP BY topic_id, state`)
	} else {
		from, cond := tree.cells(db, "states")
		byUpdate, err = q.Query(ctx, fmt.Sprintf(`SELECT topic_id, state, sum(clients), sum(scanned) FROM %s
		WHERE scope = %s AND topic_type = 500 AND state IN (1, 2, 3) AND topic_id IN %s AND %s GROUP BY topic_id, state`,
			from, Quote(p.Scope.Collection), cs.idSQL, cond))
	}
	if err != nil {
		return nil, fmt.Errorf("cannot count compliance per update: %w", err)
	}
	type counts struct{ n3, n2, n1, statedScanned, scannedAfter int64 }
	per := map[string]*counts{}
	type catalogFields struct {
		title, vendor string
		released      int64 // ms; 0: unknown
	}
	catalog := map[string]catalogFields{}
	get := func(id string) *counts {
		if per[id] == nil {
			per[id] = &counts{}
		}
		return per[id]
	}
	for i := range byUpdate.Rows {
		var id string
		var state, n, statedScanned int64
		if err := scanRow(byUpdate, i, "compliance per update", &id, &state, &n, &statedScanned); err != nil {
			return nil, err
		}
		c := get(id)
		switch state {
		case 3:
			c.n3 = n
		case 2:
			c.n2 = n
		case 1:
			c.n1 = n
		}
		c.statedScanned += statedScanned
	}
	for i := range scanned.Rows {
		var id string
		var f catalogFields
		var after int64
		if err := scanRow(scanned, i, "scans per update", &id, &f.title, &f.vendor, &f.released, &after); err != nil {
			return nil, err
		}
		catalog[id] = f
		get(id).scannedAfter = after
	}
	for _, id := range ids {
		c := get(id)
		f := catalog[id]
		u := UpdateCompliance{UpdateID: id, Title: f.title, Installed: c.n3, Required: c.n2,
			NotRequired: c.n1 + c.scannedAfter - c.statedScanned, Total: total, Vendor: f.vendor}
		if f.released != 0 {
			r := schema.MillisTime(f.released)
			u.Released = &r
		}
		u.Unknown = total - u.Installed - u.Required - u.NotRequired
		u.CompliantPct = pct(u.Installed+u.NotRequired, total)
		rep.Updates = append(rep.Updates, u)
	}
	// Per computer: compliant when every update is 3 or 1 (stated, or inferred from a scan
	// newer than the update), non-compliant when any is 2. The projector keeps these counts
	// per update list and for the whole catalog; an ad-hoc set of updates is evaluated here.
	var compliant, nonCompliant int64
	if p.filtered() && tree.Below() {
		rep.ComputersUncounted = "over the sites below, computers are counted per update list, not for a set filtered by vendor or released: ask each site with site=CODE, or leave vendor and released out"
		rep.Computers = ComputerCounts{Total: total}
		return rep.finish(p), nil
	}
	if list, ok := aggregatedList(p, cs.catalog); ok && !p.Scan {
		from, cond := tree.cells(db, "lists")
		res, err := q.Query(ctx, fmt.Sprintf(`SELECT sumIf(clients, status = 1), sumIf(clients, status = 2) FROM %s
		WHERE scope = %s AND list = %s AND %s`, from, Quote(p.Scope.Collection), Quote(list), cond))
		if err != nil {
			return nil, fmt.Errorf("cannot count compliance per computer: %w", err)
		}
		if err := scanRow(res, 0, "compliance per computer", &compliant, &nonCompliant); err != nil {
			return nil, err
		}
	} else {
		res, err := q.Query(ctx, cs.computersSQL(db)+`SELECT countIf(status = 1), countIf(status = 2) FROM computers`)
		if err != nil {
			return nil, fmt.Errorf("cannot count compliance per computer: %w", err)
		}
		if err := scanRow(res, 0, "compliance per computer", &compliant, &nonCompliant); err != nil {
			return nil, err
		}
	}
	rep.Computers = ComputerCounts{Compliant: compliant, NonCompliant: nonCompliant, Total: total,
		Unknown: total - compliant - nonCompliant, CompliantPct: pct(compliant, total)}
	return rep.finish(p), nil
}

// finish drops of a not_deployed answer the updates no client in scope requires, then groups
// the updates left (by=).
func (rep *Compliance) finish(p ComplianceParams) *Compliance {
	if p.NotDeployed {
		rep.Updates = slices.DeleteFunc(rep.Updates, func(u UpdateCompliance) bool { return u.Required == 0 })
	}
	if p.By == "" {
		return rep
	}
	groups := map[string]*ComplianceGroup{}
	for _, u := range rep.Updates {
		key := u.Vendor
		switch {
		case p.By == GroupVendor:
		case u.Released == nil:
			key = ""
		case p.By == GroupMonth:
			key = u.Released.UTC().Format("2006-01")
		default:
			key = u.Released.UTC().Format("2006")
		}
		g := groups[key]
		if g == nil {
			g = &ComplianceGroup{Group: key}
			groups[key] = g
		}
		g.Updates++
		g.Installed += u.Installed
		g.Required += u.Required
		g.NotRequired += u.NotRequired
		g.Unknown += u.Unknown
		g.Total += u.Total
	}
	for _, g := range groups {
		g.CompliantPct = pct(g.Installed+g.NotRequired, g.Total)
		rep.Groups = append(rep.Groups, *g)
	}
	// By key, the updates of no vendor or an unknown release last.
	slices.SortFunc(rep.Groups, func(a, b ComplianceGroup) int {
		if (a.Group == "") != (b.Group == "") {
			if a.Group == "" {
				return 1
			}
			return -1
		}
		return strings.Compare(a.Group, b.Group)
	})
	return rep
}

// scopeTotal counts the clients in scope: the site's (the members of a collection), or in a
// hierarchy those every site of the tree has heard from (its cells of topic type 0).
func scopeTotal(ctx context.Context, q Querier, db string, s Scope) (int64, error) {
	query := "SELECT count() FROM (" + s.clientsSQL(db) + ")"
	if s.Tree != nil {
		from, cond := s.Tree.cells(db, "states")
		query = fmt.Sprintf("SELECT toInt64(sum(clients)) FROM %s WHERE %s AND scope = %s AND topic_type = 0", from, cond, Quote(s.Collection))
	}
	res, err := q.Query(ctx, query)
	n, err := count(res, err, "clients in scope")
	if err != nil {
		return 0, fmt.Errorf("cannot count clients in scope: %w", err)
	}
	return n, nil
}

// computersSQL continues the set's WITH with computers (client, status): every client in
// scope with its compliance with the whole set, computed from the live states — 1 compliant
// (every update 3 or 1, stated or inferred from a scan newer than the update), 2 non-compliant
// (some update 2), 0 unknown.
func (cs *complianceSet) computersSQL(db string) string {
	return cs.cte + liveSQL(db, cs.idSQL) + fmt.Sprintf(`, (SELECT groupArray(first_synced) FROM upd) AS fss,
	computers AS (
		SELECT client, multiIf(required > 0, 2, ok + arrayCount(x -> x < last_scan, fss) - stated_scanned = %d, 1, 0) AS status
		FROM (
			SELECT s.client AS client, a.required AS required, a.ok AS ok, a.stated_scanned AS stated_scanned, sc.last_scan AS last_scan
			FROM scope AS s
			LEFT JOIN (SELECT client, countIf(state = 2) AS required, countIf(state IN (1, 3)) AS ok, countIf(stated_scanned) AS stated_scanned
			           FROM stx GROUP BY client) AS a ON a.client = s.client
			LEFT JOIN scans AS sc ON sc.client = s.client))
`, len(cs.ids))
}

// aggregatedList names the list whose per-computer counts the projector aggregates for p:
// the update list, or (no list and no update ids, with a catalog) the whole catalog.
func aggregatedList(p ComplianceParams, catalog int64) (string, bool) {
	switch {
	case p.NotDeployed, p.filtered():
		return "", false // a set of its own
	case p.List != "":
		return p.List, true
	case len(p.Updates) == 0 && catalog > 0:
		return "", true
	}
	return "", false
}

// liveSQL continues a WITH (after cte) with the live update-compliance states of scope ×
// updates, each with whether the client scanned after the update's first synchronisation.
func liveSQL(db, idSQL string) string {
	return fmt.Sprintf(`,
	st AS (SELECT topic_id, client, state FROM %[1]s.v_live_state
	       WHERE topic_type = 500 AND topic_id IN %[2]s AND client IN (SELECT client FROM scope)),
	stx AS (SELECT st.topic_id AS topic_id, st.client AS client, st.state AS state,
	               st.state IN (1, 2, 3) AND u.id != '' AND sc.last_scan > u.first_synced AS stated_scanned
	        FROM st LEFT JOIN scans AS sc ON sc.client = st.client LEFT JOIN upd AS u ON u.id = st.topic_id)
`, db, idSQL)
}

// sqlArray renders ids as a ClickHouse array literal.
func sqlArray(ids []string) string {
	return "[" + strings.TrimSuffix(strings.TrimPrefix(inList(ids), "("), ")") + "]"
}

// Fenced is the condition that keeps, of an agg_* table of db, the cells readers count: per
// partition, those of its current epoch (schema/ddl/0009; a process that lost the partition
// may still write under its old epoch, and those cells are never counted).
func Fenced(db string) string {
	return "(partition, epoch) IN (SELECT partition, epoch FROM " + db + ".v_agg_fences)"
}

// Quote returns s as a ClickHouse string literal.
func Quote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`)
	return "'" + r.Replace(s) + "'"
}

func round2(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }

// pct is part / total × 100 to two decimals, 0 when total is 0.
func pct(part, total int64) float64 {
	if total <= 0 {
		return 0
	}
	return round2(float64(part) * 100 / float64(total))
}

// printCompliance prints the compliance report: per update (id and title) its counts and the
// compliant share, then the computers, then how to drill down.
func printCompliance(w io.Writer, c *Compliance) {
	what := "every catalog update"
	if c.List != "" || len(c.RequestedUpdates) > 0 {
		what = listText(c.List, c.ListName, len(c.RequestedUpdates))
	}
	if c.NotDeployed {
		what += ", required but not deployed"
	}
	if c.Vendor != "" {
		what += ", vendor " + c.Vendor
	}
	if c.Released != "" {
		what += ", released in " + c.Released
	}
	header(w, "compliance", c.Site, c.AsOf, what, scopeText(c.Scope, c.CollectionName))
	tw := columns(w)
	if c.By != "" {
		// The groups stand for the updates: --json lists both.
		fmt.Fprintf(tw, "%s\tupdates\tinstalled\trequired\tnot required\tunknown\ttotal\tcompliant\n", c.By)
		for _, g := range c.Groups {
			key := g.Group
			if key == "" {
				key = "(unknown)"
			}
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\n", clipText(key, 40), g.Updates, g.Installed, g.Required, g.NotRequired,
				g.Unknown, g.Total, percent(g.Installed+g.NotRequired, g.Total))
		}
		_ = tw.Flush()
		fmt.Fprintf(w, "(update × client pairs per %s; each update: without --by, or --json)\n", c.By)
	} else {
		// Vendor and release date are columns when the catalog gives any.
		catalog := slices.ContainsFunc(c.Updates, func(u UpdateCompliance) bool { return u.Vendor != "" || u.Released != nil })
		fmt.Fprint(tw, "update\tinstalled\trequired\tnot required\tunknown\ttotal\tcompliant\t")
		if catalog {
			fmt.Fprint(tw, "vendor\treleased\t")
		}
		fmt.Fprintln(tw, "title")
		for _, u := range c.Updates {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%s\t", u.UpdateID, u.Installed, u.Required, u.NotRequired,
				u.Unknown, u.Total, percent(u.Installed+u.NotRequired, u.Total))
			if catalog {
				vendor, released := u.Vendor, "—"
				if vendor == "" {
					vendor = "—"
				}
				if u.Released != nil {
					released = u.Released.UTC().Format(time.DateOnly)
				}
				fmt.Fprintf(tw, "%s\t%s\t", clipText(vendor, 30), released)
			}
			fmt.Fprintln(tw, clipText(u.Title, 60))
		}
		_ = tw.Flush()
	}
	cc := c.Computers
	if c.ComputersUncounted != "" {
		fmt.Fprintf(w, "computers: %d in scope, not counted by compliance (%s)\n", cc.Total, c.ComputersUncounted)
	} else {
		fmt.Fprintf(w, "computers: %d compliant (%s), %d non-compliant (%s), %d unknown (%s), %d total\n",
			cc.Compliant, percent(cc.Compliant, cc.Total), cc.NonCompliant, percent(cc.NonCompliant, cc.Total),
			cc.Unknown, percent(cc.Unknown, cc.Total), cc.Total)
	}
	printSites(w, c.Sites)
	scope := ""
	if c.Scope != "" {
		scope = " --collection " + c.Scope
	}
	set := " --updates IDS" // the catalog: machines takes a list or ids
	switch {
	case c.Vendor != "" || c.Released != "" || c.NotDeployed:
		// The computers line is over the updates kept: the same set, by their ids.
		if ids := updateIDs(c.Updates); len(ids) > 0 && len(ids) <= 10 {
			set = " --updates " + strings.Join(ids, ",")
		}
	case c.List != "":
		set = " --list " + c.List
	case len(c.RequestedUpdates) > 0:
		set = " --updates " + strings.Join(c.RequestedUpdates, ",")
	}
	fmt.Fprintf(w, "machines of a cell: statepipe report machines --update ID --state required%s; of the computers: statepipe report machines%s --state non_compliant%s\n",
		scope, set, scope)
}

// updateIDs returns the ids of the rows, in their order.
func updateIDs(rows []UpdateCompliance) []string {
	ids := make([]string, len(rows))
	for i, u := range rows {
		ids[i] = u.UpdateID
	}
	return ids
}
