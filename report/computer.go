package report

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/statepipe/statepipe/schema"
)

// ComputerParams select the computer report: one client against an update list, ids, or a
// deployment's updates.
type ComputerParams struct {
	Client  string   // required
	List    string   // update list id; or
	Updates []string // update ids; or
	// Deployment is a deployment id: the report is about its updates, and also shows the
	// client's deployment states for it (ConfigMgr's "States 3").
	Deployment string
	// ExpiredCleanup drops updates expired for longer than this, as the compliance report
	// does (default 7 days).
	ExpiredCleanup time.Duration
	// Tree is the part of a site hierarchy the answer is asked about (tree.go); nil for a
	// standalone site. A client's rows are at its own site only (OwnSiteOnly).
	Tree *Tree
}

// Computer compliance values (folding rule 3).
const (
	ComputerCompliant    = "compliant"     // every update Installed or Not required
	ComputerNonCompliant = "non_compliant" // some update Required
	ComputerUnknown      = "unknown"       // otherwise (also for an empty update set)
)

// Computer is the computer report (DESIGN §4): one machine against a set of updates.
type Computer struct {
	Site         string           `json:"site"`
	AsOf         time.Time        `json:"as_of"`
	Client       string           `json:"client"`
	List         string           `json:"list,omitempty"`
	ListName     string           `json:"list_name,omitempty"`
	LastScanTime *time.Time       `json:"last_scan_time"` // latest successful scan (client clock); null if none
	Compliant    string           `json:"compliant"`      // ComputerCompliant, ComputerNonCompliant or ComputerUnknown
	Updates      []ComputerUpdate `json:"updates"`
	// OwnSiteOnly, in a site hierarchy, says that the answer is from the site's own rows:
	// a client of a site below is answered by that site (here it is not found).
	OwnSiteOnly bool `json:"own_site_only,omitempty"`
	// Sites, in a site hierarchy, is the one site read: the site answering.
	Sites []SiteStatus `json:"sites,omitempty"`
	// Deployment, when the report is asked about one, is the deployment and the client's
	// states for it; Updates are then the deployment's updates.
	Deployment *ComputerDeployment `json:"deployment,omitempty"`
}

// ComputerDeployment is one client's standing in one deployment (ConfigMgr's "States 3"):
// whether the deployment targets it, and its live deployment compliance (300), enforcement
// (301) and evaluation (302) states. A targeted client with no live state of a type is in
// state 0 of it (folding rule 4, as the deployment report counts it); a client the
// deployment does not target shows only the live states it has (null for the others): the
// deployment report does not count them.
type ComputerDeployment struct {
	DeploymentID   string `json:"deployment_id"`
	Name           string `json:"name"`
	Collection     string `json:"collection"` // the target collection
	CollectionName string `json:"collection_name,omitempty"`
	// Targeted says that the client is a member of the target collection (in a site
	// hierarchy, a member this site heard from: the set the deployment report counts).
	Targeted    bool           `json:"targeted"`
	Compliance  *ComputerState `json:"compliance"`  // 300
	Enforcement *ComputerState `json:"enforcement"` // 301
	Evaluation  *ComputerState `json:"evaluation"`  // 302
}

// ComputerState is a client's state of one topic type for a deployment.
type ComputerState struct {
	TopicType int    `json:"topic_type"`
	State     int    `json:"state"`
	StateName string `json:"state_name"`
	// Serial and Time (client clock) are those of the live state: 0 and null when there is
	// none (a targeted client in state 0 by folding rule 4).
	Serial      uint64     `json:"serial"`
	Time        *time.Time `json:"time"`
	Error       int32      `json:"error"` // HRESULT, 0 when none
	Hex         string     `json:"hex"`
	Description string     `json:"description,omitempty"` // from schema.HRESULTs; "" when unknown
}

