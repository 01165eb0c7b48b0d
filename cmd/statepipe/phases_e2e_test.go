package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/statepipe/statepipe/client"
	"github.com/statepipe/statepipe/ingest"
	"github.com/statepipe/statepipe/internal/kafka"
	"github.com/statepipe/statepipe/pacing"
	"github.com/statepipe/statepipe/schema"
)

// startPhasedSite starts a site as startSite does and makes sure it takes part in phased
// deployments — the book ingest answers from, the decider, the status route — wiring them
// itself (newSitePhases, as newSite does) where the site has not.
func startPhasedSite(t *testing.T) *testSite {
	t.Helper()
	requireChdb(t)
	code := fmt.Sprintf("PH%d", siteSeq.Add(1))
	data := t.TempDir()
	cfg := runConfig{Data: data, Listen: "127.0.0.1:0", KafkaListen: "127.0.0.1:0", Site: code,
		Kafka: kafka.DefaultConfig(), Ingest: ingestDefaults(), Auth: authDefaults(ingest.AuthOptional), Projector: projectorDefaults()}
	cfg.Kafka.Brokers = realKafka()
	cfg.Kafka.Partitions = 4
	cfg.Projector.BatchWait = 50 * time.Millisecond
	cfg.Store.ChdbPath = chdbDir
	ctx, cancel := context.WithCancel(context.Background())
	n, err := startRun(ctx, cfg, nil, quietLogger())
	if err != nil {
		cancel()
		t.Fatalf("cannot start: %v", err)
	}
	for _, s := range n.sites {
		wired := false
		for _, a := range s.actors {
			_, ok := a.(*phaseDecider)
			wired = wired || ok
		}
		if wired {
			continue
		}
		var backlogOK func() bool
		if s.pacer != nil {
			backlogOK = s.pacer.BacklogOK
		}
		reg := prometheus.WrapRegistererWith(prometheus.Labels{"site": s.cfg.Code}, n.reg)
		d := s.newSitePhases(s.cfg, backlogOK, func() time.Time { wm, _ := s.watermark.Get(); return wm }, reg, quietLogger())
		if _, pattern := n.mux.Handler(httptest.NewRequest("GET", "/v1/deployments/x/phases", nil)); pattern == "" {
			n.mux.Handle("GET /v1/deployments/{id}/phases", d)
		}
	}
	done := make(chan error, 1)
	go func() { done <- n.run(ctx) }()
	waitHealthy(t, n.url())
	stop := func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("stopped with error: %v", err)
		}
	}
	t.Cleanup(stop)
	return &testSite{t: t, code: code, url: n.url(), data: data, node: n, stop: stop}
}

