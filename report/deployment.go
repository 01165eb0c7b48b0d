package report

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/statepipe/statepipe/schema"
)

// DeploymentParams select the deployment report.
type DeploymentParams struct {
	Deployment string // deployment id; required
	State      *int   // drill-down: also list the clients in this 301 state
	// Tree is the part of a site hierarchy the answer covers (tree.go); nil for a standalone
	// site. In a hierarchy the counts come from the cells of every site of the tree.
	Tree *Tree
}

// Deployment is the deployment report (DESIGN §4, ConfigMgr's "States 1" for a deployment):
// the clients of the deployment's target collection counted by their deployment-enforcement
// (301) state, every state listed even when empty. A targeted client with no 301 state
// counts as state 0 (folding rule 4). With a drill-down state, Machines lists the clients in
// it, sorted.
type Deployment struct {
	Site           string       `json:"site"`
	AsOf           time.Time    `json:"as_of"`
	DeploymentID   string       `json:"deployment_id"`
	Name           string       `json:"name"`
	Collection     string       `json:"collection"`
	CollectionName string       `json:"collection_name,omitempty"`
	Total          int64        `json:"total"`
	States         []StateCount `json:"states"`
	State          *int         `json:"state,omitempty"`   // the drill-down state, when asked
	Machines       []string     `json:"machines,omitzero"` // present (possibly empty) with a drill-down
	// Evaluation counts the targeted clients by their deployment-evaluation (302) state, and
	// Compliance by their deployment-compliance (300) state (ConfigMgr's "States 2"); Updates
	// gives, per update of the deployment, the targeted clients by their update-enforcement
	// (402) state (ConfigMgr's "States 5"). A targeted client with no such state counts as
	// state 0. In a site hierarchy they are counted from the cells of every site of the tree,
	// as States is.
	Evaluation []StateCount       `json:"evaluation,omitempty"`
	Compliance []StateCount       `json:"compliance,omitempty"`
	Updates    []DeploymentUpdate `json:"updates,omitempty"`
	// BySite, in a site hierarchy, counts the targeted clients per site of the tree (each
	// site's own clients: the origin of their counts), in the order of Sites; they add up to
	// Total and States.
	BySite []SiteStates `json:"by_site,omitempty"`
	// Sites lists, in a site hierarchy, every site counted with its watermark and link state.
	Sites []SiteStatus `json:"sites,omitempty"`
}

// DeploymentUpdate counts a deployment's targeted clients by their enforcement (402) state
// of one of its updates.
type DeploymentUpdate struct {
	UpdateID string       `json:"update_id"`
	Title    string       `json:"title"`
	States   []StateCount `json:"states"`
}

// StateCount counts the clients in one state of a topic type.
type StateCount struct {
	State   int    `json:"state"`
	Name    string `json:"name"`
	Clients int64  `json:"clients"`
}

// ParamError is a report parameter that is missing or malformed; the API answers 400 naming
// Field.
type ParamError struct {
	Field, Message string
}

func (e *ParamError) Error() string { return e.Message }

