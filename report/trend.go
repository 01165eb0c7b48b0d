package report

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/statepipe/statepipe/schema"
)

// TrendParams select the trend report.
type TrendParams struct {
	List    string   // update list id; or
	Updates []string // update ids
	Scope   Scope
	// From and To bound the time axis (server clock); zero To is now, zero From is To − 7 days.
	From, To time.Time
	// Step is the distance between points (whole milliseconds); zero chooses by the range
	// (DefaultTrendStep: 1 hour for a day, 24 hours for 7 or 30 days, whole weeks beyond).
	Step time.Duration
	// ExpiredCleanup drops updates expired for longer than this, as the compliance report
	// does (default 7 days).
	ExpiredCleanup time.Duration
	// Tree is the part of a site hierarchy the answer is asked about (tree.go); nil for a
	// standalone site. The trend reads its own site's history only (OwnSiteOnly).
	Tree *Tree
}

// MaxTrendPoints caps the points of one trend report.
const MaxTrendPoints = 10000

// trendSteps are the steps a trend chooses from when none is given: the smallest that keeps
// the points to at most maxDefaultPoints.
var trendSteps = []time.Duration{time.Minute, 5 * time.Minute, 15 * time.Minute, time.Hour, 24 * time.Hour, 7 * 24 * time.Hour}

const maxDefaultPoints = 32

// DefaultTrendStep returns the step of a trend over span when none is given: the smallest of
// 1m, 5m, 15m, 1h, 24h and 7 days that gives at most 32 points (a day by the hour, 7 or 30
// days by the day, a quarter by the week), and beyond, the smallest multiple of 7 days that
// does (a year: every 2 weeks). A default of one hour made the default week 169 points, mostly
// equal.
func DefaultTrendStep(span time.Duration) time.Duration {
	for _, s := range trendSteps {
		if span/s+1 <= maxDefaultPoints {
			return s
		}
	}
	week := 7 * 24 * time.Hour
	weeks := (span/(maxDefaultPoints-1) + week - 1) / week
	return weeks * week
}

// Trend is the trend report (DESIGN §4): compliance with a set of updates over time.
type Trend struct {
	Site           string            `json:"site"`
	AsOf           time.Time         `json:"as_of"`
	List           string            `json:"list,omitempty"`
	ListName       string            `json:"list_name,omitempty"`
	Collection     string            `json:"collection,omitempty"`
	CollectionName string            `json:"collection_name,omitempty"`
	Updates        []string          `json:"updates"`
	Titles         map[string]string `json:"titles"` // update id → catalog title, for the updates in the catalog
	From           time.Time         `json:"from"`
	To             time.Time         `json:"to"`
	Step           string            `json:"step"`
	Points         []TrendPoint      `json:"points"`
	// OwnSiteOnly, in a site hierarchy, says that the trend covers the site's own clients
	// only: it reads each client's message history, which the sites below keep and do not
	// send up (they send their current counts). Ask each site for its own.
	OwnSiteOnly bool `json:"own_site_only,omitempty"`
	// Sites, in a site hierarchy, is the one site counted: the site answering.
	Sites []SiteStatus `json:"sites,omitempty"`
}

// TrendPoint counts (client, update) pairs by compliance state as of Time.
type TrendPoint struct {
	Time         time.Time `json:"time"`
	Installed    int64     `json:"installed"`
	Required     int64     `json:"required"`
	NotRequired  int64     `json:"not_required"`
	Unknown      int64     `json:"unknown"`       // total − installed − required − not_required
	Clients      int64     `json:"clients"`       // clients in scope at Time
	Total        int64     `json:"total"`         // clients × updates
	CompliantPct float64   `json:"compliant_pct"` // (installed + not_required) / total × 100
}

