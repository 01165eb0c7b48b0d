package bench

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"time"

	"github.com/statepipe/statepipe/report"
)

// The hierarchy's oracle: every primary's reports against its own clients, and CEN's
// compliance against the sum of the primaries' and against every client, once the watermarks
// say the checkpoint's reports are counted.

// HierCheck is one checkpoint of a hierarchy run.
type HierCheck struct {
	Label string `json:"label"`
	// WatermarkSecs is how long after the pause every watermark (CEN's of each primary, and
	// each primary's own) passed the moment the last report was answered; -1: never did.
	WatermarkSecs float64 `json:"watermark_seconds"`
	// FirstCompare is the outcome of the first comparison once the watermarks had passed:
	// "equal", or the first difference (a watermark that promised more than was counted).
	FirstCompare string `json:"first_compare"`
	// Central lists the outcome of each central comparison beyond compliance at the last
	// attempt (deployment, errors, scan at CEN against every client), which do not decide the
	// checkpoint.
	Central []string `json:"central,omitempty"`
}

// Finding is something a hierarchy run saw that does not decide the oracle's verdict but says
// the product does not do what it documents.
type Finding struct {
	What  string `json:"what"`
	First string `json:"first"` // the first checkpoint it was seen at
	Times int    `json:"times"`
}

// finding records a finding under key (the first message is kept).
func (r *hierRun) finding(key, label, what string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f := r.finds[key]
	if f == nil {
		f = &Finding{What: what, First: label}
		r.finds[key] = f
		r.order = append(r.order, key)
	}
	f.Times++
}

// checker returns the comparison a checkpoint repeats until it holds: first every watermark
// must pass the moment the checkpoint began (all reports had been answered), then every
// report is compared. It must be called once the reports in flight are answered.
func (r *hierRun) checker(ctx context.Context, h *harness, label string) func() error {
	since := time.Now()
	hc := HierCheck{Label: label, WatermarkSecs: -1}
	r.mu.Lock()
	r.checks = append(r.checks, hc)
	idx := len(r.checks) - 1
	r.mu.Unlock()
	passed := false
	return func() error {
		if !passed {
			if err := r.watermarksPassed(ctx, since); err != nil {
				return err
			}
			passed = true
			r.mu.Lock()
			r.checks[idx].WatermarkSecs = time.Since(since).Seconds()
			r.mu.Unlock()
		}
		central, err := r.compare(ctx, label, h.stats.dropDone.Load())
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.checks[idx].FirstCompare == "" {
			r.checks[idx].FirstCompare = "equal"
			if err != nil {
				r.checks[idx].FirstCompare = err.Error()
			}
		}
		r.checks[idx].Central = central
		return err
	}
}

// watermarksPassed returns nil once CEN's compliance lists every primary with a watermark at
// or after t and each primary's own watermark is too.
func (r *hierRun) watermarksPassed(ctx context.Context, t time.Time) error {
	var c report.Compliance
	if err := r.at(r.root).get(ctx, "/v1/reports/compliance?list="+checkedList, &c); err != nil {
		return err
	}
	if err := watermarksAtLeast(c.Sites, r.primaries, t); err != nil {
		return fmt.Errorf("%s: %w", r.root, err)
	}
	for _, p := range r.primaries {
		var pc report.Compliance
		if err := r.at(p).get(ctx, "/v1/reports/compliance?list="+checkedList, &pc); err != nil {
			return err
		}
		if err := watermarksAtLeast(pc.Sites, []string{p}, t); err != nil {
			return fmt.Errorf("%s itself: %w", p, err)
		}
	}
	return nil
}

// watermarksAtLeast checks that every site of codes is listed with a watermark at or after t.
func watermarksAtLeast(sites []report.SiteStatus, codes []string, t time.Time) error {
	for _, code := range codes {
		i := slices.IndexFunc(sites, func(s report.SiteStatus) bool { return s.Site == code })
		switch {
		case i < 0:
			return fmt.Errorf("site %s is not listed", code)
		case sites[i].Watermark == nil:
			return fmt.Errorf("site %s has no watermark yet", code)
		case sites[i].Watermark.Before(t.Truncate(time.Millisecond)):
			return fmt.Errorf("watermark of %s %s is before %s", code, sites[i].Watermark.Format(time.RFC3339Nano), t.UTC().Format(time.RFC3339Nano))
		}
	}
	return nil
}