// DeploymentReport computes the deployment report of site (database db). It counts the
// deployment's target collection at this site; a deployment whose collection is not imported
// here targets no one.
//
// In a site hierarchy (p.Tree) it counts from the aggregate cells of every site of the tree:
// per site, the members of the collection it has heard from (cells of topic type 0 in the
// collection's scope) by their 301 state for the deployment (cells of topic type 301), the
// rest in state 0 — the numbers a standalone site gives when it has heard from every member
// — and lists them per site (BySite); Evaluation, Compliance and Updates likewise from the
// cells of topic types 302, 300 and 402. The drill-down lists this site's own machines; over
// sites below it is refused (400 naming state): the machines report answers it with where
// the others are.
func DeploymentReport(ctx context.Context, q Querier, db, site string, p DeploymentParams) (*Deployment, error) {
	if p.Deployment == "" {
		return nil, &ParamError{Field: "deployment", Message: "deployment (a deployment id) is required"}
	}
	states := schema.TopicDeploymentEnforcement
	if p.State != nil && (*p.State < 0 || *p.State >= states.StateCount()) {
		return nil, &ParamError{Field: "state", Message: fmt.Sprintf("state must be a deployment enforcement state, 0 to %d", states.StateCount()-1)}
	}
	dep, err := lookupDeployment(ctx, q, db, p.Deployment)
	if err != nil {
		return nil, err
	}
	rep := &Deployment{Site: site, AsOf: time.Now().UTC(), DeploymentID: p.Deployment, Name: dep.name,
		Collection: dep.collection, CollectionName: dep.collectionName, State: p.State}
	targeted := dep.targetedSQL(db, p.Tree)
	if tree := p.Tree; tree != nil {
		if p.State != nil && tree.Below() {
			return nil, &ParamError{Field: "state", Message: fmt.Sprintf("the sites below send counts, not machines: list each site's with /v1/reports/machines?deployment=%s&state=%d (its answer names the sites that have some, and how to ask each)", url.QueryEscape(p.Deployment), *p.State)}
		}
		rep.Sites = tree.Sites
		if rep.BySite, err = deploymentBySite(ctx, q, db, tree, dep); err != nil {
			return nil, err
		}
		rep.States, rep.Total = sumSites(states, rep.BySite)
	} else {
		res, err := q.Query(ctx, "SELECT state, count() FROM ("+targeted+") GROUP BY state")
		if err != nil {
			return nil, fmt.Errorf("cannot count deployment states (%s): %w", p.Deployment, err)
		}
		if rep.States, rep.Total, err = stateCounts(states, res); err != nil {
			return nil, err
		}
	}
	if p.Tree.Below() {
		if err := dep.treeDetails(ctx, q, db, p.Tree, rep); err != nil {
			return nil, err
		}
	} else if err := dep.details(ctx, q, db, p.Tree, rep); err != nil {
		return nil, err
	}
	if p.State != nil {
		res, err := q.Query(ctx, fmt.Sprintf("SELECT client FROM (%s) WHERE state = %d ORDER BY client", targeted, *p.State))
		if err != nil {
			return nil, fmt.Errorf("cannot list clients in deployment state %d (%s): %w", *p.State, p.Deployment, err)
		}
		if rep.Machines, err = stringColumn(res, 0, "clients in a deployment state"); err != nil {
			return nil, err
		}
	}
	return rep, nil
}

type deploymentRef struct{ id, name, collection, collectionName string }

// lookupDeployment returns an imported deployment, or a NotFoundError naming the parameter.
func lookupDeployment(ctx context.Context, q Querier, db, id string) (*deploymentRef, error) {
	res, err := q.Query(ctx, fmt.Sprintf(`SELECT d.name, d.collection, ifNull(c.name, '') FROM %[1]s.v_deployments AS d
	LEFT JOIN %[1]s.v_collections AS c ON c.id = d.collection WHERE d.id = %[2]s`, db, Quote(id)))
	if err != nil {
		return nil, fmt.Errorf("cannot read deployment %q: %w", id, err)
	}
	if len(res.Rows) == 0 {
		return nil, &NotFoundError{Field: "deployment", Message: fmt.Sprintf("no deployment %q at this site (import it with statepipe deployments apply; an import made with --no-wait, or by another process, shows once the site folds it, within seconds)", id)}
	}
	ref := &deploymentRef{id: id}
	return ref, scanRow(res, 0, "deployment "+id, &ref.name, &ref.collection, &ref.collectionName)
}

// targetedSQL is a subquery of (client, state): every client the deployment targets (its
// collection's members at this site; in a hierarchy, those it has heard from) with its live
// 301 state for the deployment, 0 when it has none (folding rule 4).
func (d *deploymentRef) targetedSQL(db string, tree *Tree) string {
	return d.targetedStatesSQL(db, tree, schema.TopicDeploymentEnforcement, d.id)
}

// targetedStatesSQL is targetedSQL with each client's live state of topic type t and topic id
// (0 when it has none).
func (d *deploymentRef) targetedStatesSQL(db string, tree *Tree, t schema.TopicType, id string) string {
	return fmt.Sprintf(`SELECT t.client AS client, ifNull(s.state, 0) AS state
	FROM (%s) AS t
	LEFT JOIN (SELECT client, state FROM %s.v_live_state WHERE topic_type = %d AND topic_id = %s) AS s
	    ON s.client = t.client`, Scope{Collection: d.collection, Tree: tree}.clientsSQL(db), db, int(t), Quote(id))
}

