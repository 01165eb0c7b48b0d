package report_test

// Reports over a site hierarchy on chDB, without Kafka or replicators: three sites fold their
// own clients — CEN, P01 below it, S01 below P01 — with the same reference data (as it flows
// down), and the cells P01 and S01 count are copied into the hier_cells of the sites above
// them as their replicators deliver them (replicator.ReadCells: absolute values, one
// version), with a heartbeat per origin in hier_origins. Each site's database is named
// statepipe_<name>_t<n>, so its views' {site} is the code its API answers as.

import (
	"context"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/statepipe/statepipe/replicator"
	"github.com/statepipe/statepipe/report"
	"github.com/statepipe/statepipe/schema"
)

// hsite is a site of the test hierarchy: its database, the oracle of what it was sent, and
// the clients of collection C it heard from.
type hsite struct {
	*site
	code string
	e    *estate
}

func newHierSite(t *testing.T, name string) *hsite {
	t.Helper()
	db := fmt.Sprintf("statepipe_%s_t%d", name, dbSeq.Add(1))
	s := newSiteDB(t, 0, db, schema.SiteOfDatabase(db))
	return &hsite{site: s, code: s.api.Site, e: newEstate(s)}
}

// tree returns the site's API as a site of a hierarchy: its reports cover the sites whose
// cells it holds.
func (h *hsite) tree() *site {
	c := *h.site
	c.api = &report.API{Site: h.code, Database: h.db, Store: testStore, ExpiredCleanup: h.cleanup, Hierarchy: &report.Hierarchy{}}
	c.mux = http.NewServeMux()
	c.api.Register(c.mux)
	return &c
}

// sendUp copies the site's counted cells into parent's hier_cells as origin h, with a
// heartbeat naming via as the site it replicates to.
func (h *hsite) sendUp(t *testing.T, parent *hsite, via string) {
	t.Helper()
	ctx := context.Background()
	cells, err := replicator.ReadCells(ctx, testStore, h.db)
	if err != nil {
		t.Fatal(err)
	}
	var rows []string
	for k, v := range cells {
		rows = append(rows, fmt.Sprintf("(%s, %s, %s, %d, %s, %d, %d, %d, 1)", report.Quote(h.code), report.Quote(k.Kind.String()),
			report.Quote(k.Scope), k.TopicType, report.Quote(k.TopicID), k.Code, v.Clients, v.Scanned))
	}
	if len(rows) == 0 {
		t.Fatalf("%s counted no cells", h.code)
	}
	if err := testStore.Exec(ctx, fmt.Sprintf(`INSERT INTO %s.hier_cells (origin, kind, scope, topic_type, topic_id, code, clients, scanned, version) VALUES %s`,
		parent.db, strings.Join(rows, ", "))); err != nil {
		t.Fatal(err)
	}
	if err := testStore.Exec(ctx, fmt.Sprintf(`INSERT INTO %s.hier_origins (origin, parent, version, sweep, watermark, sent_at, received_at,
		lag_records, backlog_records, cells) VALUES (%s, %s, 1, 1, now64(3), now64(3), now64(3), 0, 0, %d)`,
		parent.db, report.Quote(h.code), report.Quote(via), len(rows))); err != nil {
		t.Fatal(err)
	}
}

// answers are the reports the cells answer, as one site (or tree) gives them.
type answers struct {
	dep              report.Deployment
	errs, scanErrs   report.Errors
	scan, scanC      report.Scan
	u1, u2, u1C      report.Update
	listNonCompliant int64 // machines?list=L&state=non_compliant: total
}

func collect(s *site) answers {
	s.t.Helper()
	var a answers
	s.must("/v1/reports/deployment?deployment=D", &a.dep)
	s.must("/v1/reports/errors", &a.errs)
	s.must("/v1/reports/errors?topic=scan", &a.scanErrs)
	s.must("/v1/reports/scan", &a.scan)
	s.must("/v1/reports/scan?collection=C", &a.scanC)
	s.must("/v1/reports/update?update=U1", &a.u1)
	s.must("/v1/reports/update?update=U2", &a.u2)
	s.must("/v1/reports/update?update=U1&collection=C", &a.u1C)
	var m report.Machines
	s.must("/v1/reports/machines?list=L&state=non_compliant", &m)
	a.listNonCompliant = m.Total
	return a
}

