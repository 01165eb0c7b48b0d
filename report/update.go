package report

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/statepipe/statepipe/schema"
)

// UpdateParams select the update report.
type UpdateParams struct {
	Update string // update id; required
	Scope  Scope
}

// Update is the update report (DESIGN §4): one update across the clients in scope — their
// compliance (folding rule 3) and their live update enforcement (402) states.
type Update struct {
	Site           string    `json:"site"`
	AsOf           time.Time `json:"as_of"`
	UpdateID       string    `json:"update_id"`
	Article        string    `json:"article"`
	Title          string    `json:"title"`
	InCatalog      bool      `json:"in_catalog"` // false: no Not-required inference is possible
	Expired        bool      `json:"expired"`
	Collection     string    `json:"collection,omitempty"`
	CollectionName string    `json:"collection_name,omitempty"`
	Installed      int64     `json:"installed"`
	Required       int64     `json:"required"`
	NotRequired    int64     `json:"not_required"`
	Unknown        int64     `json:"unknown"`
	Total          int64     `json:"total"`
	CompliantPct   float64   `json:"compliant_pct"` // (installed + not_required) / total × 100
	// Enforcement counts the clients in scope that have a live 402 state for the update, per
	// state (every state listed); clients without one are not counted.
	Enforcement []StateCount `json:"enforcement"`
	// Sites lists, in a site hierarchy, every site counted with its watermark and link state.
	Sites []SiteStatus `json:"sites,omitempty"`
}

// UpdateReport computes the update report of site (database db). Scope is the collection's
// members, or every client the site has heard from. A client in scope counts by its live 500
// state when it is 1, 2 or 3; else as Not required when its latest successful scan is newer
// than the update's first synchronisation (only for an update in the catalog); else Unknown.
// An update neither in the catalog nor in any client's live state is a NotFoundError.
//
// In a site hierarchy (p.Scope.Tree) every count comes from the cells of the sites of the
// tree, as the compliance report counts one update: the stated 3/2/1 (topic type 500), the
// inferred Not required from each site's latest scans (agg_scans) newer than the update's
// first synchronisation less the stated among them, the clients each site heard from in
// scope (topic type 0) as the total, and the 402 states (topic type 402).
func UpdateReport(ctx context.Context, q Querier, db, site string, p UpdateParams) (*Update, error) {
	if p.Update == "" {
		return nil, &ParamError{Field: "update", Message: "update (an update id) is required"}
	}
	name, err := p.Scope.check(ctx, q, db)
	if err != nil {
		return nil, err
	}
	u := Quote(p.Update)
	rep := &Update{Site: site, AsOf: time.Now().UTC(), UpdateID: p.Update, Collection: p.Scope.Collection, CollectionName: name}
	ref, err := lookupUpdate(ctx, q, db, p.Update, p.Scope.Tree)
	if err != nil {
		return nil, err
	}
	rep.InCatalog, rep.Article, rep.Title, rep.Expired = ref.inCatalog, ref.article, ref.title, ref.expired
	if tree := p.Scope.Tree; tree != nil {
		rep.Sites = tree.Sites
		by, err := updateBySite(ctx, q, db, tree, p.Scope.Collection, p.Update, ref.inCatalog)
		if err != nil {
			return nil, err
		}
		for _, c := range by {
			rep.Installed, rep.Required, rep.NotRequired, rep.Total = rep.Installed+c.installed, rep.Required+c.required,
				rep.NotRequired+c.notRequired, rep.Total+c.total
		}
		rep.Unknown = rep.Total - rep.Installed - rep.Required - rep.NotRequired
		rep.CompliantPct = pct(rep.Installed+rep.NotRequired, rep.Total)
		from, cond := tree.cells(db, "states")
		res, err := q.Query(ctx, fmt.Sprintf(`SELECT toInt64(state), toInt64(sum(clients)) FROM %s
		WHERE %s AND scope = %s AND topic_type = 402 AND topic_id = %s GROUP BY state HAVING sum(clients) != 0`,
			from, cond, Quote(p.Scope.Collection), u))
		if err != nil {
			return nil, fmt.Errorf("cannot count enforcement of update %q: %w", p.Update, err)
		}
		if rep.Enforcement, _, err = stateCounts(schema.TopicUpdateEnforcement, res); err != nil {
			return nil, err
		}
		return rep, nil
	}
	scope := p.Scope.clientsSQL(db)
	res, err := q.Query(ctx, fmt.Sprintf(`SELECT countIf(state = 3), countIf(state = 2), countIf(state = 1), count()
	FROM (%s)`, updateStatesSQL(db, scope, p.Update, rep.InCatalog)))
	if err != nil {
		return nil, fmt.Errorf("cannot count compliance with update %q: %w", p.Update, err)
	}
	if err := scanRow(res, 0, "compliance with update "+p.Update, &rep.Installed, &rep.Required, &rep.NotRequired, &rep.Total); err != nil {
		return nil, err
	}
	rep.Unknown = rep.Total - rep.Installed - rep.Required - rep.NotRequired
	rep.CompliantPct = pct(rep.Installed+rep.NotRequired, rep.Total)
	res, err = q.Query(ctx, fmt.Sprintf(`SELECT state, count() FROM %s.v_live_state
	WHERE topic_type = 402 AND topic_id = %s AND client IN (%s) GROUP BY state`, db, u, scope))
	if err != nil {
		return nil, fmt.Errorf("cannot count enforcement of update %q: %w", p.Update, err)
	}
	if rep.Enforcement, _, err = stateCounts(schema.TopicUpdateEnforcement, res); err != nil {
		return nil, err
	}
	return rep, nil
}