// ComputerUpdate is the client's compliance with one update, and its enforcement if any.
type ComputerUpdate struct {
	UpdateID  string     `json:"update_id"`
	Title     string     `json:"title"`
	State     int        `json:"state"` // 500 state: 0 unknown, 1 not required, 2 required, 3 installed
	StateName string     `json:"state_name"`
	Serial    uint64     `json:"serial"`   // of the live 500 state; 0 when inferred or unknown
	Time      *time.Time `json:"time"`     // client clock of the live 500 state; null otherwise
	Inferred  bool       `json:"inferred"` // Not required inferred from a scan newer than the update

	// The live update enforcement (402) state, when the client has one for the update.
	EnforcementState *int   `json:"enforcement_state,omitempty"`
	EnforcementName  string `json:"enforcement_state_name,omitempty"`
	Error            *int32 `json:"error,omitempty"`
	Hex              string `json:"hex,omitempty"`
}

// ComputerReport computes the computer report of site (database db). Each update's state
// follows folding rule 3: the live 500 state when it is 1, 2 or 3; else Not required when the
// client's latest successful scan is newer than the update's first synchronisation (an update
// missing from the catalog cannot be inferred); else Unknown. A client the site never heard
// from and no collection names is a NotFoundError.
//
// With p.Deployment the updates are every update of the deployment (as the deployment report
// lists them, expired or not), and Deployment shows the client's deployment states
// (computerDeployment).
func ComputerReport(ctx context.Context, q Querier, db, site string, p ComputerParams) (*Computer, error) {
	if p.Client == "" {
		return nil, &ParamError{Field: "client", Message: "client (a client id) is required"}
	}
	if err := p.Tree.ownOnly("computer"); err != nil {
		return nil, err
	}
	var ids []string
	var listName string
	var dep *deploymentRef
	var err error
	switch {
	case p.Deployment != "" && (p.List != "" || len(p.Updates) > 0):
		return nil, &ParamError{Field: "deployment", Message: "give list, updates or deployment, one of them (deployment is about the deployment's updates)"}
	case p.Deployment != "":
		if dep, err = lookupDeployment(ctx, q, db, p.Deployment); err != nil {
			return nil, err
		}
		if ids, err = deploymentUpdates(ctx, q, db, p.Deployment); err != nil {
			return nil, err
		}
	case p.List == "" && len(p.Updates) == 0:
		return nil, &ParamError{Field: "list", Message: "list (an update list id), updates (comma-separated update ids) or deployment (a deployment id) is required"}
	default:
		if ids, listName, err = updateSet(ctx, q, db, p.List, p.Updates, p.ExpiredCleanup); err != nil {
			return nil, err
		}
	}
	c := Quote(p.Client)
	lastScan := fmt.Sprintf("(SELECT argMaxOrNull(time, serial) FROM %s.scan_history WHERE client = %s)", db, c)
	// A client is known when it reported or a collection names it; in a hierarchy, when it
	// reported here (a member it never heard from may be a client of another site).
	members := fmt.Sprintf(" + (SELECT count() FROM %s.v_collection_members WHERE client = %s)", db, c)
	if p.Tree != nil {
		members = ""
	}
	res, err := q.Query(ctx, fmt.Sprintf(`SELECT %[3]s,
	    (SELECT count() FROM %[1]s.clients WHERE client = %[2]s)%[4]s`,
		db, c, lastScan, members))
	if err != nil {
		return nil, fmt.Errorf("cannot read client %q: %w", p.Client, err)
	}
	var known int64
	var lastScan0 any
	if err := scanRow(res, 0, "the client "+p.Client, &lastScan0, &known); err != nil {
		return nil, err
	}
	if known == 0 {
		msg := fmt.Sprintf("no client %q at this site: it never reported and no collection names it", p.Client)
		if p.Tree != nil {
			msg = fmt.Sprintf("no client %q at this site: it never reported here (in a hierarchy a client is answered by its own site)", p.Client)
		}
		return nil, &NotFoundError{Field: "client", Message: msg}
	}
	rep := &Computer{Site: site, AsOf: time.Now().UTC(), Client: p.Client, List: p.List, ListName: listName, Updates: make([]ComputerUpdate, len(ids)),
		OwnSiteOnly: p.Tree != nil, Sites: p.Tree.ownSites()}
	if rep.LastScanTime, err = parseTime(lastScan0); err != nil {
		return nil, err
	}
	if dep != nil {
		if rep.Deployment, err = computerDeployment(ctx, q, db, p.Client, p.Tree, dep); err != nil {
			return nil, err
		}
	}
	// Rows are matched to the updates asked for by id. The engine may hand back an id that is
	// not byte for byte the one asked for (its JSON output replaces invalid UTF-8), so a row
	// whose id is not in the set is skipped: a missing entry is never dereferenced.
	byID := map[string]*ComputerUpdate{}
	for i, id := range ids {
		rep.Updates[i] = ComputerUpdate{UpdateID: id}
		byID[id] = &rep.Updates[i]
	}
	if len(ids) == 0 {
		rep.Compliant = ComputerUnknown
		return rep, nil
	}
	set := inList(ids)
	catalog, err := q.Query(ctx, fmt.Sprintf(`SELECT id, title, ifNull(first_synced < %s, 0) AS scanned_after
	FROM %s.v_updates WHERE id IN %s`, lastScan, db, set))
	if err != nil {
		return nil, fmt.Errorf("cannot read the catalog: %w", err)
	}
	scannedAfter := map[string]bool{}
	for i := range catalog.Rows {
		var id, title string
		var after bool
		if err := scanRow(catalog, i, "the catalog", &id, &title, &after); err != nil {
			return nil, err
		}
		if u, ok := byID[id]; ok {
			u.Title = title
			scannedAfter[id] = after
		}
	}
	live, err := q.Query(ctx, fmt.Sprintf(`SELECT topic_type, topic_id, state, serial, time, error
	FROM %s.v_live_state WHERE client = %s AND topic_type IN (402, 500) AND topic_id IN %s`, db, c, set))
	if err != nil {
		return nil, fmt.Errorf("cannot read the states of client %q: %w", p.Client, err)
	}
	for i := range live.Rows {
		var topicType, state64 int64
		var id string
		var serial uint64
		var at any
		var code int32
		if err := scanRow(live, i, fmt.Sprintf("the states of client %q", p.Client), &topicType, &id, &state64, &serial, &at, &code); err != nil {
			return nil, err
		}
		state := int(state64)
		u, ok := byID[id]
		if !ok {
			continue // not an id asked for (see byID)
		}
		switch schema.TopicType(topicType) {
		case schema.TopicUpdateCompliance:
			if state == schema.ComplianceUnknown {
				continue // rule 3: only 1, 2 or 3 are a stated compliance
			}
			u.State, u.Serial = state, serial
			if u.Time, err = parseTime(at); err != nil {
				return nil, err
			}
		case schema.TopicUpdateEnforcement:
			u.EnforcementState, u.EnforcementName = &state, schema.TopicUpdateEnforcement.StateName(state)
			u.Error, u.Hex = &code, schema.HRESULTHex(code)
		}
	}
	required, ok := false, true
	for i := range rep.Updates {
		u := &rep.Updates[i]
		if u.State == schema.ComplianceUnknown && scannedAfter[u.UpdateID] {
			u.State, u.Inferred = schema.ComplianceNotRequired, true
		}
		u.StateName = schema.TopicUpdateCompliance.StateName(u.State)
		required = required || u.State == schema.ComplianceRequired
		ok = ok && (u.State == schema.ComplianceInstalled || u.State == schema.ComplianceNotRequired)
	}
	switch {
	case required:
		rep.Compliant = ComputerNonCompliant
	case ok:
		rep.Compliant = ComputerCompliant
	default:
		rep.Compliant = ComputerUnknown
	}
	return rep, nil
}