// details counts the targeted clients by 302 and 300 state, and per update of the deployment
// by 402 state, into rep.
func (d *deploymentRef) details(ctx context.Context, q Querier, db string, tree *Tree, rep *Deployment) error {
	for _, x := range []struct {
		t   schema.TopicType
		dst *[]StateCount
	}{{schema.TopicDeploymentEvaluation, &rep.Evaluation}, {schema.TopicDeploymentCompliance, &rep.Compliance}} {
		res, err := q.Query(ctx, "SELECT state, count() FROM ("+d.targetedStatesSQL(db, tree, x.t, d.id)+") GROUP BY state")
		if err != nil {
			return fmt.Errorf("cannot count deployment %s by %d state: %w", d.id, x.t, err)
		}
		if *x.dst, _, err = stateCounts(x.t, res); err != nil {
			return err
		}
	}
	res, err := q.Query(ctx, fmt.Sprintf(`SELECT u.update_id, ifNull(s.state, 0) AS state, count()
	FROM (%[1]s) AS t
	CROSS JOIN (SELECT arrayJoin(arrayDistinct(any(updates))) AS update_id FROM %[2]s.v_deployments WHERE id = %[3]s) AS u
	LEFT JOIN (SELECT client, topic_id, state FROM %[2]s.v_live_state WHERE topic_type = 402
	           AND has((SELECT any(updates) FROM %[2]s.v_deployments WHERE id = %[3]s), topic_id)) AS s
	    ON s.client = t.client AND s.topic_id = u.update_id
	GROUP BY u.update_id, state ORDER BY u.update_id, state`, Scope{Collection: d.collection, Tree: tree}.clientsSQL(db), db, Quote(d.id)))
	if err != nil {
		return fmt.Errorf("cannot count deployment %s's updates by enforcement state: %w", d.id, err)
	}
	counts := map[string]*schema.Result{}
	for i := range res.Rows {
		var id string
		var state, n int64
		if err := scanRow(res, i, "update enforcement of a deployment", &id, &state, &n); err != nil {
			return err
		}
		r := counts[id]
		if r == nil {
			r = &schema.Result{}
			counts[id] = r
		}
		r.Rows = append(r.Rows, res.Rows[i][1:])
	}
	// Updates no targeted client holds (no targeted client at all) are listed too.
	ids, titles, err := d.updatesTitled(ctx, q, db)
	if err != nil {
		return err
	}
	rep.Updates = []DeploymentUpdate{}
	for _, id := range ids {
		u := DeploymentUpdate{UpdateID: id, Title: titles[id]}
		r := counts[id]
		if r == nil {
			r = &schema.Result{}
		}
		if u.States, _, err = stateCounts(schema.TopicUpdateEnforcement, r); err != nil {
			return err
		}
		rep.Updates = append(rep.Updates, u)
	}
	return nil
}

// treeDetails is details over the sites of a tree, from their cells: per site as it counts
// alone (targetedBySite), summed.
func (d *deploymentRef) treeDetails(ctx context.Context, q Querier, db string, tree *Tree, rep *Deployment) error {
	sum := func(t schema.TopicType, id string) ([]StateCount, error) {
		by, err := targetedBySite(ctx, q, db, tree, d, t, id)
		if err != nil {
			return nil, err
		}
		states, _ := sumSites(t, by)
		return states, nil
	}
	var err error
	if rep.Evaluation, err = sum(schema.TopicDeploymentEvaluation, d.id); err != nil {
		return err
	}
	if rep.Compliance, err = sum(schema.TopicDeploymentCompliance, d.id); err != nil {
		return err
	}
	ids, titles, err := d.updatesTitled(ctx, q, db)
	if err != nil {
		return err
	}
	// Every update in one read: the targeted clients (topic type 0 of the collection's scope)
	// and per update those in each 402 state but 0; the rest are in 0.
	from, cond := tree.cells(db, "states")
	res, err := q.Query(ctx, fmt.Sprintf(`SELECT topic_id, toInt64(state), toInt64(sum(clients)) FROM %s
	WHERE %s AND scope = %s AND (topic_type = 0 OR (topic_type = 402 AND topic_id IN %s AND state != 0))
	GROUP BY topic_id, state`, from, cond, Quote(d.collection), inList(append([]string{""}, ids...))))
	if err != nil {
		return fmt.Errorf("cannot count deployment %s's updates by enforcement state: %w", d.id, err)
	}
	var targeted int64
	stated := map[string]map[int64]int64{}
	for i := range res.Rows {
		var id string
		var st, n int64
		if err := scanRow(res, i, "update enforcement of a deployment", &id, &st, &n); err != nil {
			return err
		}
		if id == "" { // topic type 0: no update has the empty id
			targeted += n
			continue
		}
		if stated[id] == nil {
			stated[id] = map[int64]int64{}
		}
		stated[id][st] += n
	}
	t := schema.TopicUpdateEnforcement
	rep.Updates = []DeploymentUpdate{}
	for _, id := range ids {
		u := DeploymentUpdate{UpdateID: id, Title: titles[id], States: emptyStates(t)}
		u.States[0].Clients = targeted
		for st, n := range stated[id] {
			if st > 0 && st < int64(len(u.States)) {
				u.States[st].Clients += n
				u.States[0].Clients -= n
			}
		}
		rep.Updates = append(rep.Updates, u)
	}
	return nil
}

