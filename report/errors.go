package report

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/statepipe/statepipe/schema"
)

// ErrorsParams scope the errors report.
type ErrorsParams struct {
	// Deployment restricts the report to one deployment: its target collection's clients,
	// their update enforcement (402) of the deployment's updates and their enforcement (301)
	// of the deployment itself. Empty: every client of the site, every update and deployment.
	Deployment string
	// Tree is the part of a site hierarchy the answer covers (tree.go); nil for a standalone
	// site.
	Tree *Tree
}

// Errors is the errors report (DESIGN §4): HRESULTs of live enforcement states stack-ranked by
// how many machines have them.
type Errors struct {
	Site           string       `json:"site"`
	AsOf           time.Time    `json:"as_of"`
	DeploymentID   string       `json:"deployment_id,omitempty"`
	DeploymentName string       `json:"deployment_name,omitempty"`
	Errors         []ErrorCount `json:"errors"`
	// Sites lists, in a site hierarchy, every site counted with its watermark and link state.
	Sites []SiteStatus `json:"sites,omitempty"`
}

// MaxErrorTopics caps the update and deployment ids an error lists (most machines first).
const MaxErrorTopics = 10

// ErrorCount is one HRESULT and the machines whose live 402 or 301 state carries it.
type ErrorCount struct {
	Error       int32  `json:"error"`       // as it travels: a signed 32-bit integer
	Hex         string `json:"hex"`         // 0x%08X, as Windows shows it
	Description string `json:"description"` // from schema.HRESULTs; "" when unknown
	Machines    int64  `json:"machines"`
	// Updates and Deployments name where the error is: the updates whose enforcement (402)
	// and the deployments whose enforcement (301) carry it, most machines first (then by id),
	// at most MaxErrorTopics each; MoreUpdates and MoreDeployments say that more carry it.
	Updates         []string `json:"updates"`
	Deployments     []string `json:"deployments"`
	MoreUpdates     bool     `json:"more_updates,omitempty"`
	MoreDeployments bool     `json:"more_deployments,omitempty"`
}

// ErrorsReport computes the errors report of site (database db): per HRESULT, the distinct
// clients whose live update enforcement (402) or deployment enforcement (301) state carries it
// (error != 0), most machines first, then by error. A client failing several updates with one
// code counts once for it.
//
// In a site hierarchy (p.Tree) it counts from the cells of every site of the tree: per error
// the distinct clients each site counted with it on any update or deployment (agg_errors of
// topic type 0; a client belongs to one site, so the sites' counts add up), and per update
// (402) and deployment (301) the clients with it there. With a deployment over sites below it
// is refused (400 naming deployment): the distinct machines of one deployment's updates and
// itself are not among the counts the sites send. Over this site alone it reads the live
// states, as a standalone site does.
func ErrorsReport(ctx context.Context, q Querier, db, site string, p ErrorsParams) (*Errors, error) {
	if p.Tree.Below() && p.Deployment != "" {
		return nil, &ParamError{Field: "deployment", Message: "errors of one deployment count its machines over its updates and itself, and the sites below send per-update and per-deployment counts only: see its errors in the answer without deployment (its deployments and updates columns), or ask each site with site=CODE"}
	}
	if p.Tree != nil && p.Deployment == "" {
		return treeErrors(ctx, q, db, site, p.Tree)
	}
	where := schema.ErrorTopicsSQL()
	depName := ""
	if p.Deployment != "" {
		dep, err := lookupDeployment(ctx, q, db, p.Deployment)
		if err != nil {
			return nil, err
		}
		depName = dep.name
		d := Quote(p.Deployment)
		where = fmt.Sprintf(`((topic_type = 402 AND topic_id IN (SELECT arrayJoin(updates) FROM %[1]s.v_deployments WHERE id = %[2]s))
		    OR (topic_type = 301 AND topic_id = %[2]s))
		AND client IN (%[3]s)`, db, d, Scope{Collection: dep.collection}.clientsSQL(db))
	}
	// Per error: its machines, and per (error, topic) the machines, ranked within the error:
	// one topic more than shown, to know whether there are more.
	res, err := q.Query(ctx, fmt.Sprintf(`WITH errs AS (SELECT error, client, topic_type, topic_id FROM %[1]s.v_live_state
	                               WHERE error != 0 AND %[2]s)
	SELECT e.error, e.machines, t.updates, t.deployments
	FROM (SELECT error, uniqExact(client) AS machines FROM errs GROUP BY error) AS e
	LEFT JOIN (SELECT error,
	                  arraySlice(arrayMap(x -> x.2, arraySort(x -> (-x.1, x.2), groupArrayIf((n, topic_id), topic_type = 402))), 1, %[3]d) AS updates,
	                  arraySlice(arrayMap(x -> x.2, arraySort(x -> (-x.1, x.2), groupArrayIf((n, topic_id), topic_type = 301))), 1, %[3]d) AS deployments
	           FROM (SELECT error, topic_type, topic_id, uniqExact(client) AS n FROM errs GROUP BY error, topic_type, topic_id)
	           GROUP BY error) AS t ON t.error = e.error
	ORDER BY e.machines DESC, e.error ASC`, db, where, MaxErrorTopics+1))
	if err != nil {
		return nil, fmt.Errorf("cannot count enforcement errors: %w", err)
	}
	rep := &Errors{Site: site, AsOf: time.Now().UTC(), DeploymentID: p.Deployment, DeploymentName: depName, Errors: make([]ErrorCount, len(res.Rows))}
	if p.Tree != nil {
		rep.Sites = p.Tree.Sites
	}
	for i := range res.Rows {
		e := &rep.Errors[i]
		if err := scanRow(res, i, "enforcement errors", &e.Error, &e.Machines, &e.Updates, &e.Deployments); err != nil {
			return nil, err
		}
		e.Hex, e.Description = schema.HRESULTHex(e.Error), schema.DescribeHRESULT(e.Error)
		if len(e.Updates) > MaxErrorTopics {
			e.Updates, e.MoreUpdates = e.Updates[:MaxErrorTopics], true
		}
		if len(e.Deployments) > MaxErrorTopics {
			e.Deployments, e.MoreDeployments = e.Deployments[:MaxErrorTopics], true
		}
	}
	return rep, nil
}

