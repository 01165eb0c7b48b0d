package report

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/statepipe/statepipe/schema"
)

// MachinesParams select one cell of a report and a page of its machines: the clients of scope
// in a compliance state of one update (update), in a per-computer status for a set of updates
// (list or updates), or targeted by a deployment in an enforcement state (deployment).
type MachinesParams struct {
	// State names the cell: installed, required, not_required or unknown (or 3 to 0) with
	// Update; compliant, non_compliant or unknown with List or Updates; a deployment
	// enforcement state number with Deployment.
	State      string
	Update     string
	List       string
	Updates    []string
	Deployment string
	// Error names an HRESULT ("0x80070643", or its signed or unsigned decimal): the cell is the
	// clients whose live update (402) or deployment (301) enforcement state carries it — with
	// Deployment, over its updates and itself and its target collection only (the errors
	// report's drill-down, ConfigMgr's "Troubleshooting 4"); with Topic "scan", whose live
	// scan (501) state of some update source carries it ("Troubleshooting 3").
	Error string
	// Topic, with Deployment, names the deployment's states the cell is of: "enforcement"
	// (301, the default), "evaluation" (302) or "compliance" (300); with Deployment and Update,
	// the update's enforcement (402) among the deployment's targets. "scan" names a scan cell:
	// with State (a 501 state number) the clients in scope whose latest scan is in that state,
	// those that never reported one in 0 (the scan report's drill-down, ConfigMgr's "Scan 3"
	// and "Scan 4"); with Error, the scan error's clients.
	Topic string
	// Scope is the clients counted: a collection's members, or every client of the site; not
	// with Deployment (its targets are its collection's members). Its Tree, in a site
	// hierarchy, adds Elsewhere (the machines are always this site's own).
	Scope Scope
	// After pages: the machines after this client id (the previous page's Next).
	After string
	// Limit is the page size (default DefaultMachinesPage, at most MaxMachinesPage).
	Limit int
	// ExpiredCleanup drops updates expired for longer than this from a list (default 7 days).
	ExpiredCleanup time.Duration
}

// Page sizes of the machines report.
const (
	DefaultMachinesPage = 100
	MaxMachinesPage     = 1000
)

// Machines is the machines report: the drill-down from a cell of the compliance, update or
// deployment report to the clients counted in it, sorted by id, a page at a time.
type Machines struct {
	Site           string    `json:"site"`
	AsOf           time.Time `json:"as_of"`
	Update         string    `json:"update,omitempty"`
	Title          string    `json:"title,omitempty"`
	List           string    `json:"list,omitempty"`
	ListName       string    `json:"list_name,omitempty"`
	Updates        []string  `json:"updates,omitempty"` // the set evaluated, with list or updates
	Deployment     string    `json:"deployment,omitempty"`
	DeploymentName string    `json:"deployment_name,omitempty"`
	Topic          string    `json:"topic,omitempty"` // with deployment: the states asked (enforcement, evaluation, compliance)
	Error          string    `json:"error,omitempty"` // the HRESULT of an error cell (0x%08X)
	Collection     string    `json:"collection,omitempty"`
	CollectionName string    `json:"collection_name,omitempty"`
	State          string    `json:"state"`      // the cell, as asked
	StateName      string    `json:"state_name"` // the cell, for people
	Total          int64     `json:"total"`      // machines in the cell, every page
	Machines       []string  `json:"machines"`   // this page, sorted
	// Next is the last machine of this page when more follow: pass it as after= for the next
	// page. Absent on the last page.
	Next string `json:"next,omitempty"`
	// Elsewhere, in a site hierarchy, names the other sites of the tree that count machines
	// in the same cell, with how many (from their cells) and the request that lists them
	// there: a site holds its own clients' rows only, so Machines and Total are this site's.
	Elsewhere []ElsewhereSite `json:"elsewhere,omitempty"`
	// Sites lists, in a site hierarchy, every site of the tree with its watermark and link
	// state.
	Sites []SiteStatus `json:"sites,omitempty"`
}

// ElsewhereSite is a site below that counts machines in the cell a machines report asked
// about.
type ElsewhereSite struct {
	Site string `json:"site"`
	// Machines in the cell at that site; null when its counts cannot tell (an ad-hoc set of
	// updates: the sites count per update list, not per set), then every site is listed.
	Machines *int64 `json:"machines"`
	// Ask is the path and query that lists them, sent to that site (its own URL, or a
	// listener serving the whole topology, which routes by site=).
	Ask string `json:"ask"`
	// URL is the site's report URL with Ask, where the topology names the site's URL.
	URL string `json:"url,omitempty"`
}