// TrendReport computes the trend report of site (database db) from the raw message history.
//
// Points are at From, From+Step, … up to To. As of a point T, the state of a (client, update)
// pair is the update-compliance (500) state of its greatest serial among the messages accepted
// by T (accepted_at, the server's clock: client clocks are shown, never used to order). Scope
// is the collection's current members, or the clients the site had heard from by T; pairs
// without a state by T are unknown.
//
// Simplifications, stated: full-report removal (folding rule 2) is ignored — a key removed by
// a later full report keeps its last state here — and Not-required inference from scans
// (rule 3) is not applied, so a trend's last point can differ from the compliance report when
// full reports removed keys or clients are compliant by inference. Deltas are exact.
//
// The history is read without FINAL on purpose: a copy of a message (a client's retry, which
// ingest accepts again) has the same serial and state, so it never changes a pair's state, and
// reading every copy makes a message count from its first acceptance. FINAL would keep an
// arbitrary copy and could move the change to the retry's time.
//
// In a site hierarchy it answers for the site's own clients only, as a standalone site does,
// and says so (OwnSiteOnly); site= naming a subtree below the site is refused (400 naming
// site): those clients' history is at their own site.
func TrendReport(ctx context.Context, q Querier, db, site string, p TrendParams) (*Trend, error) {
	// The update set is required: a missing one is the error to report, before the points.
	if err := checkSetParams(p.List, p.Updates); err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	if p.To.IsZero() {
		p.To = now
	}
	if p.From.IsZero() {
		p.From = p.To.Add(-7 * 24 * time.Hour)
	}
	if p.Step == 0 {
		p.Step = DefaultTrendStep(p.To.Sub(p.From))
	}
	from, to, step := p.From.UnixMilli(), p.To.UnixMilli(), p.Step.Milliseconds()
	switch {
	case step <= 0:
		return nil, &ParamError{Field: "step", Message: "step must be a positive duration of at least 1ms"}
	case to < from:
		return nil, &ParamError{Field: "from", Message: "from must not be after to"}
	case (to-from)/step+1 > MaxTrendPoints:
		return nil, &ParamError{Field: "step", Message: fmt.Sprintf("from, to and step give %d points; at most %d", (to-from)/step+1, MaxTrendPoints)}
	}
	if err := p.Tree.ownOnly("trend"); err != nil {
		return nil, err
	}
	collectionName, err := p.Scope.check(ctx, q, db)
	if err != nil {
		return nil, err
	}
	ids, listName, err := updateSet(ctx, q, db, p.List, p.Updates, p.ExpiredCleanup)
	if err != nil {
		return nil, err
	}
	titles, err := updateTitles(ctx, q, db, ids)
	if err != nil {
		return nil, err
	}
	n := int((to-from)/step + 1)
	last := from + int64(n-1)*step
	rep := &Trend{Site: site, AsOf: now, List: p.List, ListName: listName, Collection: p.Scope.Collection,
		CollectionName: collectionName, Updates: ids, Titles: titles,
		From: time.UnixMilli(from).UTC(), To: time.UnixMilli(last).UTC(), Step: time.Duration(step * int64(time.Millisecond)).String(),
		Points: make([]TrendPoint, n), OwnSiteOnly: p.Tree != nil, Sites: p.Tree.ownSites()}
	for i := range rep.Points {
		rep.Points[i].Time = time.UnixMilli(from + int64(i)*step).UTC()
	}
	// bucket(t) is the first point at or after t: a message accepted at t is visible from it.
	bucket := func(col string) string {
		return fmt.Sprintf("greatest(0, intDiv(toUnixTimestamp64Milli(%s) - %d + %d, %d))", col, from, step-1, step)
	}
	inScope := ""
	if p.Scope.Collection != "" {
		inScope = " AND client IN (" + p.Scope.clientsSQL(db) + ")"
	}
	accepted := fmt.Sprintf("accepted_at <= %s%s", sqlTime(time.UnixMilli(last)), inScope)

	// Clients in scope per point: the collection's members, or the clients first heard from by
	// then (counted per bucket, summed below).
	clients := make([]int64, n)
	if p.Scope.Collection != "" {
		res, err := q.Query(ctx, "SELECT count() FROM ("+p.Scope.clientsSQL(db)+")")
		if err != nil {
			return nil, fmt.Errorf("cannot count the collection's members: %w", err)
		}
		if clients[0], err = count(res, err, "the collection's members"); err != nil {
			return nil, err
		}
	} else {
		res, err := q.Query(ctx, fmt.Sprintf(`SELECT %s AS bucket, count()
		FROM (SELECT client, min(accepted_at) AS first_accepted FROM %s.state_messages WHERE %s GROUP BY client)
		GROUP BY bucket`, bucket("first_accepted"), db, accepted))
		if err != nil {
			return nil, fmt.Errorf("cannot count clients over time: %w", err)
		}
		for i := range res.Rows {
			var b, k int64
			if err := scanBucket(res, i, "clients over time", n, &b, &k); err != nil {
				return nil, err
			}
			clients[b] += k
		}
	}

	// Per bucket, how many pairs entered and left each state: per pair and bucket the state of
	// the greatest serial accepted in it, carried forward over buckets by greatest serial
	// (cur), against the pair's state at its previous bucket (prev, -1 for none).
	deltas := make([][3]int64, n) // installed, required, not required
	if len(ids) > 0 {
		res, err := q.Query(ctx, fmt.Sprintf(`SELECT bucket,
		       countIf(cur = 3) - countIf(prev = 3), countIf(cur = 2) - countIf(prev = 2), countIf(cur = 1) - countIf(prev = 1)
		FROM (SELECT bucket, cur,
		             lagInFrame(cur, 1, -1) OVER (PARTITION BY client, topic_id ORDER BY bucket
		                                          ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) AS prev
		      FROM (SELECT client, topic_id, bucket,
		                   argMax(bucket_state, bucket_serial) OVER (PARTITION BY client, topic_id ORDER BY bucket
		                                                             ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS cur
		            FROM (SELECT client, topic_id, %[1]s AS bucket,
		                         argMax(state, serial) AS bucket_state, max(serial) AS bucket_serial
		                  FROM %[2]s.state_messages
		                  WHERE topic_type = 500 AND topic_id IN %[3]s AND %[4]s
		                  GROUP BY client, topic_id, bucket)))
		GROUP BY bucket`, bucket("accepted_at"), db, inList(ids), accepted))
		if err != nil {
			return nil, fmt.Errorf("cannot compute compliance over time: %w", err)
		}
		for i := range res.Rows {
			var b int64
			var d [3]int64
			if err := scanBucket(res, i, "compliance over time", n, &b, &d[0], &d[1], &d[2]); err != nil {
				return nil, err
			}
			deltas[b] = d
		}
	}
	var inst, req, notReq, cl int64
	for i := range rep.Points {
		pt := &rep.Points[i]
		inst, req, notReq = inst+deltas[i][0], req+deltas[i][1], notReq+deltas[i][2]
		if p.Scope.Collection != "" {
			cl = clients[0]
		} else {
			cl += clients[i]
		}
		pt.Installed, pt.Required, pt.NotRequired, pt.Clients = inst, req, notReq, cl
		pt.Total = cl * int64(len(ids))
		pt.Unknown = pt.Total - inst - req - notReq
		pt.CompliantPct = pct(inst+notReq, pt.Total)
	}
	return rep, nil
}