// updateRef is an update as the update and machines reports need it: from the catalog, or
// known from clients' states alone (inCatalog false: no Not-required inference).
type updateRef struct {
	article, title     string
	expired, inCatalog bool
}

// lookupUpdate returns update id, or a NotFoundError naming update when neither the catalog
// nor any client's state has it.
func lookupUpdate(ctx context.Context, q Querier, db, id string, tree *Tree) (*updateRef, error) {
	res, err := q.Query(ctx, fmt.Sprintf(`SELECT article, title, expired FROM %s.v_updates WHERE id = %s`, db, Quote(id)))
	if err != nil {
		return nil, fmt.Errorf("cannot read update %q from the catalog: %w", id, err)
	}
	u := &updateRef{inCatalog: len(res.Rows) > 0}
	if u.inCatalog {
		return u, scanRow(res, 0, "update "+id, &u.article, &u.title, &u.expired)
	}
	if err := checkUpdates(ctx, q, db, []string{id}, tree); err != nil {
		var nf *NotFoundError
		if errors.As(err, &nf) {
			nf.Field = "update"
		}
		return nil, err
	}
	return u, nil
}

// updateStatesSQL is a subquery of (client, state): every client of scope (a subquery of
// clients) with its compliance with update by folding rule 3 — its live 500 state when it is
// 1, 2 or 3; else Not required (1) when its latest successful scan is newer than the update's
// first synchronisation (only for an update in the catalog); else Unknown (0).
func updateStatesSQL(db, scope, update string, inCatalog bool) string {
	u := Quote(update)
	inferred := "0" // Not required cannot be inferred for an update the catalog does not have
	if inCatalog {
		inferred = fmt.Sprintf("h.last_scan > (SELECT first_synced FROM %s.v_updates WHERE id = %s)", db, u)
	}
	return fmt.Sprintf(`SELECT c.client AS client, multiIf(s.state IN (1, 2, 3), s.state, h.scanned = 1 AND %[4]s, 1, 0) AS state
	      FROM (%[2]s) AS c
	      LEFT JOIN (SELECT client, state FROM %[1]s.v_live_state WHERE topic_type = 500 AND topic_id = %[3]s) AS s
	          ON s.client = c.client
	      LEFT JOIN (SELECT client, argMax(time, serial) AS last_scan, 1 AS scanned FROM %[1]s.scan_history
	                 WHERE client IN (%[2]s) GROUP BY client) AS h
	          ON h.client = c.client`, db, scope, u, inferred)
}

// printUpdate prints the update report: compliance across the scope, then the enforcement
// states clients are in.
func printUpdate(w io.Writer, u *Update) {
	what := named(u.UpdateID, strings.TrimSpace(u.Article+" "+u.Title))
	switch {
	case !u.InCatalog:
		what += " (not in the catalog: no Not-required inference)"
	case u.Expired:
		what += " (expired)"
	}
	header(w, "update "+what, u.Site, u.AsOf, scopeText(u.Collection, u.CollectionName))
	tw := columns(w)
	fmt.Fprintln(tw, "installed\trequired\tnot required\tunknown\ttotal\tcompliant")
	fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%d\t%s\n", u.Installed, u.Required, u.NotRequired, u.Unknown, u.Total, percent(u.Installed+u.NotRequired, u.Total))
	_ = tw.Flush()
	var enforced int64
	for _, st := range u.Enforcement {
		enforced += st.Clients
	}
	fmt.Fprintf(w, "enforcement: %s with a state\n", plural(enforced, "client"))
	if enforced == 0 {
		printSites(w, u.Sites)
		return
	}
	tw = columns(w)
	fmt.Fprintln(tw, "state\tname\tclients\tshare")
	for _, st := range u.Enforcement {
		if st.Clients > 0 {
			fmt.Fprintf(tw, "%d\t%s\t%d\t%s\n", st.State, st.Name, st.Clients, percent(st.Clients, enforced))
		}
	}
	_ = tw.Flush()
	printSites(w, u.Sites)
}