// compare compares every primary's reports with its clients' oracle and CEN's compliance with
// the sum of the primaries' and the oracle over every client; the error names the first
// difference. central is the outcome of the comparisons that do not decide.
func (r *hierRun) compare(ctx context.Context, label string, dropImported bool) (central []string, err error) {
	for p, code := range r.primaries {
		if err := r.parts[p].check(ctx, r.at(code), r.acked[p].Load(), dropImported); err != nil {
			return nil, fmt.Errorf("site %s: %w", code, err)
		}
		if err := r.checkDeployments(ctx, label, p); err != nil {
			return nil, fmt.Errorf("site %s: %w", code, err)
		}
	}
	lists := []string{checkedList}
	if dropImported {
		lists = append(lists, dropList)
	}
	for _, l := range lists {
		if err := r.checkCentralCompliance(ctx, l); err != nil {
			return nil, err
		}
	}
	return r.checkCentralOthers(ctx, label), nil
}

// complianceCounts is what a compliance report counts: per update installed, required, not
// required, unknown; and the computers (without the share, which is derived).
type complianceCounts struct {
	Updates   map[string][4]int64
	Computers report.ComputerCounts
}

// countsOf reads a compliance report's counts.
func countsOf(c *report.Compliance) complianceCounts {
	out := complianceCounts{Updates: map[string][4]int64{}, Computers: c.Computers}
	out.Computers.CompliantPct = 0
	for _, u := range c.Updates {
		out.Updates[u.UpdateID] = [4]int64{u.Installed, u.Required, u.NotRequired, u.Unknown}
	}
	return out
}

// sumCounts adds the counts of several sites' compliance reports of the same list: what a
// site above them must answer when they are all it has below it and it has no clients.
func sumCounts(parts []complianceCounts) complianceCounts {
	out := complianceCounts{Updates: map[string][4]int64{}}
	for _, p := range parts {
		for id, v := range p.Updates {
			s := out.Updates[id]
			for k := range s {
				s[k] += v[k]
			}
			out.Updates[id] = s
		}
		out.Computers.Total += p.Computers.Total
		out.Computers.Compliant += p.Computers.Compliant
		out.Computers.NonCompliant += p.Computers.NonCompliant
		out.Computers.Unknown += p.Computers.Unknown
	}
	return out
}