// updatesTitled returns the deployment's update ids (deploymentUpdates) and their titles.
func (d *deploymentRef) updatesTitled(ctx context.Context, q Querier, db string) ([]string, map[string]string, error) {
	ids, err := deploymentUpdates(ctx, q, db, d.id)
	if err != nil {
		return nil, nil, err
	}
	titles, err := updateTitles(ctx, q, db, ids)
	return ids, titles, err
}

// deploymentUpdates returns a deployment's update ids, sorted, each once.
func deploymentUpdates(ctx context.Context, q Querier, db, id string) ([]string, error) {
	res, err := q.Query(ctx, fmt.Sprintf("SELECT arraySort(arrayDistinct(any(updates))) FROM %s.v_deployments WHERE id = %s", db, Quote(id)))
	if err != nil {
		return nil, fmt.Errorf("cannot read deployment %s's updates: %w", id, err)
	}
	var ids []string
	if len(res.Rows) > 0 {
		if err := scanRow(res, 0, "deployment "+id+"'s updates", &ids); err != nil {
			return nil, err
		}
	}
	return ids, nil
}

// stateCounts lists every state of topic type t with the clients counted in res (rows of
// state, clients), and returns the total.
func stateCounts(t schema.TopicType, res *schema.Result) ([]StateCount, int64, error) {
	out := make([]StateCount, t.StateCount())
	for i := range out {
		out[i] = StateCount{State: i, Name: t.StateName(i)}
	}
	var total int64
	for i := range res.Rows {
		var st, n int64
		if err := scanRow(res, i, fmt.Sprintf("clients per %d state", t), &st, &n); err != nil {
			return nil, 0, err
		}
		total += n
		if st >= 0 && st < int64(len(out)) {
			out[st].Clients = n
		}
	}
	return out, total, nil
}

// chTimeLayout is how ClickHouse prints a DateTime64(3) (in UTC here).
const chTimeLayout = "2006-01-02 15:04:05.000"

// parseTime reads a DateTime64(3, 'UTC') value of a result; nil (NULL) gives nil.
func parseTime(v any) (*time.Time, error) {
	s, ok := v.(string)
	if !ok {
		return nil, nil
	}
	t, err := time.ParseInLocation(chTimeLayout, s, time.UTC)
	if err != nil {
		return nil, fmt.Errorf("cannot read time %q: %w", s, err)
	}
	return &t, nil
}

// sqlTime renders t (to the millisecond) as a DateTime64(3, 'UTC') expression.
func sqlTime(t time.Time) string {
	return fmt.Sprintf("fromUnixTimestamp64Milli(toInt64(%d), 'UTC')", t.UnixMilli())
}