// A deployment in three phases, end to end through the HTTP API: phase 1 (a collection) is
// released at the start; phase 2 (a share) once phase 1's clients report compliant on fresh
// data; phase 3 (the rest) waits while a client of phase 2 requires an update, and is released
// once it installed it. Every ingest answer lists the deployment exactly for the clients of
// released phases.
func TestPhasedDeploymentReleasesPhaseByPhase(t *testing.T) {
	s := startPhasedSite(t)
	const dep = "D-phased"
	var members []string
	for i := range 20 {
		members = append(members, fmt.Sprintf("pc-%02d", i))
	}
	pilot := members[:4]
	plans := []pacing.PhasePlan{{Name: "pilot", Collection: "pilot-ring"}, {Name: "early", Share: 0.3}, {Name: "rest"}}
	phases := pacing.AssignPhases(dep, members, plans, map[string][]string{"pilot-ring": pilot})
	if !slices.Equal(phases[0], pilot) || len(phases[1]) < 2 || len(phases[2]) < 1 {
		t.Fatalf("the phases of the test's clients: %v", phases)
	}
	quoted := func(ids []string) string { return `["` + strings.Join(ids, `","`) + `"]` }
	s.importRef("catalog", `{"id":"U1","title":"Update one","first_synced":"2026-01-01T00:00:00Z"}`,
		`{"id":"U2","title":"Update two","first_synced":"2026-01-01T00:00:00Z"}`)
	s.importRef("collections", `{"id":"ring","name":"every machine","members":`+quoted(members)+`}`,
		`{"id":"pilot-ring","name":"pilot machines","members":`+quoted(pilot)+`}`)
	start := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	s.importRef("deployments", `{"id":"`+dep+`","name":"November","updates":["U1","U2"],"collection":"ring","start":"`+start+`","deadline":"2099-01-01T00:00:00Z",`+
		`"phases":[{"name":"pilot","collection":"pilot-ring"},{"name":"early","share":0.3,"success_pct":100},{"name":"rest"}]}`)

	status := func() *phasesAnswer {
		var a phasesAnswer
		if code := s.get("/v1/deployments/"+dep+"/phases", &a); code != 200 {
			t.Fatalf("phases: %d", code)
		}
		return &a
	}
	waitPhase := func(want []string, reason string) *phasesAnswer {
		t.Helper()
		var a *phasesAnswer
		eventually(t, func() string {
			a = status()
			var got []string
			for _, p := range a.Phases {
				got = append(got, p.State)
			}
			if !slices.Equal(got, want) {
				return fmt.Sprintf("states %v, want %v (%+v)", got, want, a.Phases)
			}
			for _, p := range a.Phases {
				if p.State == pacing.PhaseWaiting {
					if !strings.Contains(p.Reason, reason) {
						return fmt.Sprintf("phase %d waits because %q, want %q", p.Phase, p.Reason, reason)
					}
					break
				}
			}
			return ""
		})
		return a
	}
	clients := map[string]*client.Client{}
	report := func(id string, u2 int32) []string {
		t.Helper()
		c := clients[id]
		if c == nil {
			c = s.client(id)
			clients[id] = c
		}
		if err := c.Report(context.Background(), true,
			schema.StateMessage{Time: time.Now().UnixMilli(), TopicType: schema.TopicUpdateCompliance, TopicID: "U1", State: schema.ComplianceInstalled},
			schema.StateMessage{Time: time.Now().UnixMilli(), TopicType: schema.TopicUpdateCompliance, TopicID: "U2", State: u2}); err != nil {
			t.Fatalf("report of %s: %v", id, err)
		}
		return c.Released()
	}
	released := func(ids []string, want bool) {
		t.Helper()
		for _, id := range ids {
			if got := report(id, schema.ComplianceInstalled); slices.Contains(got, dep) != want {
				t.Errorf("%s (phase %d): released %v, want the deployment listed: %v", id, phaseOf(phases, id), got, want)
			}
		}
	}

	// Phase 1 at the start; phase 2 waits for phase 1's clients.
	a := waitPhase([]string{"released", "waiting", "waiting"}, "criterion of phase 1 (pilot) 0 % < 95 %")
	if a.Phases[0].Members != 4 || a.Phases[1].Members != int64(len(phases[1])) || a.Phases[2].Members != int64(len(phases[2])) || !a.DecidedHere || a.DecidedBy != s.code {
		t.Errorf("status %+v", a)
	}
	released(phases[2][:1], false)
	released(phases[1][:1], false)
	released(pilot, true) // compliant: every update installed

	// Phase 2 once phase 1 is compliant; phase 3 waits while one client of phase 2 requires U2.
	waitPhase([]string{"released", "released", "waiting"}, "criterion of phase 2 (early)")
	if got := report(phases[1][0], schema.ComplianceRequired); !slices.Contains(got, dep) {
		t.Errorf("a client of phase 2 after its release: released %v", got)
	}
	released(phases[1][1:], true)
	released(phases[2][:1], false)
	a = waitPhase([]string{"released", "released", "waiting"}, fmt.Sprintf("criterion of phase 2 (early) %s %% < 100 %% on fresh data (%d of %d members compliant)",
		pctOf(len(phases[1])-1, len(phases[1])), len(phases[1])-1, len(phases[1])))
	if a.Phases[1].Compliant != int64(len(phases[1])-1) {
		t.Errorf("phase 2: %+v", a.Phases[1])
	}

	// The last client of phase 2 installs U2: phase 3 is released, and its clients hear it.
	released(phases[1][:1], true)
	waitPhase([]string{"released", "released", "released"}, "")
	released(phases[2], true)
	released(pilot[:1], true)

	// The status, the metric, the analysts' view and the CLI's table say the same.
	a = status()
	if !strings.Contains(a.Phases[2].Reason, "phase 2 (early): 100 % ≥ 100 % compliant") || a.Phases[0].Reason == "" {
		t.Errorf("reasons: %q, %q", a.Phases[0].Reason, a.Phases[2].Reason)
	}
	if m := s.metrics(t); !strings.Contains(m, `statepipe_pacing_phase_state{deployment="`+dep+`",phase="rest",site="`+s.code+`",state="released"} 1`) {
		t.Errorf("metrics lack the released phase:\n%s", grepLines(m, "phase_state"))
	}
	eventually(t, func() string { // once the last release is folded
		res, code := s.sql("SELECT phase, name, members, released FROM v_deployment_phases WHERE deployment = '" + dep + "' ORDER BY phase")
		if code != 200 || fmt.Sprint(res.Rows) != fmt.Sprintf("[[1 pilot 4 1] [2 early %d 1] [3 rest %d 1]]", len(phases[1]), len(phases[2])) {
			return fmt.Sprintf("v_deployment_phases: %d %v", code, res.Rows)
		}
		return ""
	})
	var out bytes.Buffer
	printPhases(&out, a)
	if !strings.Contains(out.String(), "early  share 0.3") || !strings.Contains(out.String(), "collection pilot-ring") {
		t.Errorf("table:\n%s", out.String())
	}

	// Generated ids are reserved, and releases are written by the site only.
	for kind, line := range map[string]string{"collections": `{"id":"` + dep + `~phase-1","members":["pc-99"]}`, "phases": `{"deployment":"` + dep + `","phase":3}`} {
		resp, err := httpPost(s.url+"/v1/ref/"+kind, "application/x-ndjson", []byte(line))
		if err != nil || (kind == "collections" && resp != 400) || (kind == "phases" && resp != 404) {
			t.Errorf("import of %s: %d %v", kind, resp, err)
		}
	}
	if code := s.get("/v1/deployments/nowhere/phases", nil); code != 404 {
		t.Errorf("an unknown deployment: %d, want 404", code)
	}
}