// diffCounts names the first difference of got from want (updates in order), nil when equal.
func diffCounts(got, want complianceCounts) error {
	ids := make([]string, 0, len(want.Updates)+len(got.Updates))
	for id := range want.Updates {
		ids = append(ids, id)
	}
	for id := range got.Updates {
		if _, ok := want.Updates[id]; !ok {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		g, gok := got.Updates[id]
		w, wok := want.Updates[id]
		switch {
		case !gok:
			return fmt.Errorf("update %s missing, want installed/required/not required/unknown %v", id, w)
		case !wok:
			return fmt.Errorf("update %s not expected (got %v)", id, g)
		case g != w:
			return fmt.Errorf("update %s: installed/required/not required/unknown %v, want %v", id, g, w)
		}
	}
	if got.Computers != want.Computers {
		return fmt.Errorf("computers %+v, want %+v", got.Computers, want.Computers)
	}
	return nil
}

// oracleCounts is the oracle's compliance of update list ids over w's clients.
func (w *world) oracleCounts(ids []int32) complianceCounts {
	u, c := w.expectCompliance(ids)
	return complianceCounts{Updates: u, Computers: c}
}

// listIDs returns the update indexes of list id (checkedList or dropList).
func (w *world) listIDs(id string) []int32 {
	var out []int32
	from, to := 0, w.sc.List
	if id == dropList {
		from, to = w.drop, len(w.updates)
	}
	for u := from; u < to; u++ {
		out = append(out, int32(u))
	}
	return out
}

// checkCentralCompliance compares CEN's compliance of list with the sum of the primaries' and
// with the oracle over every client.
func (r *hierRun) checkCentralCompliance(ctx context.Context, list string) error {
	var cen report.Compliance
	if err := r.at(r.root).get(ctx, "/v1/reports/compliance?list="+url.QueryEscape(list), &cen); err != nil {
		return err
	}
	var parts []complianceCounts
	for _, p := range r.primaries {
		var pc report.Compliance
		if err := r.at(p).get(ctx, "/v1/reports/compliance?list="+url.QueryEscape(list), &pc); err != nil {
			return err
		}
		parts = append(parts, countsOf(&pc))
	}
	got := countsOf(&cen)
	if err := diffCounts(got, sumCounts(parts)); err != nil {
		return fmt.Errorf("%s compliance list %s is not the sum of %v: %w", r.root, list, r.primaries, err)
	}
	if err := diffCounts(got, r.whole.oracleCounts(r.whole.listIDs(list))); err != nil {
		return fmt.Errorf("%s compliance list %s against every client: %w", r.root, list, err)
	}
	return nil
}

// checkDeployments compares primary p's deployment reports with its clients: every state
// but 0 must equal the oracle (that decides). State 0 (targeted, nothing reported) must count
// the primary's own members only — report/tree.go: "each site counts its own members" —; a
// report that also counts the members of the other primaries there is a finding, not a
// difference, so that the rest of the run is still checked.
func (r *hierRun) checkDeployments(ctx context.Context, label string, p int) error {
	w := r.parts[p]
	code := r.primaries[p]
	for d, sd := range w.deps {
		var got report.Deployment
		if err := r.at(code).get(ctx, "/v1/reports/deployment?deployment="+url.QueryEscape(sd.ID), &got); err != nil {
			return err
		}
		want := w.expectDeployment(d)
		var foreign int64 // the members of the other primaries: no state here
		for i, in := range sd.members {
			if in && r.primaryOf(i) != p {
				foreign++
			}
		}
		for _, st := range got.States {
			switch {
			case st.Clients == want[st.State]:
			case st.State == 0 && st.Clients == want[0]+foreign:
				r.finding("deployment-foreign-members", label, fmt.Sprintf("the deployment report at a primary counts the collection's members of the other primaries as state 0 (%s, deployment %s: %d clients in state 0, %d of them its own): report/deployment.go takes no Tree, so Scope.clientsSQL does not keep to the clients the site has heard from", code, sd.ID, st.Clients, want[0]))
			default:
				return fmt.Errorf("deployment %s, state %d (%s): %d clients, want %d", sd.ID, st.State, st.Name, st.Clients, want[st.State])
			}
		}
	}
	return nil
}

// checkCentralOthers compares CEN's deployment, errors and scan reports with the oracle over
// every client. report/tree.go says a site of a hierarchy answers them over the sites below;
// they do not decide the checkpoint (the brief of the hierarchy run is compliance), and each
// difference is a finding.
func (r *hierRun) checkCentralOthers(ctx context.Context, label string) []string {
	w := r.whole
	cen := r.at(r.root)
	var out []string
	say := func(what string, err error) {
		if err == nil {
			out = append(out, what+": equal")
			return
		}
		out = append(out, what+": "+err.Error())
		r.finding("central-"+what, label, fmt.Sprintf("%s at %s does not cover the sites below it: %v", what, r.root, err))
	}
	for d, sd := range w.deps {
		var got report.Deployment
		err := cen.get(ctx, "/v1/reports/deployment?deployment="+url.QueryEscape(sd.ID), &got)
		if err == nil {
			want := w.expectDeployment(d)
			for _, st := range got.States {
				if st.Clients != want[st.State] {
					err = fmt.Errorf("deployment %s, state %d (%s): %d clients, want %d", sd.ID, st.State, st.Name, st.Clients, want[st.State])
					break
				}
			}
		}
		say("deployment report", err)
	}
	var errs report.Errors
	err := cen.get(ctx, "/v1/reports/errors", &errs)
	if err == nil {
		want := w.expectErrors()
		got := map[int32]int64{}
		for _, e := range errs.Errors {
			got[e.Error] = e.Machines
		}
		for _, e := range sortedKeys(want) {
			if got[e] != want[e] {
				err = fmt.Errorf("errors, 0x%08X: %d machines, want %d", uint32(e), got[e], want[e])
				break
			}
		}
	}
	say("errors report", err)
	var scan report.Scan
	err = cen.get(ctx, "/v1/reports/scan", &scan)
	if err == nil {
		want, stale := w.expectScan(scan.AsOf, scan.StaleDays)
		for _, st := range scan.States {
			if st.Clients != want[st.State] {
				err = fmt.Errorf("scan, state %d (%s): %d clients, want %d", st.State, st.Name, st.Clients, want[st.State])
				break
			}
		}
		if err == nil && scan.StaleClients != stale {
			err = fmt.Errorf("scan: %d stale clients, want %d", scan.StaleClients, stale)
		}
	}
	say("scan report", err)
	return out
}
