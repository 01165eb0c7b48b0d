package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/url"
	"slices"
	"time"

	"github.com/statepipe/statepipe/report"
	"github.com/statepipe/statepipe/schema"
)

// The oracle: what every report must say, computed from the simulated clients' truth (the
// states they reported and the site acknowledged), independently of the site's code.

// expectCompliance returns the compliance report of update list ids at site scope.
func (w *world) expectCompliance(ids []int32) (map[string][4]int64, report.ComputerCounts) {
	per := make([][4]int64, len(ids)) // installed, required, not required, unknown
	var comp report.ComputerCounts
	for _, c := range w.clients {
		if !c.enrolled {
			continue
		}
		comp.Total++
		required, known := false, true
		for i, u := range ids {
			s, _ := w.compliance(c, u)
			switch s {
			case schema.ComplianceInstalled:
				per[i][0]++
			case schema.ComplianceRequired:
				per[i][1]++
				required = true
			case schema.ComplianceNotRequired:
				per[i][2]++
			default:
				per[i][3]++
				known = false
			}
		}
		switch {
		case required:
			comp.NonCompliant++
		case known:
			comp.Compliant++
		default:
			comp.Unknown++
		}
	}
	out := map[string][4]int64{}
	for i, u := range ids {
		out[w.updates[u]] = per[i]
	}
	return out, comp
}

// compliance returns client c's compliance with update u (rule 3): its reported 500 state,
// else Not required inferred from a successful scan newer than the update, else unknown (0).
func (w *world) compliance(c *simClient, u int32) (state int, inferred bool) {
	if k := c.appIndex(u); k >= 0 {
		return int(c.st[k]), false
	}
	if c.lastOK > w.firstSynced[u] {
		return schema.ComplianceNotRequired, true
	}
	return schema.ComplianceUnknown, false
}

// compareComputers compares a compliance report's computer counts with the oracle's (whose
// share is not set): the counts exactly, the compliant share to its two decimals.
func compareComputers(got, want report.ComputerCounts) error {
	share := got.CompliantPct
	got.CompliantPct = 0
	if got != want {
		return fmt.Errorf("computers: %+v, want %+v", got, want)
	}
	exact := 0.0
	if want.Total > 0 {
		exact = 100 * float64(want.Compliant) / float64(want.Total)
	}
	if math.Abs(share-exact) > 0.005+1e-9 {
		return fmt.Errorf("computers: compliant %.2f %%, want %.4f %% (%d of %d)", share, exact, want.Compliant, want.Total)
	}
	return nil
}

// computerStatus returns client c's compliance with the update set ids.
func (w *world) computerStatus(c *simClient, ids []int32) string {
	status := report.ComputerCompliant
	for _, u := range ids {
		switch s, _ := w.compliance(c, u); s {
		case schema.ComplianceRequired:
			return report.ComputerNonCompliant
		case schema.ComplianceUnknown:
			status = report.ComputerUnknown
		}
	}
	return status
}

// expectDeployment returns the clients of deployment d's collection by 301 state.
func (w *world) expectDeployment(d int) map[int]int64 {
	out := map[int]int64{}
	for _, c := range w.clients {
		if !w.deps[d].members[c.idx] {
			continue
		}
		s := 0
		if cd := c.deps[d]; cd.has301 {
			s = int(cd.s301)
		}
		out[s]++
	}
	return out
}

// expectErrors returns, per HRESULT, the clients whose live 402 or 301 states carry it.
func (w *world) expectErrors() map[int32]int64 {
	out := map[int32]int64{}
	for _, c := range w.clients {
		codes := map[int32]bool{}
		for d := range c.deps {
			cd := &c.deps[d]
			if cd.has301 && cd.e301 != 0 {
				codes[cd.e301] = true
			}
			for _, e := range cd.e402 {
				if e != 0 {
					codes[e] = true
				}
			}
		}
		for e := range codes {
			out[e]++
		}
	}
	return out
}

// expectScan returns the site's clients by latest 501 state, and how many have no successful
// scan since asOf - days.
func (w *world) expectScan(asOf time.Time, days int) (map[int]int64, int64) {
	states := map[int]int64{}
	var stale int64
	cut := asOf.Add(-time.Duration(days) * 24 * time.Hour).UnixMilli()
	for _, c := range w.clients {
		if !c.enrolled {
			continue
		}
		states[int(c.scan)]++
		if c.lastOK == 0 || c.lastOK < cut {
			stale++
		}
	}
	return states, stale
}

// liveKeys counts the keyed states the site must hold live.
func (w *world) liveKeys() int64 {
	var n int64
	for _, c := range w.clients {
		if !c.enrolled {
			continue
		}
		n += int64(len(c.apps)) + 1 // 500 per applicable update, the 501 scan
		for d := range c.deps {
			cd := &c.deps[d]
			if cd.s300 != 0 {
				n += 2 // 302 evaluation, 300 compliance
			}
			if cd.has301 {
				n++
			}
			if cd.s402 != nil {
				n += int64(len(cd.upd))
			}
		}
	}
	return n
}