// collectAt is collect with site= added to every request.
func collectAt(s *site, code string) answers {
	s.t.Helper()
	c := *s
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		q.Set("site", code)
		r.URL.RawQuery = q.Encode()
		s.mux.ServeHTTP(w, r)
	})
	c.mux = mux
	return collect(&c)
}

// sumAnswers is what a tree of the sites must answer: each count the sum of theirs.
func sumAnswers(parts ...answers) answers {
	out := parts[0]
	out.dep = sumDeployment(func(a answers) report.Deployment { return a.dep }, parts)
	out.errs = sumErrors(parts, func(a answers) report.Errors { return a.errs })
	out.scanErrs = sumErrors(parts, func(a answers) report.Errors { return a.scanErrs })
	out.scan = sumScan(func(a answers) report.Scan { return a.scan }, parts)
	out.scanC = sumScan(func(a answers) report.Scan { return a.scanC }, parts)
	for _, u := range []struct {
		dst *report.Update
		get func(answers) report.Update
	}{{&out.u1, func(a answers) report.Update { return a.u1 }}, {&out.u2, func(a answers) report.Update { return a.u2 }},
		{&out.u1C, func(a answers) report.Update { return a.u1C }}} {
		*u.dst = sumUpdate(u.get, parts)
	}
	out.listNonCompliant = -1 // the machines report lists the answering site's own: checked apart
	return out
}

func addStates(dst []report.StateCount, src []report.StateCount) []report.StateCount {
	dst = slices.Clone(dst)
	for i := range dst {
		dst[i].Clients += src[i].Clients
	}
	return dst
}

func sumDeployment(get func(answers) report.Deployment, parts []answers) report.Deployment {
	out := get(parts[0])
	for _, a := range parts[1:] {
		d := get(a)
		out.Total += d.Total
		out.States = addStates(out.States, d.States)
		out.Evaluation = addStates(out.Evaluation, d.Evaluation)
		out.Compliance = addStates(out.Compliance, d.Compliance)
		updates := slices.Clone(out.Updates)
		for i := range updates {
			updates[i].States = addStates(updates[i].States, d.Updates[i].States)
		}
		out.Updates = updates
	}
	return out
}

func sumUpdate(get func(answers) report.Update, parts []answers) report.Update {
	out := get(parts[0])
	for _, a := range parts[1:] {
		u := get(a)
		out.Installed += u.Installed
		out.Required += u.Required
		out.NotRequired += u.NotRequired
		out.Unknown += u.Unknown
		out.Total += u.Total
		out.Enforcement = addStates(out.Enforcement, u.Enforcement)
	}
	out.CompliantPct = pct(out.Installed+out.NotRequired, out.Total)
	return out
}

// sumScan adds the sites' scan answers: a site without a state for a source counts its
// clients Unknown there; States only when every site has them (at most one source each).
func sumScan(get func(answers) report.Scan, parts []answers) report.Scan {
	out := get(parts[0])
	var ids []string
	for _, a := range parts {
		for _, src := range get(a).Sources {
			ids = union(ids, []string{src.Source})
		}
	}
	out.Sources = []report.ScanSource{}
	for _, id := range ids {
		sum := states(501, nil)
		for _, a := range parts {
			sc := get(a)
			if i := slices.IndexFunc(sc.Sources, func(s report.ScanSource) bool { return s.Source == id }); i >= 0 {
				sum = addStates(sum, sc.Sources[i].States)
			} else {
				sum[0].Clients += sc.Total
			}
		}
		out.Sources = append(out.Sources, report.ScanSource{Source: id, States: sum})
	}
	for _, a := range parts[1:] {
		sc := get(a)
		out.Total += sc.Total
		out.StaleClients += sc.StaleClients
		if out.States == nil || sc.States == nil {
			out.States = nil
		} else {
			out.States = addStates(out.States, sc.States)
		}
	}
	return out
}