// scanBucket decodes row i of res into dst, the first a bucket that must be one of n points.
func scanBucket(res *schema.Result, i int, what string, n int, bucket *int64, dst ...any) error {
	if err := scanRow(res, i, what, append([]any{bucket}, dst...)...); err != nil {
		return err
	}
	if *bucket < 0 || *bucket >= int64(n) {
		return fmt.Errorf("cannot read %s: bucket %d of %d points", what, *bucket, n)
	}
	return nil
}

// updateTitles returns the catalog titles of ids (those in the catalog).
func updateTitles(ctx context.Context, q Querier, db string, ids []string) (map[string]string, error) {
	titles := map[string]string{}
	if len(ids) == 0 {
		return titles, nil
	}
	res, err := q.Query(ctx, fmt.Sprintf("SELECT id, title FROM %s.v_updates WHERE id IN %s", db, inList(ids)))
	if err != nil {
		return nil, fmt.Errorf("cannot read update titles: %w", err)
	}
	for i := range res.Rows {
		var id, title string
		if err := scanRow(res, i, "update titles", &id, &title); err != nil {
			return nil, err
		}
		titles[id] = title
	}
	return titles, nil
}

// printTrend prints the trend report: the updates by title, then a row per point, a run of
// points that change nothing shown once.
func printTrend(w io.Writer, t *Trend) {
	header(w, "trend", t.Site, t.AsOf, listText(t.List, t.ListName, len(t.Updates)), scopeText(t.Collection, t.CollectionName),
		fmt.Sprintf("%s to %s every %s", t.From.UTC().Format(time.RFC3339), t.To.UTC().Format(time.RFC3339), shortDuration(t.Step)))
	var titled []string
	for _, id := range t.Updates {
		titled = append(titled, named(id, clipText(t.Titles[id], 40)))
	}
	printIDs(w, "updates", titled, int64(len(titled)), 10)
	layout := "2006-01-02 15:04"
	if step, err := time.ParseDuration(t.Step); err == nil && step%(24*time.Hour) == 0 && t.From.UTC().Truncate(24*time.Hour).Equal(t.From.UTC()) {
		layout = time.DateOnly
	} else if err == nil && step < time.Minute {
		layout = "2006-01-02 15:04:05.000"
	}
	tw := columns(w)
	fmt.Fprintln(tw, "time\tinstalled\trequired\tnot required\tunknown\tclients\tcompliant")
	same := func(a, b TrendPoint) bool {
		a.Time, b.Time = time.Time{}, time.Time{}
		return a == b
	}
	skipped := 0
	for i, p := range t.Points {
		if i > 0 && i < len(t.Points)-1 && same(p, t.Points[i-1]) {
			skipped++
			continue
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%s\n", p.Time.UTC().Format(layout), p.Installed, p.Required, p.NotRequired,
			p.Unknown, p.Clients, percent(p.Installed+p.NotRequired, p.Total))
	}
	_ = tw.Flush()
	if skipped > 0 {
		fmt.Fprintf(w, "(%d of %d points repeat the one before and are not shown)\n", skipped, len(t.Points))
	}
	if t.OwnSiteOnly {
		fmt.Fprintf(w, "site %s's own clients only: the sites below keep their clients' history (ask each of them)\n", t.Site)
	}
	printSites(w, t.Sites)
}