// treeErrors is the errors report over the sites of a tree, from their cells.
func treeErrors(ctx context.Context, q Querier, db, site string, tree *Tree) (*Errors, error) {
	from, cond := tree.cells(db, "errors")
	res, err := q.Query(ctx, fmt.Sprintf(`SELECT toInt64(error), toInt64(topic_type), topic_id, toInt64(sum(clients)) FROM %s
	WHERE %s AND scope = '' AND error != 0 AND (topic_type = 0 OR %s)
	GROUP BY error, topic_type, topic_id HAVING sum(clients) != 0`, from, cond, schema.ErrorTopicsSQL()))
	if err != nil {
		return nil, fmt.Errorf("cannot count enforcement errors: %w", err)
	}
	type topic struct {
		id string
		n  int64
	}
	type tally struct {
		machines            int64
		updates, deployment []topic
	}
	by := map[int32]*tally{}
	for i := range res.Rows {
		var code, tt, n int64
		var id string
		if err := scanRow(res, i, "enforcement errors", &code, &tt, &id, &n); err != nil {
			return nil, err
		}
		e := int32(code)
		if by[e] == nil {
			by[e] = &tally{}
		}
		switch schema.TopicType(tt) {
		case 0:
			by[e].machines += n
		case schema.TopicUpdateEnforcement:
			by[e].updates = append(by[e].updates, topic{id, n})
		case schema.TopicDeploymentEnforcement:
			by[e].deployment = append(by[e].deployment, topic{id, n})
		}
	}
	rep := &Errors{Site: site, AsOf: time.Now().UTC(), Errors: []ErrorCount{}, Sites: tree.Sites}
	ranked := func(ts []topic) ([]string, bool) {
		slices.SortFunc(ts, func(a, b topic) int {
			if c := cmp.Compare(b.n, a.n); c != 0 {
				return c
			}
			return strings.Compare(a.id, b.id)
		})
		ids := []string{}
		for _, t := range ts[:min(len(ts), MaxErrorTopics)] {
			ids = append(ids, t.id)
		}
		return ids, len(ts) > MaxErrorTopics
	}
	for e, t := range by {
		if t.machines == 0 {
			continue
		}
		c := ErrorCount{Error: e, Hex: schema.HRESULTHex(e), Description: schema.DescribeHRESULT(e), Machines: t.machines}
		c.Updates, c.MoreUpdates = ranked(t.updates)
		c.Deployments, c.MoreDeployments = ranked(t.deployment)
		rep.Errors = append(rep.Errors, c)
	}
	slices.SortFunc(rep.Errors, func(a, b ErrorCount) int {
		if c := cmp.Compare(b.Machines, a.Machines); c != 0 {
			return c
		}
		return cmp.Compare(a.Error, b.Error)
	})
	return rep, nil
}

// printErrors prints the errors report: per HRESULT its machines, description, updates and
// deployments.
func printErrors(w io.Writer, e *Errors) {
	scope := "every update and deployment"
	if e.DeploymentID != "" {
		scope = "deployment " + named(e.DeploymentID, e.DeploymentName)
	}
	header(w, "errors", e.Site, e.AsOf, scope)
	if len(e.Errors) == 0 {
		fmt.Fprintln(w, "no live enforcement state carries an error")
		printSites(w, e.Sites)
		return
	}
	tw := columns(w)
	fmt.Fprintln(tw, "error\tmachines\tdescription\tupdates\tdeployments")
	topics := func(ids []string, more bool) string {
		if more {
			return strings.Join(ids, ", ") + ", …"
		}
		return strings.Join(ids, ", ")
	}
	for _, r := range e.Errors {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", r.Hex, r.Machines, clipText(r.Description, 60),
			topics(r.Updates, r.MoreUpdates), topics(r.Deployments, r.MoreDeployments))
	}
	_ = tw.Flush()
	printSites(w, e.Sites)
}
