package bench

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/statepipe/statepipe/client"
	"github.com/statepipe/statepipe/report"
	"github.com/statepipe/statepipe/schema"
)

// A site hierarchy's run (Scenario.Primaries > 0): one site process hosts a central site CEN
// and the primaries P01, P02, … below it (run --topology, a file the harness writes), on one
// listener. Each simulated client reports to its primary (the body's site field picks it); the
// reference data — catalog, lists, collections, deployments and the Patch Tuesday drop — is
// imported at CEN and flows down. The dispatcher, workers and the per-second sampler are the
// single-site harness's; this file adds:
//
//   - the oracle per site and centrally (hierarchy_check.go): at each checkpoint it waits
//     until CEN's watermark of every primary (and each primary's own) has passed the moment
//     the last report was answered, then compares each primary's reports (?site=P0x) with its
//     own clients' oracle, and CEN's compliance with the sum of the primaries' and with the
//     oracle over every client;
//   - the central visibility delay (hierarchy_measure.go): CEN's per-origin watermarks read
//     every 250 ms; a report answered at t is visible centrally at the first reading whose
//     watermark for its primary is ≥ t;
//   - the links' own metrics once a second: bytes, records and cells each primary sent up, its
//     freshness, backlog and link state, and what CEN folded.

// centralSite is the root of the hierarchy the harness runs.
const centralSite = "CEN"

// hierRun is the hierarchy's part of a run: which client reports where, what each primary
// acknowledged and when, and what the samplers read.
type hierRun struct {
	root      string
	primaries []string
	site      *harnessSite
	whole     *world   // every client: the central oracle
	parts     []*world // by primary: its clients (sharing whole's)
	acked     []atomic.Int64

	mu      sync.Mutex
	accepts [][]time.Time // by primary: when each acknowledged report was answered
	firsts  []time.Time   // by primary: when the last first (full) scan was answered
	wm      []wmSample    // CEN's watermarks of the primaries, every 250 ms
	links   []LinkSample  // the links' metrics, every second
	checks  []HierCheck   // per checkpoint
	finds   map[string]*Finding
	order   []string // finding keys in the order first seen
}

// primaryCodes names n primaries: P01, P02, …
func primaryCodes(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("P%02d", i+1)
	}
	return out
}

// topologyYAML is the topology file of root with the primaries below it (embedded form).
func topologyYAML(root string, primaries []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# written by the bench harness: %s with %d primaries below it\nsites:\n  - code: %s\n", root, len(primaries), root)
	for _, p := range primaries {
		fmt.Fprintf(&b, "  - code: %s\n    parent: %s\n", p, root)
	}
	return b.String()
}

// newHierRun splits w's clients among the primaries: client i reports to primary i mod n.
func newHierRun(site *harnessSite, w *world, root string, primaries []string) *hierRun {
	r := &hierRun{root: root, primaries: primaries, site: site, whole: w, acked: make([]atomic.Int64, len(primaries)),
		accepts: make([][]time.Time, len(primaries)), firsts: make([]time.Time, len(primaries)), finds: map[string]*Finding{}}
	for p := range primaries {
		part := *w
		part.index, part.skipDeployments = nil, true
		part.clients = nil
		for _, c := range w.clients {
			if c.idx%len(primaries) == p {
				part.clients = append(part.clients, c)
			}
		}
		r.parts = append(r.parts, &part)
	}
	return r
}

// primaryOf is the index of client i's primary.
func (r *hierRun) primaryOf(i int) int { return i % len(r.primaries) }

// siteOf is the site client i reports to.
func (r *hierRun) siteOf(i int) string { return r.primaries[r.primaryOf(i)] }

// accepted records a report of client i of n messages (its first, full scan when full),
// answered 200 at at.
func (r *hierRun) accepted(i int, n int64, full bool, at time.Time) {
	p := r.primaryOf(i)
	r.acked[p].Add(n)
	r.mu.Lock()
	r.accepts[p] = append(r.accepts[p], at)
	if full && at.After(r.firsts[p]) {
		r.firsts[p] = at
	}
	r.mu.Unlock()
}

// resynced records n messages (and markers) client i sent again when its site asked.
func (r *hierRun) resynced(i int, n int64) { r.acked[r.primaryOf(i)].Add(n) }

// at is site code's view for the oracle.
func (r *hierRun) at(code string) siteAt { return siteAt{s: r.site, code: code} }

// waitDown waits until every primary shows list id: reference data imported at the root
// reaches the sites below through the replicator.
func (r *hierRun) waitDown(ctx context.Context, id string) error {
	for _, p := range r.primaries {
		deadline := time.Now().Add(2 * time.Minute)
		for {
			var c report.Compliance
			err := r.at(p).get(ctx, "/v1/reports/compliance?list="+id, &c)
			if err == nil {
				break
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				return fmt.Errorf("list %s imported at %s never reached %s: %w", id, r.root, p, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	return nil
}

// siteAt is one site of a site process hosting a topology, as the oracle reads it: every
// report query and SQL statement names the site with site=.
type siteAt struct {
	s    *harnessSite
	code string
}

func (a siteAt) get(ctx context.Context, path string, v any) error {
	return a.s.get(ctx, a.withSite(path), v)
}

// withSite adds site= to a path's query.
func (a siteAt) withSite(path string) string {
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	return path + sep + "site=" + url.QueryEscape(a.code)
}

func (a siteAt) sql(ctx context.Context, q string) (*schema.Result, error) {
	return a.s.sqlAt(ctx, q, a.code)
}

func (a siteAt) database() string { return schema.Database(a.code) }

// runHierarchy runs a scenario with Primaries over a site hierarchy (see the top of this
// file). The raw ceilings are not measured: they are the single-site runs' business.
func runHierarchy(ctx context.Context, cfg HarnessConfig) (*HarnessResult, error) {
	started := time.Now().UTC()
	per := *cfg.Scenario
	sc := per
	n := per.Primaries
	sc.Clients = per.Clients * n
	sc.Waves = nil
	for _, w := range per.Waves {
		sc.Waves = append(sc.Waves, Wave{At: w.At, Clients: w.Clients * n})
	}
	primaries := primaryCodes(n)
	dir, err := os.MkdirTemp("", "statepipe-topology-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	topo := filepath.Join(dir, "topology.yaml")
	if err := os.WriteFile(topo, []byte(topologyYAML(centralSite, primaries)), 0o644); err != nil {
		return nil, err
	}
	cfg.Scenario, cfg.Topology, cfg.Site, cfg.Ceilings = &sc, topo, centralSite, nil
	site, err := startSite(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer site.stop()
	h := newHarness(cfg, site, started)
	defer h.out.endStatus()
	r := newHierRun(site, h.world, centralSite, primaries)
	h.hier = r
	h.out.logf("hierarchy: %s with %s below it, %d clients each, one site process (topology %s)", centralSite, strings.Join(primaries, ", "), per.Clients, topo)
	if err := h.prepare(ctx); err != nil {
		return h.res, err
	}
	if sc.EnrolWave != nil {
		// The rollout wave across the hierarchy: each client enrols at its primary during
		// the run (hierarchy_wave.go measures each site's pacing and CEN's freshness).
		h.wave = newWaveRun(&sc)
		h.sdk = make([]*client.Client, sc.Clients)
	} else if err := h.enrol(ctx); err != nil {
		return h.res, fmt.Errorf("enrol: %w", err)
	}
	sctx, stopSamplers := context.WithCancel(ctx)
	var samplers sync.WaitGroup
	samplers.Go(func() { r.sampleWatermarks(sctx, 250*time.Millisecond) })
	samplers.Go(func() { r.sampleLinks(sctx, h) })
	checked, err := h.run(ctx)
	stopSamplers()
	samplers.Wait()
	if err != nil {
		return h.res, err
	}
	err = h.summarise(ctx, checked)
	h.res.Hierarchy = r.summarise(h, per)
	if h.wave != nil {
		// A wave has no steady phase to read central visibility at: its goal is the
		// central freshness throughout.
		h.res.Hierarchy.Wave = r.summariseWave(h)
		h.res.Goals = append(h.res.Goals, hierWaveGoals(h.res.Hierarchy.Wave)...)
	} else {
		h.res.Goals = append(h.res.Goals, r.goals(h.res.Hierarchy)...)
	}
	return h.res, err
}