// sumErrors adds the sites' errors: machines per error, and the updates and deployments
// that carry it (sorted: the ranking across sites weighs counts the answers do not show).
func sumErrors(parts []answers, get func(answers) report.Errors) report.Errors {
	by := map[int32]*report.ErrorCount{}
	for _, a := range parts {
		for _, e := range get(a).Errors {
			if by[e.Error] == nil {
				by[e.Error] = &report.ErrorCount{Error: e.Error, Hex: e.Hex, Description: e.Description}
			}
			c := by[e.Error]
			c.Machines += e.Machines
			c.Updates = union(c.Updates, e.Updates)
			c.Deployments = union(c.Deployments, e.Deployments)
			c.Sources = union(c.Sources, e.Sources)
		}
	}
	out := report.Errors{Topic: get(parts[0]).Topic, Errors: []report.ErrorCount{}}
	for _, c := range by {
		out.Errors = append(out.Errors, *c)
	}
	sort.Slice(out.Errors, func(i, j int) bool {
		a, b := out.Errors[i], out.Errors[j]
		return a.Machines > b.Machines || a.Machines == b.Machines && a.Error < b.Error
	})
	return out
}

func union(a, b []string) []string {
	out := append(slices.Clone(a), b...)
	slices.Sort(out)
	return slices.Compact(out)
}

// normal clears what differs between two answers of the same counts: who answered, when,
// which sites, and the per-site and per-client parts checked on their own.
func normal(a answers) answers {
	a.dep.Site, a.dep.AsOf, a.dep.Sites, a.dep.BySite = "", time.Time{}, nil, nil
	for _, es := range []*report.Errors{&a.errs, &a.scanErrs} {
		es.Site, es.AsOf, es.Sites = "", time.Time{}, nil
		es.Errors = slices.Clone(es.Errors)
		for i := range es.Errors {
			e := &es.Errors[i]
			e.Updates, e.Deployments, e.Sources = union(e.Updates, nil), union(e.Deployments, nil), union(e.Sources, nil)
			if e.Updates == nil {
				e.Updates = []string{}
			}
			if e.Deployments == nil {
				e.Deployments = []string{}
			}
		}
	}
	for _, s := range []*report.Scan{&a.scan, &a.scanC} {
		s.Site, s.AsOf, s.Sites, s.Stale, s.StaleOf, s.BySite = "", time.Time{}, nil, nil, "", nil
	}
	for _, u := range []*report.Update{&a.u1, &a.u2, &a.u1C} {
		u.Site, u.AsOf, u.Sites = "", time.Time{}, nil
	}
	return a
}

// less takes from a standalone answer the members of C the site never heard from: a
// standalone site counts them (Unknown, state 0, never scanned), a site of a hierarchy counts
// the clients it heard from.
func less(a answers, unheard int64) answers {
	a.dep.Total -= unheard
	a.dep.States = slices.Clone(a.dep.States)
	a.dep.States[0].Clients -= unheard
	// The site's own details of the deployment: the unheard members were in state 0 too.
	a.dep.Evaluation, a.dep.Compliance = slices.Clone(a.dep.Evaluation), slices.Clone(a.dep.Compliance)
	a.dep.Evaluation[0].Clients -= unheard
	a.dep.Compliance[0].Clients -= unheard
	a.dep.Updates = slices.Clone(a.dep.Updates)
	for i := range a.dep.Updates {
		a.dep.Updates[i].States = slices.Clone(a.dep.Updates[i].States)
		a.dep.Updates[i].States[0].Clients -= unheard
	}
	a.u1C.Total -= unheard
	a.u1C.Unknown -= unheard
	a.u1C.CompliantPct = pct(a.u1C.Installed+a.u1C.NotRequired, a.u1C.Total)
	a.scanC.Total -= unheard
	a.scanC.StaleClients -= unheard
	a.scanC.States = slices.Clone(a.scanC.States)
	a.scanC.States[0].Clients -= unheard
	for i := range a.scanC.Sources {
		a.scanC.Sources[i].States = slices.Clone(a.scanC.Sources[i].States)
		a.scanC.Sources[i].States[0].Clients -= unheard
	}
	return a
}

