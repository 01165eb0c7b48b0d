package report

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"
)

// DeploymentsParams filter the deployments report; every filter given must hold.
type DeploymentsParams struct {
	Deployment string // this deployment only (its updates listed with their titles)
	List       string // deployments holding any update of this list
	Update     string // deployments holding this update
	Collection string // deployments targeting this collection
	Client     string // deployments whose target collection holds this client
}

// Deployments is the deployments report: the deployments the site knows (its own and those
// created at the sites above it), with what they deploy to whom and when.
type Deployments struct {
	Site           string             `json:"site"`
	AsOf           time.Time          `json:"as_of"`
	Deployment     string             `json:"deployment,omitempty"`
	List           string             `json:"list,omitempty"`
	ListName       string             `json:"list_name,omitempty"`
	Update         string             `json:"update,omitempty"`
	Collection     string             `json:"collection,omitempty"`
	CollectionName string             `json:"collection_name,omitempty"`
	Client         string             `json:"client,omitempty"`
	Deployments    []DeploymentDetail `json:"deployments"`
}

// DeploymentDetail is one deployment of the deployments report.
type DeploymentDetail struct {
	DeploymentID   string    `json:"deployment_id"`
	Name           string    `json:"name"`
	Collection     string    `json:"collection"`
	CollectionName string    `json:"collection_name,omitempty"`
	Members        int64     `json:"members"` // the target collection's members, as imported
	Start          time.Time `json:"start"`
	Deadline       time.Time `json:"deadline"`
	Mandatory      bool      `json:"mandatory"`
	OriginSite     string    `json:"origin_site"` // the site it was created at
	Updates        []string  `json:"updates"`
	// OfList counts the updates of the list (list=) the deployment holds.
	OfList *int `json:"of_list,omitempty"`
	// Titles, with deployment=, gives each update's catalog title ("" when not in the catalog).
	Titles []string `json:"titles,omitempty"`
}

// DeploymentsReport lists the deployments of site (database db) that match every filter of p,
// by id. It reads reference data only, so it answers the same at every site that holds the
// deployments (a site holds its own and those of the sites above it).
func DeploymentsReport(ctx context.Context, q Querier, db, site string, p DeploymentsParams) (*Deployments, error) {
	rep := &Deployments{Site: site, AsOf: time.Now().UTC(), Deployment: p.Deployment, List: p.List, Update: p.Update,
		Collection: p.Collection, Client: p.Client, Deployments: []DeploymentDetail{}}
	var where []string
	var listIDs []string
	if p.Deployment != "" {
		if _, err := lookupDeployment(ctx, q, db, p.Deployment); err != nil {
			return nil, err
		}
		where = append(where, "d.id = "+Quote(p.Deployment))
	}
	if p.List != "" {
		var err error
		if rep.ListName, listIDs, err = listUpdates(ctx, q, db, p.List); err != nil {
			return nil, err
		}
		where = append(where, fmt.Sprintf("hasAny(d.updates, (SELECT any(updates) FROM %s.v_update_lists WHERE id = %s))", db, Quote(p.List)))
	}
	if p.Update != "" {
		where = append(where, "has(d.updates, "+Quote(p.Update)+")")
	}
	if p.Collection != "" {
		var err error
		if rep.CollectionName, err = (Scope{Collection: p.Collection}).check(ctx, q, db); err != nil {
			return nil, err
		}
		where = append(where, "d.collection = "+Quote(p.Collection))
	}
	if p.Client != "" {
		where = append(where, "has(ifNull(c.members, []), "+Quote(p.Client)+")")
	}
	cond := ""
	if len(where) > 0 {
		cond = " WHERE " + strings.Join(where, " AND ")
	}
	res, err := q.Query(ctx, fmt.Sprintf(`SELECT d.id, d.name, d.collection, ifNull(c.name, ''), toInt64(length(ifNull(c.members, []))),
	       toString(d.start), toString(d.deadline), toInt64(d.mandatory), d.site, d.updates
	FROM %[1]s.v_deployments AS d
	LEFT JOIN %[1]s.v_collections AS c ON c.id = d.collection%[2]s
	ORDER BY d.id`, db, cond))
	if err != nil {
		return nil, fmt.Errorf("cannot list deployments: %w", err)
	}
	inList := make(map[string]bool, len(listIDs))
	for _, id := range listIDs {
		inList[id] = true
	}
	for i := range res.Rows {
		var d DeploymentDetail
		var start, deadline string
		var mandatory int64
		if err := scanRow(res, i, "deployments", &d.DeploymentID, &d.Name, &d.Collection, &d.CollectionName, &d.Members,
			&start, &deadline, &mandatory, &d.OriginSite, &d.Updates); err != nil {
			return nil, err
		}
		for _, f := range []struct {
			s   string
			dst *time.Time
		}{{start, &d.Start}, {deadline, &d.Deadline}} {
			t, err := parseTime(f.s)
			if err != nil {
				return nil, fmt.Errorf("deployment %s: %w", d.DeploymentID, err)
			}
			if t != nil {
				*f.dst = *t
			}
		}
		d.Mandatory = mandatory != 0
		if d.Updates == nil {
			d.Updates = []string{}
		}
		if p.List != "" {
			n := 0
			for _, u := range d.Updates {
				if inList[u] {
					n++
				}
			}
			d.OfList = &n
		}
		rep.Deployments = append(rep.Deployments, d)
	}
	if p.Deployment != "" && len(rep.Deployments) == 1 {
		d := &rep.Deployments[0]
		byID, err := updateTitles(ctx, q, db, d.Updates)
		if err != nil {
			return nil, err
		}
		d.Titles = make([]string, len(d.Updates))
		for i, u := range d.Updates {
			d.Titles[i] = byID[u]
		}
	}
	return rep, nil
}