// Per-computer statuses of the machines report (and of ComputerCounts).
var computerStatuses = map[string]int{ComputerUnknown: 0, ComputerCompliant: 1, ComputerNonCompliant: 2}

// MachinesReport computes one page of the machines report of site (database db). The cells
// are those the reports count, by the same rules: an update's by folding rule 3 (UpdateReport),
// a set's per computer (the compliance report's computers, from the live states), a
// deployment's over its target collection with silent clients in state 0 (rule 4).
//
// In a site hierarchy (p.Scope.Tree) it lists the site's own machines (counted as the site
// counts in a hierarchy: the members of a collection it has heard from; none when site=
// named a subtree below it), and Elsewhere the other sites of the tree with machines in the
// same cell, counted from their cells, each with the request that lists them at that site.
func MachinesReport(ctx context.Context, q Querier, db, site string, p MachinesParams) (*Machines, error) {
	if p.Limit == 0 {
		p.Limit = DefaultMachinesPage
	}
	if p.Limit < 0 || p.Limit > MaxMachinesPage {
		return nil, &ParamError{Field: "limit", Message: fmt.Sprintf("limit must be from 1 to %d", MaxMachinesPage)}
	}
	given := 0
	switch p.Topic {
	case "", "enforcement", "evaluation", "compliance":
	case TopicScan:
		if p.Update != "" || p.List != "" || len(p.Updates) > 0 || p.Deployment != "" {
			return nil, &ParamError{Field: "topic", Message: "topic=scan names a scan cell (with state, a latest scan state; with error, a scan error): leave update, list, updates and deployment out"}
		}
	default:
		return nil, &ParamError{Field: "topic", Message: fmt.Sprintf("topic %q: want scan (with state or error), or with deployment enforcement, evaluation or compliance", clipText(p.Topic, 40))}
	}
	scanCell := p.Topic == TopicScan && p.Error == ""
	for _, g := range []bool{p.Update != "" && p.Deployment == "", p.List != "" || len(p.Updates) > 0, p.Deployment != "" || p.Error != "", scanCell} {
		if g {
			given++
		}
	}
	if given != 1 {
		return nil, &ParamError{Field: "update", Message: "name one cell: update (with state installed, required, not_required or unknown), list or updates (with state compliant, non_compliant or unknown), deployment (with a state number), error (an HRESULT, alone or with deployment, or with topic=scan) or topic=scan (with a scan state number)"}
	}
	rep := &Machines{Site: site, AsOf: time.Now().UTC(), Update: p.Update, List: p.List, Deployment: p.Deployment,
		Collection: p.Scope.Collection, State: p.State, Machines: []string{}}
	var prefix, cell string // the cell's clients: prefix + "SELECT client FROM " + cell
	var err error
	tree := p.Scope.Tree
	// elsewhere counts the cell at another site of the tree from its cells; nil: the cells
	// cannot tell.
	elsewhere := func(string) *int64 { return nil }
	switch {
	case p.Error != "":
		code, ok := parseHRESULT(p.Error)
		switch {
		case !ok:
			return nil, &ParamError{Field: "error", Message: fmt.Sprintf("error %q: want an HRESULT, 0x80070643 or its decimal", clipText(p.Error, 40))}
		case code == 0:
			return nil, &ParamError{Field: "error", Message: "error 0 is success, not an error: the errors report lists the HRESULTs there are"}
		case p.State != "":
			return nil, &ParamError{Field: "state", Message: "the cell of an error is its machines: leave state out"}
		case p.Topic != "" && p.Topic != TopicScan:
			return nil, &ParamError{Field: "topic", Message: fmt.Sprintf("topic %q: with error, want scan (501 errors) or nothing (enforcement errors)", clipText(p.Topic, 40))}
		case p.Update != "":
			return nil, &ParamError{Field: "update", Message: "with error, name a deployment or nothing"}
		}
		rep.Error, rep.StateName, rep.Topic = schema.HRESULTHex(code), schema.DescribeHRESULT(code), p.Topic
		where := schema.ErrorTopicsSQL()
		if p.Topic == TopicScan {
			where = fmt.Sprintf("topic_type = %d", schema.TopicScan)
		}
		if tree != nil && p.Deployment == "" {
			by, err := errorBySite(ctx, q, db, tree, p.Scope.Collection, p.Topic == TopicScan, code)
			if err != nil {
				return nil, err
			}
			elsewhere = func(site string) *int64 { n := by[site]; return &n }
		}
		if p.Deployment != "" {
			dep, err := lookupDeployment(ctx, q, db, p.Deployment)
			if err != nil {
				return nil, err
			}
			rep.DeploymentName, rep.Collection, rep.CollectionName = dep.name, dep.collection, dep.collectionName
			d := Quote(p.Deployment)
			where = fmt.Sprintf(`((topic_type = 402 AND topic_id IN (SELECT arrayJoin(updates) FROM %[1]s.v_deployments WHERE id = %[2]s))
			    OR (topic_type = 301 AND topic_id = %[2]s)) AND client IN (%[3]s)`, db, d, Scope{Collection: dep.collection, Tree: tree}.clientsSQL(db))
		} else if p.Scope.Collection != "" {
			if rep.CollectionName, err = p.Scope.check(ctx, q, db); err != nil {
				return nil, err
			}
			where += " AND client IN (" + p.Scope.clientsSQL(db) + ")"
		}
		cell = fmt.Sprintf("(SELECT DISTINCT client FROM %s.v_live_state WHERE error = %d AND %s) WHERE 1", db, code, where)
	case scanCell:
		t := schema.TopicScan
		st, err := strconv.Atoi(p.State)
		if err != nil || st < 0 || st >= t.StateCount() {
			return nil, &ParamError{Field: "state", Message: fmt.Sprintf("state %q: with topic=scan, want a scan (501) state, 0 to %d (3 Completed, 5 Failed …)", clipText(p.State, 40), t.StateCount()-1)}
		}
		if rep.CollectionName, err = p.Scope.check(ctx, q, db); err != nil {
			return nil, err
		}
		rep.Topic, rep.StateName = p.Topic, t.StateName(st)
		cell = fmt.Sprintf(`(SELECT c.client AS client, ifNull(s.state, 0) AS state FROM (%[2]s) AS c
		LEFT JOIN (SELECT client, argMax(state, serial) AS state FROM %[1]s.v_live_state
		           WHERE topic_type = 501 GROUP BY client) AS s ON s.client = c.client) WHERE state = %[3]d`, db, p.Scope.clientsSQL(db), st)
		if tree != nil {
			bySite, _, err := scanBySite(ctx, q, db, tree, p.Scope.Collection)
			if err != nil {
				return nil, err
			}
			elsewhere = func(site string) *int64 {
				for _, s := range bySite {
					if s.Site == site && s.States != nil {
						return &s.States[st].Clients
					}
				}
				return nil // several sources there: its cells cannot tell
			}
		}
	case p.Update != "" && p.Deployment == "":
		st, ok := complianceState(p.State)
		if !ok {
			return nil, &ParamError{Field: "state", Message: fmt.Sprintf("state %q: with update, want installed, required, not_required or unknown (or 3 to 0)", p.State)}
		}
		rep.StateName = schema.TopicUpdateCompliance.StateName(st)
		if rep.CollectionName, err = p.Scope.check(ctx, q, db); err != nil {
			return nil, err
		}
		ref, err := lookupUpdate(ctx, q, db, p.Update, tree)
		if err != nil {
			return nil, err
		}
		rep.Title = ref.title
		cell = fmt.Sprintf("(%s) WHERE state = %d", updateStatesSQL(db, p.Scope.clientsSQL(db), p.Update, ref.inCatalog), st)
		if tree != nil {
			by, err := updateBySite(ctx, q, db, tree, p.Scope.Collection, p.Update, ref.inCatalog)
			if err != nil {
				return nil, err
			}
			elsewhere = func(site string) *int64 {
				c := by[site]
				if c == nil {
					return nil
				}
				n := [4]int64{c.unknown(), c.notRequired, c.required, c.installed}[st]
				return &n
			}
		}
	case p.Deployment != "":
		states, topicID, err := p.deploymentTopic()
		if err != nil {
			return nil, err
		}
		st, err := strconv.Atoi(p.State)
		if err != nil || st < 0 || st >= states.StateCount() {
			return nil, &ParamError{Field: "state", Message: fmt.Sprintf("state %q: with deployment, want a %d state, 0 to %d", p.State, states, states.StateCount()-1)}
		}
		if p.Scope.Collection != "" {
			return nil, &ParamError{Field: "collection", Message: "a deployment's machines are its target collection's: leave collection out"}
		}
		rep.StateName = states.StateName(st)
		dep, err := lookupDeployment(ctx, q, db, p.Deployment)
		if err != nil {
			return nil, err
		}
		rep.DeploymentName, rep.Collection, rep.CollectionName, rep.Topic = dep.name, dep.collection, dep.collectionName, p.Topic
		if topicID == "" {
			topicID = dep.id
		} else {
			ref, err := lookupUpdate(ctx, q, db, topicID, tree)
			if err != nil {
				return nil, err
			}
			rep.Title = ref.title
			ids, err := deploymentUpdates(ctx, q, db, dep.id)
			if err != nil {
				return nil, err
			}
			if !slices.Contains(ids, topicID) {
				return nil, &ParamError{Field: "update", Message: fmt.Sprintf("update %s is not one of deployment %s's (%s)", topicID, dep.id, strings.Join(ids, ", "))}
			}
		}
		cell = fmt.Sprintf("(%s) WHERE state = %d", dep.targetedStatesSQL(db, tree, states, topicID), st)
		if tree != nil {
			by, err := targetedBySite(ctx, q, db, tree, dep, states, topicID)
			if err != nil {
				return nil, err
			}
			elsewhere = func(site string) *int64 {
				for _, s := range by {
					if s.Site == site && st < len(s.States) {
						return &s.States[st].Clients
					}
				}
				return nil
			}
		}
	default:
		key := strings.ReplaceAll(strings.ToLower(p.State), "-", "_")
		status, ok := computerStatuses[key]
		if !ok {
			return nil, &ParamError{Field: "state", Message: fmt.Sprintf("state %q: with list or updates, want compliant, non_compliant or unknown", p.State)}
		}
		rep.StateName = map[int]string{0: "Unknown", 1: "Compliant", 2: "Non-compliant"}[status]
		if p.List != "" && len(p.Updates) > 0 {
			return nil, &ParamError{Field: "updates", Message: "give list or updates, not both"}
		}
		cs, err := resolveCompliance(ctx, q, db, ComplianceParams{List: p.List, Updates: p.Updates, Scope: p.Scope, ExpiredCleanup: p.ExpiredCleanup, Scan: true})
		if err != nil {
			return nil, err
		}
		rep.ListName, rep.CollectionName, rep.Updates = cs.listName, cs.collectionName, cs.ids
		if len(cs.ids) == 0 { // no updates: every client is unknown
			cell = fmt.Sprintf("(SELECT client, 0 AS status FROM (%s)) WHERE status = %d", p.Scope.clientsSQL(db), status)
		} else {
			prefix, cell = cs.computersSQL(db), fmt.Sprintf("computers WHERE status = %d", status)
		}
		if tree != nil && p.List != "" {
			by, err := listBySite(ctx, q, db, tree, p.Scope.Collection, p.List)
			if err != nil {
				return nil, err
			}
			elsewhere = func(site string) *int64 {
				if c := by[site]; c != nil {
					return &c[status]
				}
				return nil
			}
		}
	}
	if tree != nil {
		rep.Sites = tree.Sites
		for _, site := range tree.order() {
			if site == tree.Self {
				continue
			}
			n := elsewhere(site)
			if n != nil && *n == 0 {
				continue
			}
			e := ElsewhereSite{Site: site, Machines: n, Ask: p.ask(site)}
			if u := tree.URLs[site]; u != "" {
				e.URL = strings.TrimRight(u, "/") + e.Ask
			}
			rep.Elsewhere = append(rep.Elsewhere, e)
		}
		if !tree.counts(tree.Self) {
			return rep, nil // site= named a subtree below: none of its machines are here
		}
	}
	res, err := q.Query(ctx, prefix+"SELECT count() FROM "+cell)
	if rep.Total, err = count(res, err, "the machines of the cell"); err != nil {
		return nil, err
	}
	res, err = q.Query(ctx, fmt.Sprintf("%sSELECT client FROM %s AND client > %s ORDER BY client LIMIT %d", prefix, cell, Quote(p.After), p.Limit+1))
	if err != nil {
		return nil, fmt.Errorf("cannot list the machines of the cell: %w", err)
	}
	page, err := stringColumn(res, 0, "the machines of the cell")
	if err != nil {
		return nil, err
	}
	if len(page) > p.Limit {
		page = page[:p.Limit]
		rep.Next = page[len(page)-1]
	}
	rep.Machines = append(rep.Machines, page...)
	return rep, nil
}

