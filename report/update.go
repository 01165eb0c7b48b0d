package report

import (
	"context"
	"fmt"
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
	Site         string    `json:"site"`
	AsOf         time.Time `json:"as_of"`
	UpdateID     string    `json:"update_id"`
	Article      string    `json:"article"`
	Title        string    `json:"title"`
	InCatalog    bool      `json:"in_catalog"` // false: no Not-required inference is possible
	Expired      bool      `json:"expired"`
	Collection   string    `json:"collection,omitempty"`
	Installed    int64     `json:"installed"`
	Required     int64     `json:"required"`
	NotRequired  int64     `json:"not_required"`
	Unknown      int64     `json:"unknown"`
	Total        int64     `json:"total"`
	CompliantPct float64   `json:"compliant_pct"` // (installed + not_required) / total × 100
	// Enforcement counts the clients in scope that have a live 402 state for the update, per
	// state (every state listed); clients without one are not counted.
	Enforcement []StateCount `json:"enforcement"`
}

// UpdateReport computes the update report of site (database db). Scope is the collection's
// members, or every client the site has heard from. A client in scope counts by its live 500
// state when it is 1, 2 or 3; else as Not required when its latest successful scan is newer
// than the update's first synchronisation (only for an update in the catalog); else Unknown.
// An update neither in the catalog nor in any client's live state is a NotFoundError.
func UpdateReport(ctx context.Context, q Querier, db, site string, p UpdateParams) (*Update, error) {
	if p.Update == "" {
		return nil, &ParamError{Field: "update", Message: "update (an update id) is required"}
	}
	if err := p.Scope.check(ctx, q, db); err != nil {
		return nil, err
	}
	u := Quote(p.Update)
	rep := &Update{Site: site, AsOf: time.Now().UTC(), UpdateID: p.Update, Collection: p.Scope.Collection}
	res, err := q.Query(ctx, fmt.Sprintf(`SELECT article, title, expired FROM %s.v_updates WHERE id = %s`, db, u))
	if err != nil {
		return nil, fmt.Errorf("cannot read update %q from the catalog: %w", p.Update, err)
	}
	inferred := "0" // Not required cannot be inferred for an update the catalog does not have
	if len(res.Rows) > 0 {
		c := cells{what: "update " + p.Update}
		r := res.Rows[0]
		rep.InCatalog, rep.Article, rep.Title, rep.Expired = true, c.str(r, 0), c.str(r, 1), c.int(r, 2) == 1
		if c.err != nil {
			return nil, c.err
		}
		inferred = fmt.Sprintf("h.last_scan > (SELECT first_synced FROM %s.v_updates WHERE id = %s)", db, u)
	} else {
		res, err := q.Query(ctx, fmt.Sprintf("SELECT count() FROM %s.v_live_state WHERE topic_type IN (402, 500) AND topic_id = %s", db, u))
		if err != nil {
			return nil, fmt.Errorf("cannot look for update %q: %w", p.Update, err)
		}
		c := cells{what: "states of update " + p.Update}
		n := c.int(c.first(res), 0)
		if c.err != nil {
			return nil, c.err
		}
		if n == 0 {
			return nil, &NotFoundError{Field: "update", Message: fmt.Sprintf("no update %q at this site: not in the catalog and no client reported it", p.Update)}
		}
	}
	scope := p.Scope.clientsSQL(db)
	res, err = q.Query(ctx, fmt.Sprintf(`SELECT countIf(state = 3), countIf(state = 2), countIf(state = 1), count()
	FROM (SELECT multiIf(s.state IN (1, 2, 3), s.state, h.scanned = 1 AND %[4]s, 1, 0) AS state
	      FROM (%[2]s) AS c
	      LEFT JOIN (SELECT client, state FROM %[1]s.v_live_state WHERE topic_type = 500 AND topic_id = %[3]s) AS s
	          ON s.client = c.client
	      LEFT JOIN (SELECT client, argMax(time, serial) AS last_scan, 1 AS scanned FROM %[1]s.scan_history
	                 WHERE client IN (%[2]s) GROUP BY client) AS h
	          ON h.client = c.client)`, db, scope, u, inferred))
	if err != nil {
		return nil, fmt.Errorf("cannot count compliance with update %q: %w", p.Update, err)
	}
	c := cells{what: "compliance with update " + p.Update}
	r := c.first(res)
	rep.Installed, rep.Required, rep.NotRequired, rep.Total = c.int(r, 0), c.int(r, 1), c.int(r, 2), c.int(r, 3)
	if c.err != nil {
		return nil, c.err
	}
	rep.Unknown = rep.Total - rep.Installed - rep.Required - rep.NotRequired
	if rep.Total > 0 {
		rep.CompliantPct = round2(float64(rep.Installed+rep.NotRequired) * 100 / float64(rep.Total))
	}
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
