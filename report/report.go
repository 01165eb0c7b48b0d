// Package report computes the named reports of DESIGN §4 over a site's store and serves them:
// GET /v1/reports/NAME as JSON (the same structures back `statepipe report NAME` and, later,
// the Grafana datasource), and POST /v1/sql, read-only SQL for analysts in embedded mode.
//
// Reports read current state exactly: argMax(state, serial) per key, so an unmerged duplicate
// or an older state still waiting for ClickHouse's background merge never shows.
//
// It must not write: every query it runs is a read.
package report

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/statepipe/statepipe/schema"
)

// Querier runs read statements.
type Querier interface {
	Query(ctx context.Context, query string) (*schema.Result, error)
}

// ReadOnlyQuerier runs a statement supplied by a user, refusing anything that writes.
type ReadOnlyQuerier interface {
	QueryReadOnly(ctx context.Context, query string) (*schema.Result, error)
}

// ComplianceParams scope the compliance report.
type ComplianceParams struct {
	Updates []string // update ids; empty means every update the site has states for
}

// Compliance is the compliance report (DESIGN §4).
type Compliance struct {
	Site      string             `json:"site"`
	AsOf      time.Time          `json:"as_of"`
	Updates   []UpdateCompliance `json:"updates"`
	Computers ComputerCounts     `json:"computers"`
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
	CompliantPct float64 `json:"compliant_pct"`
}

// ComputerCounts counts clients by compliance with the whole set of updates: compliant when
// every update is Installed or Not required, non-compliant when any is Required, unknown
// otherwise.
type ComputerCounts struct {
	Compliant    int64 `json:"compliant"`
	NonCompliant int64 `json:"non_compliant"`
	Unknown      int64 `json:"unknown"`
	Total        int64 `json:"total"`
}

// ComplianceReport computes the compliance report of site (database db). Until reference data
// (collections, catalog) is imported, the scope is every client that has reported update
// compliance at the site, and a client with no state for an update counts as Unknown.
func ComplianceReport(ctx context.Context, q Querier, db, site string, p ComplianceParams) (*Compliance, error) {
	filter := ""
	if len(p.Updates) > 0 {
		quoted := make([]string, len(p.Updates))
		for i, u := range p.Updates {
			quoted[i] = Quote(u)
		}
		filter = " AND topic_id IN (" + strings.Join(quoted, ", ") + ")"
	}
	per := fmt.Sprintf(`SELECT topic_id, client, argMax(state, serial) AS state
		FROM %s.current_state WHERE topic_type = 500%s GROUP BY topic_id, client`, db, filter)
	scope, err := q.Query(ctx, fmt.Sprintf("SELECT uniqExact(client) FROM %s.current_state WHERE topic_type = 500", db))
	if err != nil {
		return nil, fmt.Errorf("cannot count clients in scope: %w", err)
	}
	total := scope.Rows[0][0].(int64)
	byUpdate, err := q.Query(ctx, fmt.Sprintf(`SELECT topic_id, countIf(state = 3), countIf(state = 2), countIf(state = 1)
		FROM (%s) GROUP BY topic_id ORDER BY topic_id`, per))
	if err != nil {
		return nil, fmt.Errorf("cannot count compliance per update: %w", err)
	}
	rep := &Compliance{Site: site, AsOf: time.Now().UTC(), Updates: []UpdateCompliance{}}
	counted := map[string]UpdateCompliance{}
	for _, row := range byUpdate.Rows {
		u := UpdateCompliance{UpdateID: row[0].(string), Installed: row[1].(int64), Required: row[2].(int64), NotRequired: row[3].(int64)}
		counted[u.UpdateID] = u
	}
	ids := p.Updates
	if len(ids) == 0 {
		for _, row := range byUpdate.Rows {
			ids = append(ids, row[0].(string))
		}
	}
	for _, id := range ids {
		u := counted[id]
		u.UpdateID = id
		u.Total = total
		u.Unknown = total - u.Installed - u.Required - u.NotRequired
		if total > 0 {
			u.CompliantPct = round2(float64(u.Installed+u.NotRequired) * 100 / float64(total))
		}
		rep.Updates = append(rep.Updates, u)
	}
	comp, err := q.Query(ctx, fmt.Sprintf(`SELECT countIf(required = 0 AND ok = %d), countIf(required > 0)
		FROM (SELECT client, countIf(state = 2) AS required, countIf(state IN (1, 3)) AS ok FROM (%s) GROUP BY client)`,
		len(ids), per))
	if err != nil {
		return nil, fmt.Errorf("cannot count compliance per computer: %w", err)
	}
	rep.Computers = ComputerCounts{Compliant: comp.Rows[0][0].(int64), NonCompliant: comp.Rows[0][1].(int64), Total: total}
	rep.Computers.Unknown = total - rep.Computers.Compliant - rep.Computers.NonCompliant
	return rep, nil
}

// Quote returns s as a ClickHouse string literal.
func Quote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`)
	return "'" + r.Replace(s) + "'"
}

func round2(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }
