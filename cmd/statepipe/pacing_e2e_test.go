package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/statepipe/statepipe/client"
	"github.com/statepipe/statepipe/pacing"
	"github.com/statepipe/statepipe/replicator"
	"github.com/statepipe/statepipe/report"
	"github.com/statepipe/statepipe/schema"
)

// testPacing is a controller quick enough for a test: a 2 s target, a 0.5 s window, a step
// every 100 ms.
func testPacing() pacing.Config {
	c := pacing.DefaultConfig()
	c.Target, c.Window, c.Interval, c.MaxStaleness = 2*time.Second, 500*time.Millisecond, 100*time.Millisecond, 3*time.Second
	c.StartRate, c.MaxRate = 2, 200
	c.Gain = 0.4 // five times the default: the test's minutes are seconds
	c.ReportInterval = time.Minute
	return c
}

// pacingStatus reads GET /v1/pacing (site= where one listener serves several).
func pacingStatus(t *testing.T, url, site string) pacing.Status {
	t.Helper()
	u := url + "/v1/pacing"
	if site != "" {
		u += "?site=" + site
	}
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st pacing.Status
	if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&st) != nil {
		t.Fatalf("GET %s: %s", u, resp.Status)
	}
	return st
}

// The whole loop on a real site: clients waiting to enrol raise the admitted rate while the
// backlog is low; a stalled store builds a backlog, the rate falls and the report interval the
// answers carry stretches; once the store is back the backlog drains and the rate recovers;
// an administrator pauses (429 with Retry-After, field enroll), sets and resumes.
func TestPacingFollowsTheBacklog(t *testing.T) {
	t.Parallel()
	fs := &flakyStore{}
	s := startSite(t, siteOpts{wrap: func(st siteStore) siteStore { fs.siteStore = st; return fs },
		tune: func(c *runConfig) {
			c.Pacing = testPacing()
			c.Projector.RetryMax, c.Projector.LagEvery = 100*time.Millisecond, 50*time.Millisecond
		}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Clients keep trying to enrol: 60 a second, each new, none waiting out its Retry-After.
	var admitted, refused atomic.Int64
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(time.Second / 60)
		defer tick.Stop()
		for i := 0; ctx.Err() == nil; i++ {
			<-tick.C
			st, _, e := enrollRaw(t, s.url, s.code, fmt.Sprintf("wave-%d", i), genKey(t), nil)
			switch {
			case st == 200:
				admitted.Add(1)
			case st == 429 && e.Field == "enroll":
				refused.Add(1)
			case ctx.Err() == nil:
				t.Errorf("enrolment %d: %d %+v", i, st, e)
			}
		}
	}()
	eventually(t, func() string {
		if st := pacingStatus(t, s.url, ""); st.EnrollRate < 10 || st.Mode != "auto" {
			return fmt.Sprintf("no backlog and clients waiting: %s %s at %g/s (%s), want the rate raised past 10/s", st.Mode, st.Decision, st.EnrollRate, st.Reason)
		}
		return ""
	})
	if refused.Load() == 0 || admitted.Load() == 0 {
		t.Fatalf("admitted %d, refused %d: want both (the rate is below the demand)", admitted.Load(), refused.Load())
	}
	// The store stalls: reports wait, the rate falls, the interval stretches.
	fs.down.Store(true)
	c, err := client.New(client.Config{URL: s.url, Site: s.code, ClientID: "reporter"})
	if err != nil {
		t.Fatal(err)
	}
	var before float64
	eventually(t, func() string {
		if err := c.Report(ctx, true, schema.StateMessage{TopicType: 500, TopicID: "KB1", State: 2}); err != nil {
			return err.Error()
		}
		st := pacingStatus(t, s.url, "")
		if before == 0 {
			before = st.EnrollRate
		}
		if st.Pressure < 1 || st.EnrollRate >= before/2 || c.ReportInterval() != 4*time.Minute {
			return fmt.Sprintf("store stalled: pressure %.2f (%s), %s at %g/s (was %g), report interval %s; want over target, the rate halved, the interval 4 × 1m",
				st.Pressure, st.Limiting, st.Decision, st.EnrollRate, before, c.ReportInterval())
		}
		return ""
	})
	low := pacingStatus(t, s.url, "").EnrollRate
	t.Logf("store stalled: the rate fell from %g/s to %g/s", before, low)
	fs.down.Store(false)
	eventually(t, func() string {
		if st := pacingStatus(t, s.url, ""); st.EnrollRate < 2*low || st.Pressure >= 0.5 {
			return fmt.Sprintf("store back: pressure %.2f, %s at %g/s, want the backlog drained and the rate above %g/s", st.Pressure, st.Decision, st.EnrollRate, 2*low)
		}
		return ""
	})
	t.Logf("store back: the rate recovered to %g/s", pacingStatus(t, s.url, "").EnrollRate)
	for _, kind := range []string{"increase", "decrease"} {
		if n := promValue(t, s.url, `statepipe_pacing_decisions_total{kind="`+kind+`"`); n == 0 {
			t.Errorf("no %s counted in statepipe_pacing_decisions_total", kind)
		}
	}
	cancel()
	wg.Wait()

	// An administrator pauses: every new enrolment is refused with a Retry-After.
	post := func(op, body string) int {
		st, _, _ := postWith(t, s.url+"/v1/pacing/"+op, []byte(body), map[string]string{"Content-Type": "application/json"})
		return st
	}
	// A pause meant for another site, in a query string net/url would cut short, is refused,
	// not taken as this site's.
	if st := post("pause?site=ELSEWHERE;x=1", ""); st != 400 {
		t.Fatalf("pause?site=ELSEWHERE;x=1: %d, want 400", st)
	}
	if st := post("pause", ""); st != 200 {
		t.Fatalf("pause: %d", st)
	}
	st, retry, raw := postWith(t, s.url+"/v1/enroll", enrollBody(t, s.code, "after-pause"), nil)
	if st != 429 || retry == "" || !strings.Contains(string(raw), `"field":"enroll"`) || !strings.Contains(string(raw), "paused by an administrator") {
		t.Fatalf("an enrolment while paused: %d Retry-After %q %s", st, retry, raw)
	}
	// The pause holds across a restart: the node admits nobody before it has read it.
	s.stop()
	s = startSite(t, siteOpts{code: s.code, data: s.data, tune: func(c *runConfig) { c.Pacing = testPacing() }})
	for i := range 20 {
		if st, _, raw := postWith(t, s.url+"/v1/enroll", enrollBody(t, s.code, fmt.Sprint("after-restart-", i)), nil); st != 429 {
			t.Fatalf("enrolment %d right after a restart of a paused site: %d %s, want 429", i, st, raw)
		}
	}
	eventually(t, func() string {
		if got := pacingStatus(t, s.url, ""); got.Mode != "paused" || !strings.Contains(got.Reason, "administrator") {
			return fmt.Sprintf("after a restart: %s (%s), want paused by an administrator", got.Mode, got.Reason)
		}
		return ""
	})
	if st := post("rate", `{"rate": 1e-300}`); st != 400 {
		t.Errorf("a rate under --pacing.min-rate: %d, want 400", st)
	}
	if st := post("rate", `{"rate": 5} {"rate": 6}`); st != 400 {
		t.Errorf("a body with more than one value: %d, want 400", st)
	}
	if st := post("rate", `{"rate": -3}`); st != 400 {
		t.Errorf("a negative rate: %d, want 400", st)
	}
	if st := post("rate", `{"rate": 25}`); st != 200 {
		t.Fatalf("set: %d", st)
	}
	if got := pacingStatus(t, s.url, ""); got.Mode != "manual" || got.EnrollRate != 25 {
		t.Errorf("after set: %s at %g/s, want manual at 25/s", got.Mode, got.EnrollRate)
	}
	if st := post("resume", ""); st != 200 {
		t.Fatalf("resume: %d", st)
	}
	if got := pacingStatus(t, s.url, ""); got.Mode != "auto" {
		t.Errorf("after resume: %s, want auto", got.Mode)
	}
	if st := post("jump", ""); st != 404 {
		t.Errorf("an unknown command: %d, want 404", st)
	}
}

func enrollBody(t *testing.T, site, id string) []byte {
	t.Helper()
	b, _ := json.Marshal(schema.EnrollRequest{Client: id, Site: site, PublicKey: genKey(t).Public().(ed25519.PublicKey)})
	return b
}

// A stale parent slows its children: the middle site A loses its link to the central site C;
// A's own link goes over target, A publishes it, and S below A slows with it, while B (beside
// A, below C) is not touched. The central site's backlog report shows each site's pacing from
// its heartbeats. Once the link is back, A and S recover.
func TestPacingAStaleLinkSlowsTheSitesBelowIt(t *testing.T) {
	t.Parallel()
	links := map[string]*switchable{}
	var mu sync.Mutex
	tr := startTree(t, treeOpts{
		wrap: func(site string, p replicator.Producer) replicator.Producer {
			mu.Lock()
			defer mu.Unlock()
			if links[site] == nil {
				links[site] = &switchable{p: p}
			}
			return &switchable{p: links[site]}
		},
		tune: func(c *runConfig) { c.Pacing = testPacing() }})
	C, A, S, B := tr.code["C"], tr.code["A"], tr.code["S"], tr.code["B"]
	calm := func(sites ...string) string {
		for _, site := range sites {
			if st := pacingStatus(t, tr.url, site); st.Mode != "auto" || st.Pressure >= 0.5 {
				return fmt.Sprintf("%s: %s %s, pressure %.2f (%s), want auto and calm", site, st.Mode, st.Decision, st.Pressure, st.Limiting)
			}
		}
		return ""
	}
	treeEventually(t, func() string { return calm(C, A, S, B) })
	// The central site's backlog report carries every site's pacing.
	treeEventually(t, func() string {
		var b report.Backlog
		if st := tr.get("/v1/reports/backlog", C, &b); st != 200 {
			return fmt.Sprintf("backlog at C: %d", st)
		}
		for _, s := range b.Sites {
			if s.Pacing == nil || s.Pacing.Mode != "auto" {
				return fmt.Sprintf("backlog at C: site %s's pacing %+v, want each site's, auto", s.Site, s.Pacing)
			}
		}
		if len(b.Sites) != 4 {
			return fmt.Sprintf("backlog at C: %d sites, want 4", len(b.Sites))
		}
		return ""
	})
	mu.Lock()
	links[A].cut.Store(true)
	mu.Unlock()
	treeEventually(t, func() string {
		a, s := pacingStatus(t, tr.url, A), pacingStatus(t, tr.url, S)
		switch {
		case a.Pressure < 1 || !strings.HasPrefix(a.Limiting, "link "+A+"->"+C):
			return fmt.Sprintf("A cut from C: pressure %.2f (%s), want over target on its link", a.Pressure, a.Limiting)
		case s.Pressure < 1 || s.Limiting != "above "+A:
			return fmt.Sprintf("S below the cut A: pressure %.2f (%s), want over target from above A", s.Pressure, s.Limiting)
		case a.BacklogOK || s.BacklogOK:
			return "phases may still be released below a failed link"
		}
		return ""
	})
	// The others stay (or, on a loaded machine whose own links lag a moment, come back) calm
	// while A is still cut: the cut holds only A and the sites below it.
	treeEventually(t, func() string {
		if msg := calm(C, B); msg != "" {
			return "a cut below A touched the others: " + msg
		}
		if a := pacingStatus(t, tr.url, A); a.Pressure < 1 {
			return fmt.Sprintf("A's cut link no longer over target (%.2f, %s) before the others were seen calm", a.Pressure, a.Limiting)
		}
		return ""
	})
	mu.Lock()
	links[A].cut.Store(false)
	mu.Unlock()
	treeEventually(t, func() string { return calm(A, S) })
}
