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
	// Topic names the errors counted: ErrorsEnforcement (the default: update enforcement 402
	// and deployment enforcement 301) or ErrorsScan (the scan states, 501, of every update
	// source: ConfigMgr's "Troubleshooting 1 – Scan errors").
	Topic string
	// Deployment restricts the report to one deployment: its target collection's clients,
	// their update enforcement (402) of the deployment's updates and their enforcement (301)
	// of the deployment itself. Empty: every client of the site, every update and deployment.
	// Enforcement errors only, and not with a collection.
	Deployment string
	// Scope is the clients counted: a collection's members, or every client of the site. Its
	// Tree is the part of a site hierarchy the answer covers (tree.go); nil for a standalone
	// site.
	Scope Scope
}

// The topics of the errors report (ErrorsParams.Topic).
const (
	ErrorsEnforcement = "enforcement"
	ErrorsScan        = "scan"
)

// Errors is the errors report (DESIGN §4): HRESULTs of live enforcement states stack-ranked by
// how many machines have them.
type Errors struct {
	Site           string       `json:"site"`
	AsOf           time.Time    `json:"as_of"`
	Topic          string       `json:"topic"` // enforcement or scan
	Collection     string       `json:"collection,omitempty"`
	CollectionName string       `json:"collection_name,omitempty"`
	DeploymentID   string       `json:"deployment_id,omitempty"`
	DeploymentName string       `json:"deployment_name,omitempty"`
	Errors         []ErrorCount `json:"errors"`
	// Sites lists, in a site hierarchy, every site counted with its watermark and link state.
	Sites []SiteStatus `json:"sites,omitempty"`
}

// MaxErrorTopics caps the update, deployment and source ids an error lists (most machines
// first).
const MaxErrorTopics = 10

// ErrorCount is one HRESULT and the machines whose live 402 or 301 state (or, for scan errors,
// 501 state) carries it.
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
	// Sources, for scan errors, names the update sources (the 501 topic ids) whose scan
	// carries it, most machines first, at most MaxErrorTopics; MoreSources that more do.
	Sources     []string `json:"sources,omitempty"`
	MoreSources bool     `json:"more_sources,omitempty"`
}