// printDeployments prints the deployments report: a row per deployment; with deployment=, its
// updates with their titles.
func printDeployments(w io.Writer, r *Deployments) {
	var about []string
	for _, f := range []struct{ what, id, name string }{{"deployment", r.Deployment, ""}, {"list", r.List, r.ListName},
		{"update", r.Update, ""}, {"collection", r.Collection, r.CollectionName}, {"client", r.Client, ""}} {
		if f.id != "" {
			about = append(about, f.what+" "+named(f.id, f.name))
		}
	}
	header(w, "deployments", r.Site, r.AsOf, about...)
	if len(r.Deployments) == 0 {
		fmt.Fprintln(w, "no deployment matches")
		return
	}
	tw := columns(w)
	ofList := r.List != ""
	head := "deployment\tcollection\tmembers\tupdates\t"
	if ofList {
		head += "of list\t"
	}
	fmt.Fprintln(tw, head+"start\tdeadline\tmandatory\torigin\tname")
	for _, d := range r.Deployments {
		row := fmt.Sprintf("%s\t%s\t%d\t%d\t", d.DeploymentID, d.Collection, d.Members, len(d.Updates))
		if ofList && d.OfList != nil {
			row += fmt.Sprintf("%d\t", *d.OfList)
		}
		mandatory := "no"
		if d.Mandatory {
			mandatory = "yes"
		}
		fmt.Fprintf(tw, "%s%s\t%s\t%s\t%s\t%s\n", row, d.Start.Format(time.RFC3339), d.Deadline.Format(time.RFC3339), mandatory, d.OriginSite, clipText(d.Name, 60))
	}
	_ = tw.Flush()
	if r.Deployment != "" && len(r.Deployments) == 1 && len(r.Deployments[0].Titles) > 0 {
		d := r.Deployments[0]
		fmt.Fprintf(w, "\nupdates of %s:\n", d.DeploymentID)
		tw := columns(w)
		for i, u := range d.Updates {
			fmt.Fprintf(tw, "%s\t%s\n", u, clipText(d.Titles[i], 80))
		}
		_ = tw.Flush()
	}
}