func sameAnswers(t *testing.T, what string, got, want answers) {
	t.Helper()
	g, w := normal(got), normal(want)
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"deployment", g.dep, w.dep}, {"errors", g.errs, w.errs}, {"scan errors", g.scanErrs, w.scanErrs}, {"scan", g.scan, w.scan}, {"scan of C", g.scanC, w.scanC},
		{"update U1", g.u1, w.u1}, {"update U2", g.u2, w.u2}, {"update U1 of C", g.u1C, w.u1C},
		{"non-compliant machines of L", g.listNonCompliant, w.listNonCompliant},
	} {
		if c.want == int64(-1) {
			continue
		}
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s, %s:\n got  %+v\n want %+v", what, c.name, c.got, c.want)
		}
	}
}

func siteCodes(sites []report.SiteStatus) []string {
	var out []string
	for _, s := range sites {
		out = append(out, s.Site)
	}
	return out
}

// Every report that counts from cells covers the hierarchy: at CEN it is the sum of what each
// site counts alone, per site where it says so (deployment's by_site), with every site
// listed; site= narrows to a subtree; at a site alone the cells give the standalone answer
// (less the members it never heard from, which a site of a hierarchy does not count). The
// reports that read per-client rows answer for the site's own clients and say so, and what
// the cells cannot answer is refused naming the parameter.
func TestHierarchyReportsAddUpTheSitesBelow(t *testing.T) {
	cen, p01, s01 := newHierSite(t, "cen"), newHierSite(t, "p01"), newHierSite(t, "s01")
	day := int64(24 * time.Hour / time.Millisecond)
	now := time.Now().UnixMilli()
	fs1, fs2 := now-10*day, now-day
	members := []string{"c1", "c2", "p1", "p2", "p3", "s1", "s2", "s3", "ghost"}
	for _, h := range []*hsite{cen, p01, s01} {
		h.ref(schema.RefCatalog,
			schema.Update{ID: "U1", Article: "KB5001", Title: "Update one", FirstSynced: time.UnixMilli(fs1).UTC()},
			schema.Update{ID: "U2", Article: "KB5002", Title: "Update two", FirstSynced: time.UnixMilli(fs2).UTC()})
		h.ref(schema.RefUpdateLists, schema.UpdateList{ID: "L", Name: "November", Updates: []string{"U1", "U2"}})
		h.ref(schema.RefCollections, schema.Collection{ID: "C", Name: "all desktops", Members: members})
		h.ref(schema.RefDeployments, schema.Deployment{ID: "D", Name: "November", Updates: []string{"U1", "U2"}, Collection: "C",
			Start: start, Deadline: start.Add(72 * time.Hour), Site: "CEN"})
	}
	const e1, e2 = 0x80070643, 0x80240022
	// CEN: c1 installed U1, scanned between U1's and U2's first sync; c2 requires U1 and
	// fails it, scanned after both (U2 inferred).
	cen.e.send("c1", nil, msg(1, 500, "U1", 3, 0, now), msg(2, 501, "wsus", 3, 0, now-2*day), msg(3, 301, "D", 4, 0, now))
	cen.e.send("c2", nil, msg(1, 500, "U1", 2, 0, now), msg(2, 402, "U1", 11, e1, now), msg(3, 301, "D", 3, e1, now),
		msg(4, 501, "wsus", 6, 0x8024400A, now-day/2))
	// P01: two update sources; p4 is outside C.
	p01.e.send("p1", nil, msg(1, 501, "wsus", 3, 0, now), msg(2, 301, "D", 4, 0, now), msg(3, 302, "D", 2, 0, now), msg(4, 300, "D", 1, 0, now))
	p01.e.send("p2", nil, msg(1, 500, "U2", 2, 0, now), msg(2, 402, "U2", 11, e1, now), msg(3, 301, "D", 2, e2, now),
		msg(4, 501, "wsus", 5, 0x8024402C, now))
	p01.e.send("p3", nil, msg(1, 500, "U1", 1, 0, now), msg(2, 501, "wsus", 3, 0, now), msg(3, 501, "mu", 2, 0, now))
	p01.e.send("p4", nil, msg(1, 500, "U1", 2, 0, now), msg(2, 402, "U1", 11, e1, now), msg(3, 301, "D", 3, 0, now))
	// S01: s2 fails both updates and the deployment with one code (one machine); s3 is silent.
	s01.e.send("s1", nil, msg(1, 500, "U1", 3, 0, now), msg(2, 500, "U2", 3, 0, now), msg(3, 301, "D", 4, 0, now),
		msg(4, 501, "wsus", 3, 0, now-20*day), msg(5, 302, "D", 2, 0, now), msg(6, 300, "D", 1, 0, now))
	cen.e.send("c1", nil, msg(4, 302, "D", 3, 0, now))
	s01.e.send("s2", nil, msg(1, 402, "U1", 11, e1, now), msg(2, 402, "U2", 11, e1, now), msg(3, 301, "D", 3, e1, now),
		msg(4, 501, "wsus", 5, 0x8024402C, now)) // the scan error p2 has at P01
	for _, h := range []*hsite{cen, p01, s01} {
		h.fold()
	}

	// Each site alone: the cells give the standalone answer, less C's members it never heard
	// from.
	alone := map[string]answers{}
	for _, h := range []*hsite{cen, p01, s01} {
		tree := h.tree()
		alone[h.code] = collect(tree)
		heard := 0
		for _, c := range h.e.clients() {
			if slices.Contains(members, c) {
				heard++
			}
		}
		standalone := less(collect(h.site), int64(len(members)-heard))
		if alone[h.code].scan.States == nil { // several sources: not counted per client from cells
			standalone.scan.States, standalone.scanC.States = nil, nil
		}
		sameAnswers(t, h.code+" alone against standalone", alone[h.code], standalone)
		// A site alone lists its own machines of a deployment state (those it heard from).
		var d report.Deployment
		tree.must("/v1/reports/deployment?deployment=D&state=0", &d)
		if d.Machines == nil || int64(len(d.Machines)) != d.States[0].Clients || len(d.BySite) != 1 || d.BySite[0].Site != h.code {
			t.Errorf("%s alone, deployment state 0: %+v", h.code, d)
		}
	}
	// The oracle, spelled out: P01 counts two sources (States absent there), the others one;
	// S01's s2 carries e1 three times and counts once.
	if alone[p01.code].scan.States != nil || alone[cen.code].scan.States == nil || alone[s01.code].errs.Errors[0].Machines != 1 ||
		alone[s01.code].dep.States[0].Clients != 0 || alone[cen.code].u1.NotRequired != 0 || alone[cen.code].u2.NotRequired != 1 {
		t.Fatalf("oracle: P01 scan states %v, CEN %v, S01 errors %+v, S01 state 0 %d, CEN not required U1 %d U2 %d",
			alone[p01.code].scan.States, alone[cen.code].scan.States, alone[s01.code].errs.Errors, alone[s01.code].dep.States[0].Clients,
			alone[cen.code].u1.NotRequired, alone[cen.code].u2.NotRequired)
	}

	// The hierarchy: S01 replicates to P01, P01 (with S01's cells passed on) to CEN.
	s01.sendUp(t, p01, p01.code)
	s01.sendUp(t, cen, p01.code)
	p01.sendUp(t, cen, cen.code)
	top := cen.tree()
	all := collect(top)
	sameAnswers(t, "CEN over the tree", all, sumAnswers(alone[cen.code], alone[p01.code], alone[s01.code]))
	if got, want := siteCodes(all.dep.Sites), []string{cen.code, p01.code, s01.code}; !reflect.DeepEqual(got, want) {
		t.Errorf("sites counted: %v, want %v", got, want)
	}
	for _, sites := range [][]report.SiteStatus{all.errs.Sites, all.scan.Sites, all.u1.Sites} {
		if len(sites) != 3 || sites[0].LinkState != report.LinkLocal || sites[1].Parent != cen.code || sites[2].Parent != p01.code {
			t.Errorf("sites: %+v", sites)
		}
	}
	// Deployment per site: each site's own counts, exact.
	if len(all.dep.BySite) != 3 {
		t.Fatalf("by_site: %+v", all.dep.BySite)
	}
	for _, s := range all.dep.BySite {
		if a := alone[s.Site].dep; s.Total != a.Total || !reflect.DeepEqual(s.States, a.States) {
			t.Errorf("by_site %s: %+v, alone %d %+v", s.Site, s, a.Total, a.States)
		}
	}
	// The details over the tree (States 2 and 5), spelled out: p1 and s1 evaluated (302 = 2),
	// c1 succeeded (3); p1 and s1 compliant (300 = 1); U1 failing (402 = 11) on c2 and s2.
	if d := all.dep; d.Evaluation[2].Clients != 2 || d.Evaluation[3].Clients != 1 || d.Compliance[1].Clients != 2 ||
		len(d.Updates) != 2 || d.Updates[0].States[11].Clients != 2 {
		t.Errorf("deployment details over the tree: evaluation %v, compliance %v, updates %+v", d.Evaluation, d.Compliance, d.Updates)
	}
	var ev report.Machines
	top.must("/v1/reports/machines?deployment=D&topic=evaluation&state=2", &ev)
	if len(ev.Elsewhere) != 2 || *ev.Elsewhere[0].Machines != 1 || *ev.Elsewhere[1].Machines != 1 || ev.Total != 0 {
		t.Errorf("machines of D in evaluation state 2 over the tree: %+v", ev)
	}
	if all.scan.States != nil || all.scan.StaleOf != cen.code || !reflect.DeepEqual(all.scan.Stale, alone[cen.code].scan.Stale) {
		t.Errorf("scan over the tree: states %v, stale of %q %v", all.scan.States, all.scan.StaleOf, all.scan.Stale)
	}
	// Scan per site (ConfigMgr's Scan 2): each site's own counts, exact; P01 (two sources)
	// without States.
	for _, sc := range []report.Scan{all.scan, all.scanC} {
		if got := len(sc.BySite); got != 3 {
			t.Fatalf("scan by_site: %+v", sc.BySite)
		}
	}
	for i, s := range all.scan.BySite {
		a := alone[s.Site].scan
		if s.Site != []string{cen.code, p01.code, s01.code}[i] || s.Total != a.Total || !reflect.DeepEqual(s.States, a.States) || s.StaleClients != a.StaleClients {
			t.Errorf("scan by_site %s: %+v, alone %d %+v %d", s.Site, s, a.Total, a.States, a.StaleClients)
		}
		if c, ac := all.scanC.BySite[i], alone[s.Site].scanC; c.Total != ac.Total || !reflect.DeepEqual(c.States, ac.States) || c.StaleClients != ac.StaleClients {
			t.Errorf("scan of C by_site %s: %+v, alone %+v", s.Site, c, ac)
		}
	}
	if all.scan.BySite[1].States != nil || all.scan.BySite[2].States[5].Clients != 1 {
		t.Errorf("oracle: P01 has two sources, S01 one failed scan: %+v", all.scan.BySite)
	}
	// Scan errors over the tree: 0x8024402C on p2 (P01) and s2 (S01), 0x8024400A on c2.
	if e := all.scanErrs.Errors; len(e) != 2 || e[0].Hex != "0x8024402C" || e[0].Machines != 2 || !reflect.DeepEqual(e[0].Sources, []string{"wsus"}) {
		t.Errorf("scan errors over the tree: %+v", e)
	}
	// P01 over its subtree gives what CEN gives for it.
	p01Tree := collect(p01.tree())
	sub := collectAt(top, p01.code)
	sameAnswers(t, "CEN narrowed to P01", sub, sumAnswers(alone[p01.code], alone[s01.code]))
	p01Tree.listNonCompliant = -1 // each lists its own
	sameAnswers(t, "CEN narrowed to P01 against P01", sub, p01Tree)
	if got := siteCodes(sub.dep.Sites); !reflect.DeepEqual(got, []string{p01.code, s01.code}) {
		t.Errorf("narrowed to P01: sites %v", got)
	}
	if sub.scan.StaleOf != "" || len(sub.scan.Stale) != 0 {
		t.Errorf("narrowed to P01, CEN lists its own stale clients: %+v", sub.scan)
	}
	sameAnswers(t, "CEN narrowed to S01", collectAt(top, s01.code), alone[s01.code])
	top.status("/v1/reports/deployment?deployment=D&site=NOPE", 404, "site")
	top.status("/v1/reports/errors?site=NOPE", 404, "site")

	// Machines: CEN's own, and where the others are.
	var m report.Machines
	top.must("/v1/reports/machines?deployment=D&state=3", &m)
	var own report.Machines
	cen.tree().must("/v1/reports/machines?deployment=D&state=3", &own)
	want := []report.ElsewhereSite{}
	for _, h := range []*hsite{p01, s01} {
		if n := alone[h.code].dep.States[3].Clients; n > 0 {
			want = append(want, report.ElsewhereSite{Site: h.code, Machines: &n, Ask: "/v1/reports/machines?deployment=D&site=" + h.code + "&state=3"})
		}
	}
	if len(want) != 1 || m.Total != own.Total || !reflect.DeepEqual(m.Machines, []string{"c2"}) || !reflect.DeepEqual(m.Elsewhere, want) {
		t.Errorf("machines of D in state 3: %+v %v, want elsewhere %+v", m, m.Elsewhere, want)
	}
	for _, c := range []struct {
		query string
		count func(answers) int64
	}{
		{"update=U1&state=required", func(a answers) int64 { return a.u1.Required }},
		{"update=U2&state=not_required", func(a answers) int64 { return a.u2.NotRequired }},
		{"update=U1&collection=C&state=unknown", func(a answers) int64 { return a.u1C.Unknown }},
		{"list=L&state=non_compliant", func(a answers) int64 { return a.listNonCompliant }},
	} {
		var m report.Machines
		top.must("/v1/reports/machines?"+c.query, &m)
		if m.Total != c.count(alone[cen.code]) || int64(len(m.Machines)) != m.Total {
			t.Errorf("machines?%s: CEN's own %d %v, want %d", c.query, m.Total, m.Machines, c.count(alone[cen.code]))
		}
		var got []string
		for _, e := range m.Elsewhere {
			got = append(got, fmt.Sprintf("%s:%d:%s", e.Site, *e.Machines, e.Ask))
		}
		var want []string
		for _, h := range []*hsite{p01, s01} {
			if n := c.count(alone[h.code]); n != 0 {
				want = append(want, fmt.Sprintf("%s:%d:%s", h.code, n, "/v1/reports/machines?"+strings.ReplaceAll(sortedQuery(c.query+"&site="+h.code), ",", "%2C")))
			}
		}
		if !reflect.DeepEqual(got, want) || len(m.Sites) != 3 {
			t.Errorf("machines?%s elsewhere:\n got  %q\n want %q", c.query, got, want)
		}
	}
	// The scan drill-downs: CEN's own, the others counted from their cells (P01's latest scan
	// states cannot be: two sources).
	for _, c := range []struct{ query, want string }{
		{"topic=scan&error=0x8024402C", "[] " + p01.code + ":1 " + s01.code + ":1"},
		{"topic=scan&error=0x8024400A", "[c2]"},
		{"topic=scan&state=5", "[] " + p01.code + ":? " + s01.code + ":1"},
		{"topic=scan&state=3&collection=C", "[c1] " + p01.code + ":? " + s01.code + ":1"},
	} {
		var m report.Machines
		top.must("/v1/reports/machines?"+c.query, &m)
		got := fmt.Sprint(m.Machines)
		for _, e := range m.Elsewhere {
			n := "?"
			if e.Machines != nil {
				n = fmt.Sprint(*e.Machines)
			}
			got += " " + e.Site + ":" + n
		}
		if got != c.want || m.Total != int64(len(m.Machines)) {
			t.Errorf("machines?%s: %s (total %d), want %s", c.query, got, m.Total, c.want)
		}
	}
	top.must("/v1/reports/machines?updates=U1,U2&state=unknown", &m)
	if len(m.Elsewhere) != 2 || m.Elsewhere[0].Machines != nil || m.Elsewhere[1].Machines != nil {
		t.Errorf("machines of an ad-hoc set: elsewhere %+v", m.Elsewhere)
	}
	top.must("/v1/reports/machines?deployment=D&state=4&site="+p01.code, &m)
	if m.Total != 0 || len(m.Machines) != 0 || len(m.Elsewhere) != 2 || m.Elsewhere[0].Site != p01.code {
		t.Errorf("machines narrowed to P01 at CEN: %+v", m)
	}

	// What the cells cannot answer is refused, naming the parameter; per-client reports
	// answer for CEN's own clients and say so.
	top.status("/v1/reports/deployment?deployment=D&state=0", 400, "state")
	top.status("/v1/reports/errors?deployment=D", 400, "deployment")
	top.status("/v1/reports/trend?list=L&site="+p01.code, 400, "site")
	top.status("/v1/reports/computer?client=c1&list=L&site="+p01.code, 400, "site")
	top.status("/v1/reports/computer?client=p1&list=L", 404, "client") // a member of C, heard at P01 only
	var tr report.Trend
	top.must("/v1/reports/trend?list=L", &tr)
	var trAlone report.Trend
	cen.must("/v1/reports/trend?list=L&to="+tr.To.Format(time.RFC3339Nano)+"&from="+tr.From.Format(time.RFC3339Nano), &trAlone)
	if !tr.OwnSiteOnly || !reflect.DeepEqual(siteCodes(tr.Sites), []string{cen.code}) || !reflect.DeepEqual(tr.Points, trAlone.Points) {
		t.Errorf("trend at CEN: own %v sites %v points %+v, standalone %+v", tr.OwnSiteOnly, siteCodes(tr.Sites), tr.Points, trAlone.Points)
	}
	var comp report.Computer
	top.must("/v1/reports/computer?client=c2&list=L", &comp)
	if !comp.OwnSiteOnly || comp.Compliant != report.ComputerNonCompliant || len(comp.Sites) != 1 {
		t.Errorf("computer c2 at CEN: %+v", comp)
	}
	// With a deployment, the same own-site rule: CEN's own client c2, targeted, in its 301
	// state 3 with its error; p1 (heard at P01 only) is not found here; site= below refused.
	var cd report.Computer
	top.must("/v1/reports/computer?client=c2&deployment=D", &cd)
	if d := cd.Deployment; !cd.OwnSiteOnly || len(cd.Sites) != 1 || d == nil || !d.Targeted || d.Enforcement == nil ||
		d.Enforcement.State != 3 || d.Enforcement.Hex != "0x80070643" || d.Evaluation == nil || d.Evaluation.State != 0 || len(cd.Updates) != 2 {
		t.Errorf("computer c2 deployment D at CEN: %+v %+v", cd, cd.Deployment)
	}
	top.status("/v1/reports/computer?client=p1&deployment=D", 404, "client")
	top.status("/v1/reports/computer?client=c2&deployment=D&site="+p01.code, 400, "site")
}

// sortedQuery renders a query string with its parameters sorted by name, as url.Values
// encodes them.
func sortedQuery(q string) string {
	parts := strings.Split(q, "&")
	sort.Strings(parts)
	return strings.Join(parts, "&")
}