// computerDeployment reads whether deployment dep targets client — a member of its target
// collection, as the deployment report counts them (targetedStatesSQL) — and the client's live
// 300, 301 and 302 states for it; a targeted client without one is in state 0 (folding rule 4).
func computerDeployment(ctx context.Context, q Querier, db, client string, tree *Tree, dep *deploymentRef) (*ComputerDeployment, error) {
	c := Quote(client)
	res, err := q.Query(ctx, fmt.Sprintf("SELECT count() FROM (%s) WHERE client = %s",
		Scope{Collection: dep.collection, Tree: tree}.clientsSQL(db), c))
	if err != nil {
		return nil, fmt.Errorf("cannot read whether deployment %q targets client %q: %w", dep.id, client, err)
	}
	var members int64
	if err := scanRow(res, 0, "the targets of deployment "+dep.id, &members); err != nil {
		return nil, err
	}
	out := &ComputerDeployment{DeploymentID: dep.id, Name: dep.name, Collection: dep.collection, CollectionName: dep.collectionName, Targeted: members > 0}
	types := []struct {
		t   schema.TopicType
		dst **ComputerState
	}{
		{schema.TopicDeploymentCompliance, &out.Compliance},
		{schema.TopicDeploymentEnforcement, &out.Enforcement},
		{schema.TopicDeploymentEvaluation, &out.Evaluation},
	}
	live, err := q.Query(ctx, fmt.Sprintf(`SELECT topic_type, state, serial, time, error FROM %s.v_live_state
	WHERE client = %s AND topic_type IN (%d, %d, %d) AND topic_id = %s`, db, c,
		int(types[0].t), int(types[1].t), int(types[2].t), Quote(dep.id)))
	if err != nil {
		return nil, fmt.Errorf("cannot read the deployment states of client %q for %q: %w", client, dep.id, err)
	}
	for i := range live.Rows {
		var topicType, state int64
		var serial uint64
		var at any
		var code int32
		if err := scanRow(live, i, fmt.Sprintf("the deployment states of client %q", client), &topicType, &state, &serial, &at, &code); err != nil {
			return nil, err
		}
		for _, x := range types {
			if int64(x.t) != topicType {
				continue
			}
			st := &ComputerState{TopicType: int(x.t), State: int(state), StateName: x.t.StateName(int(state)), Serial: serial,
				Error: code, Hex: schema.HRESULTHex(code), Description: schema.DescribeHRESULT(code)}
			if st.Time, err = parseTime(at); err != nil {
				return nil, err
			}
			*x.dst = st
		}
	}
	if out.Targeted {
		for _, x := range types {
			if *x.dst == nil { // rule 4: targeted and silent
				*x.dst = &ComputerState{TopicType: int(x.t), State: 0, StateName: x.t.StateName(0), Hex: schema.HRESULTHex(0)}
			}
		}
	}
	return out, nil
}