// parseHRESULT reads an HRESULT as people write it: 0x and 1–8 hex digits, or a decimal that
// fits int32 or uint32; it returns the int32 it travels as.
func parseHRESULT(s string) (int32, bool) {
	if h, ok := strings.CutPrefix(strings.ToLower(s), "0x"); ok {
		u, err := strconv.ParseUint(h, 16, 32)
		return int32(uint32(u)), err == nil && h != ""
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil && n >= -1<<31 && n < 1<<32 {
		return int32(uint32(n)), true
	}
	return 0, false
}

// TopicScan is the machines report's topic of scan cells (MachinesParams.Topic).
const TopicScan = "scan"

// errorBySite counts per origin of the tree the clients in scope (collection id, or "" for
// the whole site) whose enforcement errors (or scan errors) carry code, from their cells.
func errorBySite(ctx context.Context, q Querier, db string, tree *Tree, scope string, scan bool, code int32) (map[string]int64, error) {
	from, cond := tree.cells(db, "errors")
	tt := 0
	if scan {
		tt = int(schema.TopicScan)
	}
	return bySite(ctx, q, fmt.Sprintf(`SELECT origin_site, toInt64(sum(clients)) FROM %s
	WHERE %s AND scope = %s AND topic_type = %d AND topic_id = '' AND error = %d GROUP BY origin_site`, from, cond, Quote(scope), tt, code),
		"the error's machines per site")
}

// deploymentTopic returns the topic type and id (the update's; "" for the deployment's own)
// of a deployment cell.
func (p MachinesParams) deploymentTopic() (schema.TopicType, string, error) {
	switch {
	case p.Update != "" && p.Topic != "" && p.Topic != "enforcement":
		return 0, "", &ParamError{Field: "topic", Message: "with deployment and update, the cell is the update's enforcement (402): leave topic out"}
	case p.Update != "":
		return schema.TopicUpdateEnforcement, p.Update, nil
	}
	switch p.Topic {
	case "", "enforcement":
		return schema.TopicDeploymentEnforcement, "", nil
	case "evaluation":
		return schema.TopicDeploymentEvaluation, "", nil
	case "compliance":
		return schema.TopicDeploymentCompliance, "", nil
	}
	return 0, "", &ParamError{Field: "topic", Message: fmt.Sprintf("topic %q: want enforcement (the default), evaluation or compliance", p.Topic)}
}

// ask is the request that lists the machines of the same cell at site.
func (p MachinesParams) ask(site string) string {
	v := url.Values{"site": {site}}
	if p.State != "" {
		v.Set("state", p.State)
	}
	for name, id := range map[string]string{"update": p.Update, "list": p.List, "deployment": p.Deployment, "collection": p.Scope.Collection, "topic": p.Topic, "error": p.Error} {
		if id != "" {
			v.Set(name, id)
		}
	}
	if len(p.Updates) > 0 {
		v.Set("updates", strings.Join(p.Updates, ","))
	}
	return "/v1/reports/machines?" + v.Encode()
}

// complianceState reads an update-compliance state by name or number.
func complianceState(s string) (int, bool) {
	switch strings.ReplaceAll(strings.ToLower(s), "-", "_") {
	case "installed", "3":
		return schema.ComplianceInstalled, true
	case "required", "2":
		return schema.ComplianceRequired, true
	case "not_required", "1":
		return schema.ComplianceNotRequired, true
	case "unknown", "0":
		return schema.ComplianceUnknown, true
	}
	return 0, false
}

// printMachines prints a page of the machines report: the cell, then one machine a line, then
// how to get the next page.
func printMachines(w io.Writer, m *Machines) {
	var cell string
	switch {
	case m.Error != "":
		cell = "error " + m.Error
		if m.Topic == TopicScan {
			cell = "scan error " + m.Error
		}
		if m.Deployment != "" {
			cell += " in deployment " + named(m.Deployment, m.DeploymentName)
		}
	case m.Topic == TopicScan:
		cell = "latest scan"
	case m.Update != "" && m.Deployment == "":
		cell = "update " + named(m.Update, m.Title)
	case m.Deployment != "":
		cell = "deployment " + named(m.Deployment, m.DeploymentName)
		if m.Update != "" {
			cell += ", update " + named(m.Update, m.Title) + " enforcement"
		} else if m.Topic != "" {
			cell += " " + m.Topic
		}
	default:
		cell = listText(m.List, m.ListName, len(m.Updates))
	}
	header(w, "machines", m.Site, m.AsOf, cell, "state "+m.StateName, scopeText(m.Collection, m.CollectionName),
		plural(m.Total, "machine"))
	for _, c := range m.Machines {
		fmt.Fprintln(w, c)
	}
	if m.Next != "" {
		fmt.Fprintf(w, "(%d shown; the next page: --after %s)\n", len(m.Machines), m.Next)
	}
	if len(m.Elsewhere) > 0 {
		fmt.Fprintln(w, "elsewhere (each site lists its own machines):")
		tw := columns(w)
		fmt.Fprintln(tw, "  site\tmachines\task")
		for _, e := range m.Elsewhere {
			n := "?"
			if e.Machines != nil {
				n = fmt.Sprint(*e.Machines)
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", e.Site, n, e.Ask)
		}
		_ = tw.Flush()
	}
	printSites(w, m.Sites)
}
