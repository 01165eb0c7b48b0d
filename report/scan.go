package report

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/statepipe/statepipe/schema"
)

// ScanParams scope the scan report.
type ScanParams struct {
	Scope Scope
	Days  int // a client is stale without a successful scan in this many days (default DefaultStaleDays)
}

// DefaultStaleDays is the scan report's stale threshold when none is given.
const DefaultStaleDays = 7

// MaxStaleListed caps the stale client ids a scan report lists; StaleClients counts them all.
const MaxStaleListed = 1000

// Scan is the scan report (DESIGN §4): the clients in scope by the state of their latest scan
// (501), and the clients with no successful scan in the last StaleDays days.
type Scan struct {
	Site           string       `json:"site"`
	AsOf           time.Time    `json:"as_of"`
	Collection     string       `json:"collection,omitempty"`
	CollectionName string       `json:"collection_name,omitempty"`
	States         []StateCount `json:"states"`
	Total          int64        `json:"total"`
	StaleDays      int          `json:"stale_days"`
	StaleClients   int64        `json:"stale_clients"`
	Stale          []string     `json:"stale"` // sorted, at most MaxStaleListed
}

// ScanReport computes the scan report of site (database db).
//
// A client's scan state is the live 501 state with the greatest serial across its update
// sources (the latest scan it reported); a client in scope that never reported one counts as
// 0 Unknown. A client is stale when its latest successful scan (501 = 3 or 6, by the client's
// clock, as ConfigMgr's last scan time) is older than Days days before as_of, or when it never
// scanned successfully.
func ScanReport(ctx context.Context, q Querier, db, site string, p ScanParams) (*Scan, error) {
	if p.Days == 0 {
		p.Days = DefaultStaleDays
	}
	if p.Days < 0 || p.Days > 36500 {
		return nil, &ParamError{Field: "days", Message: "days must be a number of days from 1 to 36500"}
	}
	name, err := p.Scope.check(ctx, q, db)
	if err != nil {
		return nil, err
	}
	rep := &Scan{Site: site, AsOf: time.Now().UTC(), Collection: p.Scope.Collection, CollectionName: name, StaleDays: p.Days, Stale: []string{}}
	scope := p.Scope.clientsSQL(db)
	res, err := q.Query(ctx, fmt.Sprintf(`SELECT ifNull(s.state, 0) AS state, count()
	FROM (%[2]s) AS c
	LEFT JOIN (SELECT client, argMax(state, serial) AS state FROM %[1]s.v_live_state
	           WHERE topic_type = 501 GROUP BY client) AS s ON s.client = c.client
	GROUP BY state`, db, scope))
	if err != nil {
		return nil, fmt.Errorf("cannot count scan states: %w", err)
	}
	if rep.States, rep.Total, err = stateCounts(schema.TopicScan, res); err != nil {
		return nil, err
	}
	since := rep.AsOf.Add(-time.Duration(p.Days) * 24 * time.Hour)
	res, err = q.Query(ctx, fmt.Sprintf(`SELECT count(), arraySlice(arraySort(groupArray(client)), 1, %[4]d)
	FROM (SELECT c.client AS client
	      FROM (%[2]s) AS c
	      LEFT JOIN (SELECT client, argMax(time, serial) AS last_scan, 1 AS scanned FROM %[1]s.scan_history
	                 WHERE client IN (%[2]s) GROUP BY client) AS h ON h.client = c.client
	      WHERE h.scanned = 0 OR h.last_scan < %[3]s)`, db, scope, sqlTime(since), MaxStaleListed))
	if err != nil {
		return nil, fmt.Errorf("cannot list clients without a recent successful scan: %w", err)
	}
	var stale []string
	if err := scanRow(res, 0, "stale clients", &rep.StaleClients, &stale); err != nil {
		return nil, err
	}
	rep.Stale = append(rep.Stale, stale...)
	return rep, nil
}

// printScan prints the scan report: clients per state of their latest scan, then the stale.
func printScan(w io.Writer, s *Scan) {
	header(w, "scan", s.Site, s.AsOf, scopeText(s.Collection, s.CollectionName), plural(s.Total, "client"))
	tw := columns(w)
	fmt.Fprintln(tw, "state\tname\tclients\tshare")
	for _, st := range s.States {
		fmt.Fprintf(tw, "%d\t%s\t%d\t%s\n", st.State, st.Name, st.Clients, percent(st.Clients, s.Total))
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "no successful scan in %d days: %s (%s)\n", s.StaleDays, plural(s.StaleClients, "client"), percent(s.StaleClients, s.Total))
	printIDs(w, "stale", s.Stale, s.StaleClients, 20)
}