// ErrorsReport computes the errors report of site (database db): per HRESULT, the distinct
// clients in scope whose live update enforcement (402) or deployment enforcement (301) state
// carries it (error != 0) — or, for scan errors, whose scan (501) state of some update source
// does — most machines first, then by error. A client failing several updates (or sources)
// with one code counts once for it.
//
// In a site hierarchy (p.Scope.Tree) it counts from the cells of every site of the tree: per
// error the distinct clients each site counted with it on any update or deployment (agg_errors
// of topic type 0; for scan errors, of topic type 501 without a topic id; a client belongs to
// one site, so the sites' counts add up), and per update (402), deployment (301) or source
// (501) the clients with it there. With a deployment over sites below it is refused (400
// naming deployment): the distinct machines of one deployment's updates and itself are not
// among the counts the sites send. Over this site alone it reads the live states, as a
// standalone site does.
func ErrorsReport(ctx context.Context, q Querier, db, site string, p ErrorsParams) (*Errors, error) {
	switch {
	case p.Topic == "":
		p.Topic = ErrorsEnforcement
	case p.Topic != ErrorsEnforcement && p.Topic != ErrorsScan:
		return nil, &ParamError{Field: "topic", Message: fmt.Sprintf("topic %q: want enforcement (301 and 402, the default) or scan (501)", clipText(p.Topic, 40))}
	}
	switch {
	case p.Deployment != "" && p.Topic == ErrorsScan:
		return nil, &ParamError{Field: "deployment", Message: "a scan is not of a deployment: leave deployment out with topic=scan (or use collection)"}
	case p.Deployment != "" && p.Scope.Collection != "":
		return nil, &ParamError{Field: "collection", Message: "a deployment's errors are its target collection's: leave collection out"}
	case p.Scope.Tree.Below() && p.Deployment != "":
		return nil, &ParamError{Field: "deployment", Message: "errors of one deployment count its machines over its updates and itself, and the sites below send per-update and per-deployment counts only: see its errors in the answer without deployment (its deployments and updates columns), or ask each site with site=CODE"}
	}
	colName, err := p.Scope.check(ctx, q, db)
	if err != nil {
		return nil, err
	}
	if p.Scope.Tree != nil && p.Deployment == "" {
		rep, err := treeErrors(ctx, q, db, site, p)
		if rep != nil {
			rep.CollectionName = colName
		}
		return rep, err
	}
	where := schema.ErrorTopicsSQL()
	if p.Topic == ErrorsScan {
		where = fmt.Sprintf("topic_type = %d", schema.TopicScan)
	}
	if p.Scope.Collection != "" {
		where += " AND client IN (" + p.Scope.clientsSQL(db) + ")"
	}
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
	SELECT e.error, e.machines, t.updates, t.deployments, t.sources
	FROM (SELECT error, uniqExact(client) AS machines FROM errs GROUP BY error) AS e
	LEFT JOIN (SELECT error,
	                  arraySlice(arrayMap(x -> x.2, arraySort(x -> (-x.1, x.2), groupArrayIf((n, topic_id), topic_type = 402))), 1, %[3]d) AS updates,
	                  arraySlice(arrayMap(x -> x.2, arraySort(x -> (-x.1, x.2), groupArrayIf((n, topic_id), topic_type = 301))), 1, %[3]d) AS deployments,
	                  arraySlice(arrayMap(x -> x.2, arraySort(x -> (-x.1, x.2), groupArrayIf((n, topic_id), topic_type = 501))), 1, %[3]d) AS sources
	           FROM (SELECT error, topic_type, topic_id, uniqExact(client) AS n FROM errs GROUP BY error, topic_type, topic_id)
	           GROUP BY error) AS t ON t.error = e.error
	ORDER BY e.machines DESC, e.error ASC`, db, where, MaxErrorTopics+1))
	if err != nil {
		return nil, fmt.Errorf("cannot count %s errors: %w", p.Topic, err)
	}
	rep := &Errors{Site: site, AsOf: time.Now().UTC(), Topic: p.Topic, Collection: p.Scope.Collection, CollectionName: colName,
		DeploymentID: p.Deployment, DeploymentName: depName, Errors: make([]ErrorCount, len(res.Rows))}
	if p.Scope.Tree != nil {
		rep.Sites = p.Scope.Tree.Sites
	}
	for i := range res.Rows {
		e := &rep.Errors[i]
		if err := scanRow(res, i, p.Topic+" errors", &e.Error, &e.Machines, &e.Updates, &e.Deployments, &e.Sources); err != nil {
			return nil, err
		}
		e.Hex, e.Description = schema.HRESULTHex(e.Error), schema.DescribeHRESULT(e.Error)
		e.Updates, e.MoreUpdates = capTopics(e.Updates)
		e.Deployments, e.MoreDeployments = capTopics(e.Deployments)
		e.Sources, e.MoreSources = capTopics(e.Sources)
		if p.Topic != ErrorsScan {
			e.Sources = nil
		}
	}
	return rep, nil
}

// capTopics cuts ids to MaxErrorTopics, saying whether there were more.
func capTopics(ids []string) ([]string, bool) {
	if len(ids) > MaxErrorTopics {
		return ids[:MaxErrorTopics], true
	}
	return ids, false
}

// treeErrors is the errors report over the sites of a tree, from their cells.
func treeErrors(ctx context.Context, q Querier, db, site string, p ErrorsParams) (*Errors, error) {
	tree := p.Scope.Tree
	from, cond := tree.cells(db, "errors")
	// The cells counted: per error its distinct clients (topic type 0 for enforcement, 501
	// without a topic id for scans) and per topic its clients.
	topics := fmt.Sprintf("(topic_type = 0 OR %s)", schema.ErrorTopicsSQL())
	if p.Topic == ErrorsScan {
		topics = fmt.Sprintf("topic_type = %d", schema.TopicScan)
	}
	res, err := q.Query(ctx, fmt.Sprintf(`SELECT toInt64(error), toInt64(topic_type), topic_id, toInt64(sum(clients)) FROM %s
	WHERE %s AND scope = %s AND error != 0 AND %s
	GROUP BY error, topic_type, topic_id HAVING sum(clients) != 0`, from, cond, Quote(p.Scope.Collection), topics))
	if err != nil {
		return nil, fmt.Errorf("cannot count %s errors: %w", p.Topic, err)
	}
	type topic struct {
		id string
		n  int64
	}
	type tally struct {
		machines                     int64
		updates, deployment, sources []topic
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
		case schema.TopicScan:
			if id == "" { // the error's clients over every source
				by[e].machines += n
			} else {
				by[e].sources = append(by[e].sources, topic{id, n})
			}
		}
	}
	rep := &Errors{Site: site, AsOf: time.Now().UTC(), Topic: p.Topic, Collection: p.Scope.Collection, Errors: []ErrorCount{}, Sites: tree.Sites}
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
		if p.Topic == ErrorsScan {
			c.Sources, c.MoreSources = ranked(t.sources)
		}
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
	switch {
	case e.DeploymentID != "":
		scope = "deployment " + named(e.DeploymentID, e.DeploymentName)
	case e.Topic == ErrorsScan:
		scope = "scans of every update source"
	}
	if e.Collection != "" {
		scope += ", " + scopeText(e.Collection, e.CollectionName)
	}
	header(w, "errors", e.Site, e.AsOf, scope)
	if len(e.Errors) == 0 {
		if e.Topic == ErrorsScan {
			fmt.Fprintln(w, "no live scan state carries an error")
		} else {
			fmt.Fprintln(w, "no live enforcement state carries an error")
		}
		printSites(w, e.Sites)
		return
	}
	tw := columns(w)
	topics := func(ids []string, more bool) string {
		if more {
			return strings.Join(ids, ", ") + ", …"
		}
		return strings.Join(ids, ", ")
	}
	if e.Topic == ErrorsScan {
		fmt.Fprintln(tw, "error\tmachines\tdescription\tsources")
	} else {
		fmt.Fprintln(tw, "error\tmachines\tdescription\tupdates\tdeployments")
	}
	for _, r := range e.Errors {
		if e.Topic == ErrorsScan {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", r.Hex, r.Machines, clipText(r.Description, 60), topics(r.Sources, r.MoreSources))
			continue
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", r.Hex, r.Machines, clipText(r.Description, 60),
			topics(r.Updates, r.MoreUpdates), topics(r.Deployments, r.MoreDeployments))
	}
	_ = tw.Flush()
	printSites(w, e.Sites)
}