func phaseOf(phases [][]string, id string) int {
	for i, ms := range phases {
		if slices.Contains(ms, id) {
			return i + 1
		}
	}
	return 0
}

func pctOf(part, total int) string {
	s := fmt.Sprintf("%.2f", float64(int64(float64(part)/float64(total)*1e4+0.5))/100)
	return strings.TrimSuffix(strings.TrimRight(s, "0"), ".")
}

// In a hierarchy the site a deployment was created at decides it from every site's counts:
// the generated collections and releases flow down, each site counts its own clients per
// phase and sends the counts up, the central site releases the next phase once the sites
// below report their clients compliant with fresh watermarks, and each site's ingest answers
// its clients from the copies it holds. Below, the phases are read-only and the status says
// who decides.
func TestPhasedDeploymentAcrossTheHierarchy(t *testing.T) {
	tr := startTree(t, treeOpts{})
	if _, pattern := tr.node.mux.Handler(httptest.NewRequest("GET", "/v1/deployments/x/phases", nil)); pattern == "" {
		t.Skip("the sites do not serve GET /v1/deployments/{id}/phases yet (newSitePhases is not wired into newSite)")
	}
	wired := false
	for _, s := range tr.node.sites {
		for _, a := range s.actors {
			_, ok := a.(*phaseDecider)
			wired = wired || ok
		}
	}
	if !wired {
		t.Skip("newSitePhases is not wired into newSite yet")
	}
	const dep = "D-tree"
	c, a, b := tr.code["C"], tr.code["A"], tr.code["B"]
	tr.importCatalog()
	for kind, line := range map[string]string{
		"collections": `{"id":"all","members":["a-1","a-2","b-1"]}` + "\n" + `{"id":"pilot","members":["a-1","a-2"]}`,
		"deployments": `{"id":"` + dep + `","updates":["U1"],"collection":"all","start":"2026-01-01T00:00:00Z","deadline":"2099-01-01T00:00:00Z",` +
			`"phases":[{"name":"pilot","collection":"pilot"},{"name":"rest"}]}`,
	} {
		if code, body := tr.importRef(c, kind, line); code != 200 {
			t.Fatalf("%s at the central site: %d %s", kind, code, body)
		}
	}
	phasesAt := func(site string) *phasesAnswer {
		var ans phasesAnswer
		if code := tr.get("/v1/deployments/"+dep+"/phases", site, &ans); code != 200 {
			return nil
		}
		return &ans
	}
	states := func(ans *phasesAnswer) string {
		if ans == nil {
			return "no answer"
		}
		var s []string
		for _, p := range ans.Phases {
			s = append(s, p.State)
		}
		return strings.Join(s, " ")
	}
	treeEventually(t, func() string {
		if got := states(phasesAt(c)); got != "released waiting" {
			return "central: " + got
		}
		if got := states(phasesAt(a)); got != "released waiting" {
			return "below: " + got
		}
		return ""
	})
	clients := map[string]*client.Client{}
	report := func(site, id string) []string {
		t.Helper()
		cl := clients[id]
		if cl == nil {
			var err error
			if cl, err = client.New(client.Config{URL: tr.url, Site: site, ClientID: id}); err != nil {
				t.Fatal(err)
			}
			clients[id] = cl
		}
		if err := cl.Report(context.Background(), true, schema.StateMessage{Time: time.Now().UnixMilli(), TopicType: schema.TopicUpdateCompliance,
			TopicID: "U1", State: schema.ComplianceInstalled}); err != nil {
			t.Fatalf("report of %s at %s: %v", id, site, err)
		}
		return cl.Released()
	}
	if got := report(b, "b-1"); len(got) != 0 {
		t.Errorf("a client of the last phase, before its release: released %v", got)
	}
	for _, id := range []string{"a-1", "a-2"} {
		if got := report(a, id); !slices.Equal(got, []string{dep}) {
			t.Errorf("%s (pilot, at %s): released %v", id, a, got)
		}
	}
	treeEventually(t, func() string {
		ans := phasesAt(c)
		if got := states(ans); got != "released released" {
			if ans != nil {
				return "central: " + got + ": " + ans.Phases[1].Reason
			}
			return "central: " + got
		}
		if !strings.Contains(ans.Phases[1].Reason, "phase 1 (pilot): 100 % ≥ 95 % compliant (2 of 2)") || len(ans.Sites) != 4 {
			return fmt.Sprintf("central: reason %q, sites %v", ans.Phases[1].Reason, ans.Sites)
		}
		return ""
	})
	treeEventually(t, func() string {
		if got := report(b, "b-1"); !slices.Equal(got, []string{dep}) {
			return fmt.Sprintf("b-1 at %s after the release: released %v", b, got)
		}
		return ""
	})
	// A site below shows the releases once its projector folded them (copied down with the
	// reference data): soon, not at once.
	treeEventually(t, func() string {
		if below := phasesAt(a); below == nil || below.DecidedHere || below.DecidedBy != c || states(below) != "released released" {
			return fmt.Sprintf("the status below: %+v", below)
		}
		return ""
	})
	if code, body := tr.importRef(a, "deployments", `{"id":"`+dep+`","updates":["U1"],"collection":"all","start":"2026-01-01T00:00:00Z","deadline":"2099-01-01T00:00:00Z"}`); code != 409 {
		t.Errorf("editing the deployment below: %d %s, want 409", code, body)
	}
}