// site reads a running site's reports.
type siteReader interface {
	get(ctx context.Context, path string, v any) error
	sql(ctx context.Context, query string) (*schema.Result, error)
	database() string
}

// check compares every report, and two SQL views, with the oracle; the error names the first
// differing row. acked is the number of messages the site acknowledged.
func (w *world) check(ctx context.Context, s siteReader, acked int64, dropImported bool) error {
	list := make([]int32, w.sc.List)
	for i := range list {
		list[i] = int32(i)
	}
	lists := []struct {
		id  string
		ids []int32
	}{{checkedList, list}}
	if dropImported {
		var drop []int32
		for u := w.drop; u < len(w.updates); u++ {
			drop = append(drop, int32(u))
		}
		lists = append(lists, struct {
			id  string
			ids []int32
		}{dropList, drop})
	}
	for _, l := range lists {
		var got report.Compliance
		if err := s.get(ctx, "/v1/reports/compliance?list="+url.QueryEscape(l.id), &got); err != nil {
			return err
		}
		want, comp := w.expectCompliance(l.ids)
		if len(got.Updates) != len(want) {
			return fmt.Errorf("compliance list %s: %d updates, want %d", l.id, len(got.Updates), len(want))
		}
		for _, u := range got.Updates {
			wu, ok := want[u.UpdateID]
			if !ok {
				return fmt.Errorf("compliance list %s: update %s is not in the list", l.id, u.UpdateID)
			}
			if g := [4]int64{u.Installed, u.Required, u.NotRequired, u.Unknown}; g != wu {
				return fmt.Errorf("compliance list %s, update %s: installed/required/not required/unknown %v, want %v", l.id, u.UpdateID, g, wu)
			}
		}
		if err := compareComputers(got.Computers, comp); err != nil {
			return fmt.Errorf("compliance list %s: %w", l.id, err)
		}
	}
	if err := w.checkComputers(ctx, s, list); err != nil {
		return err
	}
	// The update report of a few updates of the list, and of the drop.
	upd := []int32{0, int32(w.sc.List / 2), int32(w.sc.List - 1)}
	if dropImported {
		upd = append(upd, int32(w.drop))
	}
	for _, u := range upd {
		var got report.Update
		if err := s.get(ctx, "/v1/reports/update?update="+url.QueryEscape(w.updates[u]), &got); err != nil {
			return err
		}
		want, _ := w.expectCompliance([]int32{u})
		if g := [4]int64{got.Installed, got.Required, got.NotRequired, got.Unknown}; g != want[w.updates[u]] {
			return fmt.Errorf("update %s: installed/required/not required/unknown %v, want %v", w.updates[u], g, want[w.updates[u]])
		}
	}
	// The trend of the checked list: its last point (now) counts the same as compliance.
	var tr report.Trend
	if err := s.get(ctx, "/v1/reports/trend?list="+checkedList+"&step=1h", &tr); err != nil {
		return err
	}
	if len(tr.Points) == 0 {
		return errors.New("trend of the checked list: no points")
	}
	// The trend applies no Not-required inference (report/trend.go says so): a pair is
	// what the client reported, or unknown.
	var sum [4]int64
	for _, c := range w.clients {
		if !c.enrolled {
			continue
		}
		for _, u := range list {
			switch k := c.appIndex(u); {
			case k < 0:
				sum[3]++
			case c.st[k] == schema.ComplianceInstalled:
				sum[0]++
			case c.st[k] == schema.ComplianceRequired:
				sum[1]++
			case c.st[k] == schema.ComplianceNotRequired:
				sum[2]++
			}
		}
	}
	last := tr.Points[len(tr.Points)-1]
	if g := [4]int64{last.Installed, last.Required, last.NotRequired, last.Unknown}; g != sum {
		return fmt.Errorf("trend of the checked list at %s: installed/required/not required/unknown (client, update) pairs %v, want %v", last.Time.Format(time.RFC3339), g, sum)
	}
	for d, sd := range w.deps {
		if w.skipDeployments {
			break
		}
		var got report.Deployment
		if err := s.get(ctx, "/v1/reports/deployment?deployment="+url.QueryEscape(sd.ID), &got); err != nil {
			return err
		}
		want := w.expectDeployment(d)
		for _, st := range got.States {
			if st.Clients != want[st.State] {
				return fmt.Errorf("deployment %s, state %d (%s): %d clients, want %d", sd.ID, st.State, st.Name, st.Clients, want[st.State])
			}
		}
	}
	var errs report.Errors
	if err := s.get(ctx, "/v1/reports/errors", &errs); err != nil {
		return err
	}
	wantErrs := w.expectErrors()
	for _, e := range errs.Errors {
		if e.Machines != wantErrs[e.Error] {
			return fmt.Errorf("errors, %s: %d machines, want %d", e.Hex, e.Machines, wantErrs[e.Error])
		}
		delete(wantErrs, e.Error)
	}
	for _, e := range sortedKeys(wantErrs) {
		return fmt.Errorf("errors: 0x%08X missing, want %d machines", uint32(e), wantErrs[e])
	}
	var scan report.Scan
	if err := s.get(ctx, "/v1/reports/scan", &scan); err != nil {
		return err
	}
	wantScan, stale := w.expectScan(scan.AsOf, scan.StaleDays)
	for _, st := range scan.States {
		if st.Clients != wantScan[st.State] {
			return fmt.Errorf("scan, state %d (%s): %d clients, want %d", st.State, st.Name, st.Clients, wantScan[st.State])
		}
	}
	if scan.StaleClients != stale {
		return fmt.Errorf("scan: %d clients without a successful scan in %d days, want %d", scan.StaleClients, scan.StaleDays, stale)
	}
	for _, q := range []struct {
		what, sql string
		want      int64
	}{
		{"live keys (v_live_state)", "SELECT count() FROM " + s.database() + ".v_live_state", w.liveKeys()},
		{"messages in the raw log (state_messages FINAL)", "SELECT count() FROM " + s.database() + ".state_messages FINAL", acked},
	} {
		res, err := s.sql(ctx, q.sql)
		if err != nil {
			return err
		}
		if len(res.Rows) != 1 {
			return fmt.Errorf("%s: %d rows", q.what, len(res.Rows))
		}
		if n, ok := res.Rows[0][0].(float64); !ok || int64(n) != q.want {
			return fmt.Errorf("%s: %v, want %d", q.what, res.Rows[0][0], q.want)
		}
	}
	return nil
}