// checkSetParams judges the parameters of an update set: list or updates, one of them.
func checkSetParams(list string, updates []string) error {
	switch {
	case list != "" && len(updates) > 0:
		return &ParamError{Field: "updates", Message: "give list or updates, not both"}
	case list == "" && len(updates) == 0:
		return &ParamError{Field: "list", Message: "list (an update list id) or updates (comma-separated update ids) is required"}
	}
	return nil
}

// updateSet resolves the updates a report is about: an imported list's (with the list's
// name), or the ids given (each must be known: checkUpdates), sorted and without duplicates,
// minus updates expired for longer than cleanup (default 7 days) — the same set the
// compliance report uses.
func updateSet(ctx context.Context, q Querier, db, list string, updates []string, cleanup time.Duration) ([]string, string, error) {
	if err := checkSetParams(list, updates); err != nil {
		return nil, "", err
	}
	var ids []string
	var name string
	if list != "" {
		var err error
		if name, ids, err = listUpdates(ctx, q, db, list); err != nil {
			return nil, "", err
		}
	} else {
		ids = slices.Clone(updates)
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	if len(ids) == 0 {
		return ids, name, nil
	}
	if list == "" {
		if err := checkUpdates(ctx, q, db, ids, nil); err != nil {
			return nil, "", err
		}
	}
	if cleanup == 0 {
		cleanup = schema.DefaultExpiredCleanup
	}
	res, err := q.Query(ctx, fmt.Sprintf(`SELECT id FROM %s.v_updates
	WHERE id IN %s AND expired = 1 AND expired_at <= now64(3) - toIntervalSecond(%d)`, db, inList(ids), int64(cleanup.Seconds())))
	if err != nil {
		return nil, "", fmt.Errorf("cannot read expired updates: %w", err)
	}
	expired, err := stringColumn(res, 0, "expired updates")
	if err != nil {
		return nil, "", err
	}
	return slices.DeleteFunc(ids, func(id string) bool { return slices.Contains(expired, id) }), name, nil
}

// printComputer prints the computer report: per update its state (inferred or stated, since
// when) and enforcement.
func printComputer(w io.Writer, c *Computer) {
	scan := "never scanned successfully"
	if c.LastScanTime != nil {
		scan = "last successful scan " + c.LastScanTime.UTC().Format(time.RFC3339)
	}
	about := listText(c.List, c.ListName, len(c.Updates))
	if d := c.Deployment; d != nil {
		about = "deployment " + named(d.DeploymentID, d.Name) + ", " + plural(int64(len(c.Updates)), "update")
	}
	header(w, "computer "+c.Client, c.Site, c.AsOf, about, scan, strings.ReplaceAll(c.Compliant, "_", "-"))
	if c.Deployment != nil {
		printComputerDeployment(w, c.Deployment)
	}
	tw := columns(w)
	fmt.Fprintln(tw, "update\ttitle\tstate\tsince\tenforcement\terror")
	for _, u := range c.Updates {
		state, since := u.StateName, ""
		if u.Inferred {
			state += " (inferred from the scan)"
		}
		if u.Time != nil {
			since = u.Time.UTC().Format(time.RFC3339)
		}
		enf, hex := "", ""
		if u.EnforcementState != nil {
			enf = u.EnforcementName
		}
		if u.Error != nil && *u.Error != 0 {
			hex = u.Hex
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", u.UpdateID, clipText(u.Title, 48), state, since, enf, hex)
	}
	_ = tw.Flush()
	if c.OwnSiteOnly {
		fmt.Fprintf(w, "from site %s's own rows: a client of another site is answered there\n", c.Site)
	}
	printSites(w, c.Sites)
}

// printComputerDeployment prints a client's standing in a deployment: targeted or not, then a
// row per deployment state (enforcement, evaluation, compliance), above the update rows.
func printComputerDeployment(w io.Writer, d *ComputerDeployment) {
	targeted := "targeted (a member of collection " + named(d.Collection, d.CollectionName) + ")"
	if !d.Targeted {
		targeted = "not targeted (not a member of collection " + named(d.Collection, d.CollectionName) + ")"
	}
	fmt.Fprintf(w, "deployment %s: %s\n", named(d.DeploymentID, d.Name), targeted)
	tw := columns(w)
	fmt.Fprintln(tw, "  deployment state\tstate\tsince\tserial\terror")
	for _, x := range []struct {
		what string
		st   *ComputerState
	}{{"enforcement (301)", d.Enforcement}, {"evaluation (302)", d.Evaluation}, {"compliance (300)", d.Compliance}} {
		if x.st == nil {
			fmt.Fprintf(tw, "  %s\t—\t\t\t\n", x.what)
			continue
		}
		state, since, serial, hex := fmt.Sprintf("%d %s", x.st.State, x.st.StateName), "", "", ""
		if x.st.Time != nil {
			since = x.st.Time.UTC().Format(time.RFC3339)
		}
		if x.st.Serial != 0 {
			serial = fmt.Sprint(x.st.Serial)
		} else {
			state += " (none reported)"
		}
		if x.st.Error != 0 {
			hex = strings.TrimSpace(x.st.Hex + " " + x.st.Description)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", x.what, state, since, serial, hex)
	}
	_ = tw.Flush()
}