// printDeployment prints the deployment report: the targeted clients per enforcement state,
// with their share, then the drill-down's machines.
func printDeployment(w io.Writer, d *Deployment) {
	header(w, "deployment "+named(d.DeploymentID, d.Name), d.Site, d.AsOf, "collection "+named(d.Collection, d.CollectionName),
		fmt.Sprintf("%d targeted", d.Total))
	tw := columns(w)
	fmt.Fprintln(tw, "state\tname\tclients\tshare")
	for _, st := range d.States {
		fmt.Fprintf(tw, "%d\t%s\t%d\t%s\n", st.State, st.Name, st.Clients, percent(st.Clients, d.Total))
	}
	_ = tw.Flush()
	if len(d.BySite) > 0 {
		printBySite(w, schema.TopicDeploymentEnforcement, d.BySite)
	}
	printStateLine(w, "evaluation", d.Evaluation)
	printStateLine(w, "compliance", d.Compliance)
	if len(d.Updates) > 0 {
		printDeploymentUpdates(w, d.Updates)
	}
	printSites(w, d.Sites)
	if d.State != nil {
		fmt.Fprintf(w, "machines in state %d (%s): %d\n", *d.State, schema.TopicDeploymentEnforcement.StateName(*d.State), len(d.Machines))
		for _, m := range d.Machines {
			fmt.Fprintln(w, m)
		}
	}
}

// printBySite prints per site of a hierarchy its clients in each state that has any: a row
// per site, a column per such state.
func printBySite(w io.Writer, t schema.TopicType, sites []SiteStates) {
	rows := make([]stateRow, len(sites))
	for i, st := range sites {
		rows[i] = stateRow{cells: []string{st.Site, fmt.Sprint(st.Total)}, states: st.States}
	}
	printStateTable(w, "per site:", t, []string{"site", "total"}, "", rows)
}

// stateRow is a row of a state table: its first cells, its clients per state, and a last
// cell of free text ("" for none).
type stateRow struct {
	cells  []string
	states []StateCount
	last   string
}

// printStateTable prints title, then rows under head (and last, when not ""), with a column
// per state of t that counts clients in any row.
func printStateTable(w io.Writer, title string, t schema.TopicType, head []string, last string, rows []stateRow) {
	var shown []int
	for _, r := range rows {
		for _, st := range r.states {
			if st.Clients != 0 && !slices.Contains(shown, st.State) {
				shown = append(shown, st.State)
			}
		}
	}
	slices.Sort(shown)
	fmt.Fprintln(w, title)
	tw := columns(w)
	fmt.Fprint(tw, "  "+strings.Join(head, "\t"))
	for _, i := range shown {
		fmt.Fprintf(tw, "\t%d %s", i, clipText(t.StateName(i), 24))
	}
	if last != "" {
		fmt.Fprint(tw, "\t"+last)
	}
	fmt.Fprintln(tw)
	for _, r := range rows {
		fmt.Fprint(tw, "  "+strings.Join(r.cells, "\t"))
		for _, i := range shown {
			var n int64
			for _, st := range r.states {
				if st.State == i {
					n = st.Clients
				}
			}
			fmt.Fprintf(tw, "\t%d", n)
		}
		if last != "" {
			fmt.Fprint(tw, "\t"+r.last)
		}
		fmt.Fprintln(tw)
	}
	_ = tw.Flush()
}

// printStateLine prints the states of a topic type that count clients on one line:
// "evaluation: 2 Evaluation succeeded 3, 0 Unknown 1".
func printStateLine(w io.Writer, what string, states []StateCount) {
	if states == nil {
		return
	}
	var parts []string
	for _, st := range states {
		if st.Clients > 0 {
			parts = append(parts, fmt.Sprintf("%d %s %d", st.State, st.Name, st.Clients))
		}
	}
	if len(parts) == 0 {
		parts = []string{"none"}
	}
	fmt.Fprintf(w, "%s: %s\n", what, strings.Join(parts, ", "))
}

// printDeploymentUpdates prints, per update of a deployment, its targeted clients in each
// enforcement (402) state any of them is in: a row per update, a column per such state.
func printDeploymentUpdates(w io.Writer, updates []DeploymentUpdate) {
	rows := make([]stateRow, len(updates))
	for i, u := range updates {
		rows[i] = stateRow{cells: []string{u.UpdateID}, states: u.States, last: clipText(u.Title, 60)}
	}
	printStateTable(w, "update enforcement (States 5):", schema.TopicUpdateEnforcement, []string{"update"}, "title", rows)
}