// sortedKeys returns m's keys in order (for stable messages).
func sortedKeys[K int | int32](m map[K]int64) []K {
	out := make([]K, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// checkComputers compares the computer report of a sample of clients (every
// len(clients)/20th) for the checked list: the client's compliance, and per update its state,
// whether it is inferred, and its live enforcement state and error.
func (w *world) checkComputers(ctx context.Context, s siteReader, list []int32) error {
	step := max(1, len(w.clients)/20)
	for i := 0; i < len(w.clients); i += step {
		c := w.clients[i]
		if !c.enrolled {
			continue
		}
		var got report.Computer
		if err := s.get(ctx, "/v1/reports/computer?client="+url.QueryEscape(c.id)+"&list="+checkedList, &got); err != nil {
			return err
		}
		if wantStatus := w.computerStatus(c, list); got.Compliant != wantStatus {
			return fmt.Errorf("computer %s: %s, want %s", c.id, got.Compliant, wantStatus)
		}
		enf := w.enforcement(c)
		for _, u := range got.Updates {
			id, ok := w.updateIndex(u.UpdateID)
			if !ok {
				return fmt.Errorf("computer %s: update %s is not in the list", c.id, u.UpdateID)
			}
			state, inferred := w.compliance(c, id)
			if u.State != state || u.Inferred != inferred {
				return fmt.Errorf("computer %s, update %s: state %d inferred %v, want %d inferred %v", c.id, u.UpdateID, u.State, u.Inferred, state, inferred)
			}
			e, has := enf[id]
			var gotErr int32
			if u.Error != nil {
				gotErr = *u.Error
			}
			switch {
			case has != (u.EnforcementState != nil):
				return fmt.Errorf("computer %s, update %s: enforcement state present %v, want %v", c.id, u.UpdateID, u.EnforcementState != nil, has)
			case has && (*u.EnforcementState != int(e.state) || gotErr != e.err):
				return fmt.Errorf("computer %s, update %s: enforcement %d error 0x%08X, want %d error 0x%08X", c.id, u.UpdateID, *u.EnforcementState, uint32(gotErr), e.state, uint32(e.err))
			}
		}
	}
	return nil
}

type enforcementState struct {
	state uint8
	err   int32
}

// enforcement returns client c's live update enforcement (402) states by update.
func (w *world) enforcement(c *simClient) map[int32]enforcementState {
	out := map[int32]enforcementState{}
	for d := range c.deps {
		cd := &c.deps[d]
		for j, k := range cd.upd {
			if cd.s402 != nil {
				out[c.apps[k]] = enforcementState{cd.s402[j], cd.e402[j]}
			}
		}
	}
	return out
}

// updateIndex returns the index of update id.
func (w *world) updateIndex(id string) (int32, bool) {
	if w.index == nil {
		w.index = make(map[string]int32, len(w.updates))
		for i, u := range w.updates {
			w.index[u] = int32(i)
		}
	}
	i, ok := w.index[id]
	return i, ok
}
