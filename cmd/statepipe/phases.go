package main

// Phased deployments at a site: the decider (materialises each phased deployment the site
// decides as generated collections and a list, and releases its phases by pacing.DecidePhases),
// the ingest answer's book of releases (ingest.PhaseBook), the status endpoint
// GET /v1/deployments/{id}/phases and the verb `statepipe deployments phases`.

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/statepipe/statepipe/ingest"
	"github.com/statepipe/statepipe/internal/kafka"
	"github.com/statepipe/statepipe/pacing"
	"github.com/statepipe/statepipe/report"
	"github.com/statepipe/statepipe/schema"
)

// phaseDeciderName is the decider's actor name (in the node's logs).
const phaseDeciderName = "phase decider"

// phaseInterval is how often the decider looks at the phased deployments.
const phaseInterval = 2 * time.Second

// phaseDeciderConfig is what a site's decider works with.
type phaseDeciderConfig struct {
	Site string
	DB   string
	// Store reads the site's reference tables, aggregates and heartbeats.
	Store interface {
		Query(ctx context.Context, query string) (*schema.Result, error)
	}
	// Produce writes into ref.<site> (Topic), vouched with Key (nil: unvouched, auth off).
	// Nil: the site does not decide (it shows the releases it holds).
	Produce func(ctx context.Context, recs ...ingest.Record) error
	Topic   string
	Key     ed25519.PrivateKey
	// RefFolded returns once the site's projector has folded everything in ref.<site> so far:
	// the decider reads the tables after it, so a release it wrote is never written again.
	RefFolded func(ctx context.Context) error
	// OwnWatermark is the site's own watermark: every report it accepted before it is folded.
	OwnWatermark func() time.Time
	// BacklogOK says the site's backlog is under target (the pacing controller's); nil: true.
	BacklogOK func() bool
	// Below are the sites below this one in the topology: their watermarks (v_hier_origins)
	// must be fresh too. Origins not named here are not waited for.
	Below []string
	// Root: the site has no parent; it decides the deployments that name no site (imported
	// before deployments carried their site).
	Root     bool
	Interval time.Duration // default phaseInterval
	Log      *slog.Logger
	Now      func() time.Time // default time.Now
}

// phaseDecider decides the phased deployments created at its site (schema.Deployment.Site):
// those from above are decided above, and reach the site as reference data.
type phaseDecider struct {
	cfg   phaseDeciderConfig
	gauge *prometheus.GaugeVec

	mu        sync.Mutex
	decisions map[string]*phasesAnswer // by deployment, as last decided
	answered  map[string]cachedPhases  // by deployment, answers read from the store (sites that do not decide it)
	labels    map[[2]string]bool       // (deployment, phase) label pairs exported
	lastErr   string
}

// newPhaseDecider builds the decider and registers statepipe_pacing_phase_state on reg.
func newPhaseDecider(cfg phaseDeciderConfig, reg prometheus.Registerer) *phaseDecider {
	if cfg.Interval <= 0 {
		cfg.Interval = phaseInterval
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.BacklogOK == nil {
		cfg.BacklogOK = func() bool { return true }
	}
	d := &phaseDecider{cfg: cfg, decisions: map[string]*phasesAnswer{}, labels: map[[2]string]bool{},
		gauge: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "statepipe_pacing_phase_state",
			Help: "Each phase of every phased deployment this site decides: 1 for its state (waiting or released), 0 for the other."},
			[]string{"deployment", "phase", "state"})}
	if reg != nil {
		reg.MustRegister(d.gauge)
	}
	return d
}

// Name says what it is in the node's logs.
func (d *phaseDecider) Name() string { return phaseDeciderName }

// Run decides every interval until ctx is done. A site that does not decide (no producer)
// only serves the status.
func (d *phaseDecider) Run(ctx context.Context) error {
	if d.cfg.Produce == nil {
		<-ctx.Done()
		return nil
	}
	for {
		if err := d.step(ctx); err != nil && ctx.Err() == nil {
			d.mu.Lock()
			if msg := err.Error(); msg != d.lastErr {
				d.cfg.Log.Warn("cannot decide the phases of deployments; retrying", "err", err)
				d.lastErr = msg
			}
			d.mu.Unlock()
		} else {
			d.mu.Lock()
			d.lastErr = ""
			d.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(d.cfg.Interval):
		}
	}
}

// decides reports whether the site decides deployment dep.
func (d *phaseDecider) decides(dep *schema.Deployment) bool {
	return d.cfg.Produce != nil && (dep.Site == d.cfg.Site || (dep.Site == "" && d.cfg.Root))
}

// step decides once: for each phased deployment the site decides, it writes the generated
// collections and list that are missing or differ, then the phases released now.
func (d *phaseDecider) step(ctx context.Context) error {
	if d.cfg.RefFolded != nil {
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := d.cfg.RefFolded(wctx)
		cancel()
		if err != nil {
			return fmt.Errorf("the site's projector has not folded its reference data (is it running?): %w", err)
		}
	}
	deps, err := d.deployments(ctx, "")
	if err != nil {
		return err
	}
	mine := deps[:0:0]
	for _, dep := range deps {
		if d.decides(&dep.Deployment) {
			mine = append(mine, dep)
		}
	}
	now := d.cfg.Now()
	st, err := d.read(ctx, mine)
	if err != nil {
		return err
	}
	backlogOK := d.cfg.BacklogOK()
	var out []ingest.Record
	answers := map[string]*phasesAnswer{}
	for _, dep := range mine {
		a, recs := d.decide(dep, st, now, backlogOK)
		answers[dep.ID] = a
		out = append(out, recs...)
	}
	if len(out) > 0 {
		if err := d.cfg.Produce(ctx, out...); err != nil {
			return fmt.Errorf("cannot write the phases' reference data into %s: %w", d.cfg.Topic, err)
		}
		for _, a := range answers {
			for _, p := range a.Phases {
				if p.Release {
					d.cfg.Log.Info("released a phase", "deployment", a.Deployment, "phase", p.Phase, "name", p.Name, "reason", p.Reason)
				}
			}
		}
	}
	d.publish(answers)
	return nil
}

// decide materialises one deployment and decides its phases: the answer, and the records to
// write (generated collections and list that differ from the store's, then new releases).
func (d *phaseDecider) decide(dep phasedDeployment, st *phaseState, now time.Time, backlogOK bool) (*phasesAnswer, []ingest.Record) {
	a := d.answer(dep, st, now)
	a.DecidedHere, a.BacklogOK = true, &backlogOK
	target, known := st.collections[dep.Collection]
	if !known {
		for i := range a.Phases {
			if a.Phases[i].State != pacing.PhaseReleased {
				a.Phases[i].Reason = fmt.Sprintf("waiting for the target collection %s: it is not known at %s yet", dep.Collection, d.cfg.Site)
			}
		}
		return a, nil
	}
	assigned := pacing.AssignPhases(dep.ID, target.Members, dep.plans, st.memberLists())
	var recs []ingest.Record
	name := dep.Name
	if name == "" {
		name = dep.ID
	}
	for i, members := range assigned {
		id := schema.PhaseCollectionID(dep.ID, i+1)
		want := schema.Collection{ID: id, Name: fmt.Sprintf("%s: phase %d (%s)", name, i+1, dep.Phases[i].Name), Members: members}
		if have, ok := st.collections[id]; !ok || have.Name != want.Name || !slices.Equal(have.Members, want.Members) {
			recs = append(recs, d.record(schema.RefCollections, id, want))
		}
	}
	listID := schema.PhaseListID(dep.ID)
	wantList := schema.UpdateList{ID: listID, Name: name + ": the deployment's updates", Updates: dep.Updates}
	if have, ok := st.lists[listID]; !ok || have.Name != wantList.Name || !slices.Equal(have.Updates, wantList.Updates) {
		recs = append(recs, d.record(schema.RefUpdateLists, listID, wantList))
	}
	obs := make([]pacing.PhaseObservation, len(dep.plans))
	for i, p := range dep.plans {
		// Cells counted before a member left the phase may count it a moment longer.
		members := int64(len(assigned[i]))
		obs[i] = pacing.PhaseObservation{Plan: p, Members: members, Compliant: min(a.Phases[i].Compliant, members)}
		if r, ok := st.releases[dep.ID][i+1]; ok {
			obs[i].ReleasedAt, obs[i].Reason = r.ReleasedAt, r.Reason
		}
	}
	decided := pacing.DecidePhases(pacing.PhaseInputs{Now: now, Start: dep.Start, Phases: obs, Watermarks: st.watermarks, BacklogOK: backlogOK})
	for i, p := range decided {
		p.PhaseCollection = a.Phases[i].PhaseCollection
		a.Phases[i] = p
		if p.Release {
			recs = append(recs, d.record(schema.RefPhases, schema.PhaseReleaseID(dep.ID, p.Phase),
				schema.PhaseRelease{Deployment: dep.ID, Phase: p.Phase, Name: p.Name, ReleasedAt: *p.ReleasedAt, Reason: p.Reason}))
		}
	}
	return a, recs
}

// record is one vouched record of ref.<site>.
func (d *phaseDecider) record(kind schema.RefKind, id string, v any) ingest.Record {
	value, err := json.Marshal(v)
	if err != nil {
		panic("BUG: cannot encode generated reference data: " + err.Error())
	}
	r := ingest.Record{Key: []byte(string(kind) + "/" + id), Value: value, Time: d.cfg.Now()}
	if d.cfg.Key != nil {
		r.Headers = []ingest.Header{{Key: schema.HeaderVouch, Value: schema.Vouch(d.cfg.Key, d.cfg.Topic, r.Key, value, 0)}}
	}
	return r
}

// publish keeps the decisions for the status and exports them as statepipe_pacing_phase_state.
func (d *phaseDecider) publish(answers map[string]*phasesAnswer) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.decisions = answers
	seen := map[[2]string]bool{}
	for _, a := range answers {
		for _, p := range a.Phases {
			k := [2]string{a.Deployment, p.Name}
			seen[k] = true
			released := 0.0
			if p.State == pacing.PhaseReleased {
				released = 1
			}
			d.gauge.WithLabelValues(k[0], k[1], pacing.PhaseReleased).Set(released)
			d.gauge.WithLabelValues(k[0], k[1], pacing.PhaseWaiting).Set(1 - released)
		}
	}
	for k := range d.labels {
		if !seen[k] {
			d.gauge.DeleteLabelValues(k[0], k[1], pacing.PhaseReleased)
			d.gauge.DeleteLabelValues(k[0], k[1], pacing.PhaseWaiting)
		}
	}
	d.labels = seen
}

// phasedDeployment is a deployment with phases, as the site's reference tables hold it.
type phasedDeployment struct {
	schema.Deployment
	plans []pacing.PhasePlan
}

// deployments reads the phased deployments (only id, when given; every one otherwise).
func (d *phaseDecider) deployments(ctx context.Context, only string) ([]phasedDeployment, error) {
	where, having := "", "HAVING p != ''" // every phased deployment
	if only != "" {
		where, having = "WHERE id = "+report.Quote(only), ""
	}
	res, err := d.cfg.Store.Query(ctx, fmt.Sprintf(`SELECT id, argMax(name, version) AS n, argMax(updates, version) AS u,
	argMax(collection, version) AS c, toUnixTimestamp64Milli(argMax(start, version)) AS s, argMax(site, version) AS o,
	argMax(phases, version) AS p
FROM %s.ref_deployments %s GROUP BY id %s ORDER BY id`, d.cfg.DB, where, having))
	if err != nil {
		return nil, fmt.Errorf("cannot read the deployments: %w", err)
	}
	var out []phasedDeployment
	for i := range res.Rows {
		var dep phasedDeployment
		var start int64
		var phases string
		if err := res.Scan(i, &dep.ID, &dep.Name, &dep.Updates, &dep.Collection, &start, &dep.Site, &phases); err != nil {
			return nil, fmt.Errorf("cannot read the deployments: %w", err)
		}
		dep.Start = time.UnixMilli(start).UTC()
		if phases != "" {
			if err := json.Unmarshal([]byte(phases), &dep.Phases); err != nil {
				return nil, fmt.Errorf("cannot read the phases of deployment %s: %w", dep.ID, err)
			}
		}
		if len(dep.Phases) == 0 && only == "" {
			continue
		}
		for _, p := range dep.Phases {
			dep.plans = append(dep.plans, pacing.PhasePlan{Name: p.Name, Share: p.ShareOf(), Collection: p.Collection,
				SuccessPct: p.Success(), Soak: p.SoakDuration()})
		}
		out = append(out, dep)
	}
	return out, nil
}

// phaseState is what the site's store says of a set of phased deployments.
type phaseState struct {
	collections map[string]schema.Collection // targets, named phase collections, generated ones
	lists       map[string]schema.UpdateList // generated
	releases    map[string]map[int]schema.PhaseRelease
	compliant   map[string]int64 // generated collection id → its members compliant with the deployment's list
	watermarks  []pacing.SiteWatermark
}

func (s *phaseState) memberLists() map[string][]string {
	m := make(map[string][]string, len(s.collections))
	for id, c := range s.collections {
		m[id] = c.Members
	}
	return m
}

// read reads the collections, lists, releases, compliance and watermarks deps need.
func (d *phaseDecider) read(ctx context.Context, deps []phasedDeployment) (*phaseState, error) {
	st := &phaseState{collections: map[string]schema.Collection{}, lists: map[string]schema.UpdateList{},
		releases: map[string]map[int]schema.PhaseRelease{}, compliant: map[string]int64{}}
	st.watermarks = []pacing.SiteWatermark{{Site: d.cfg.Site}}
	if d.cfg.OwnWatermark != nil {
		st.watermarks[0].Watermark = d.cfg.OwnWatermark()
	}
	if len(d.cfg.Below) > 0 {
		res, err := d.cfg.Store.Query(ctx, fmt.Sprintf("SELECT origin, toUnixTimestamp64Milli(watermark) FROM %s.v_hier_origins", d.cfg.DB))
		if err != nil {
			return nil, fmt.Errorf("cannot read the watermarks of the sites below: %w", err)
		}
		got := map[string]time.Time{}
		for i := range res.Rows {
			var o string
			var wm int64
			if err := res.Scan(i, &o, &wm); err != nil {
				return nil, fmt.Errorf("cannot read the watermarks of the sites below: %w", err)
			}
			if wm > 0 {
				got[o] = time.UnixMilli(wm).UTC()
			}
		}
		below := slices.Sorted(slices.Values(d.cfg.Below))
		for _, s := range below {
			st.watermarks = append(st.watermarks, pacing.SiteWatermark{Site: s, Watermark: got[s]})
		}
	}
	if len(deps) == 0 {
		return st, nil
	}
	var colls, lists, depIDs, scopes []string
	for _, dep := range deps {
		depIDs = append(depIDs, dep.ID)
		colls = append(colls, dep.Collection)
		lists = append(lists, schema.PhaseListID(dep.ID))
		for i, p := range dep.Phases {
			if p.Collection != "" {
				colls = append(colls, p.Collection)
			}
			colls = append(colls, schema.PhaseCollectionID(dep.ID, i+1))
			scopes = append(scopes, schema.PhaseCollectionID(dep.ID, i+1))
		}
	}
	q := func(query, what string, each func(i int, res *schema.Result) error) error {
		res, err := d.cfg.Store.Query(ctx, query)
		if err != nil {
			return fmt.Errorf("cannot read %s: %w", what, err)
		}
		for i := range res.Rows {
			if err := each(i, res); err != nil {
				return fmt.Errorf("cannot read %s: %w", what, err)
			}
		}
		return nil
	}
	if err := q(fmt.Sprintf("SELECT id, argMax(name, version), argMax(members, version) FROM %s.ref_collections WHERE id IN %s GROUP BY id",
		d.cfg.DB, in(colls)), "the collections", func(i int, res *schema.Result) error {
		var c schema.Collection
		err := res.Scan(i, &c.ID, &c.Name, &c.Members)
		st.collections[c.ID] = c
		return err
	}); err != nil {
		return nil, err
	}
	if err := q(fmt.Sprintf("SELECT id, argMax(name, version), argMax(updates, version) FROM %s.ref_update_lists WHERE id IN %s GROUP BY id",
		d.cfg.DB, in(lists)), "the generated update lists", func(i int, res *schema.Result) error {
		var l schema.UpdateList
		err := res.Scan(i, &l.ID, &l.Name, &l.Updates)
		st.lists[l.ID] = l
		return err
	}); err != nil {
		return nil, err
	}
	if err := q(fmt.Sprintf(`SELECT deployment, phase, argMax(name, version), toUnixTimestamp64Milli(argMax(released_at, version)), argMax(reason, version)
FROM %s.ref_phase_releases WHERE deployment IN %s GROUP BY deployment, phase`, d.cfg.DB, in(depIDs)), "the releases", func(i int, res *schema.Result) error {
		var r schema.PhaseRelease
		var at int64
		var n uint16
		if err := res.Scan(i, &r.Deployment, &n, &r.Name, &at, &r.Reason); err != nil {
			return err
		}
		r.Phase, r.ReleasedAt = int(n), time.UnixMilli(at).UTC()
		if st.releases[r.Deployment] == nil {
			st.releases[r.Deployment] = map[int]schema.PhaseRelease{}
		}
		st.releases[r.Deployment][r.Phase] = r
		return nil
	}); err != nil {
		return nil, err
	}
	origins := []string{d.cfg.Site}
	for _, w := range st.watermarks[1:] {
		origins = append(origins, w.Site)
	}
	// The tree's cells (the site's own and those of the sites below): each generated
	// collection's clients compliant with its deployment's list.
	if err := q(fmt.Sprintf(`SELECT scope, list, sum(clients) FROM %s.v_tree_agg_lists
WHERE status = 1 AND scope IN %s AND list IN %s AND origin_site IN %s GROUP BY scope, list`, d.cfg.DB, in(scopes), in(lists), in(origins)),
		"the phases' compliance", func(i int, res *schema.Result) error {
			var scope, list string
			var n int64
			if err := res.Scan(i, &scope, &list, &n); err != nil {
				return err
			}
			if dep, _, ok := schema.ParsePhaseCollectionID(scope); ok && list == schema.PhaseListID(dep) {
				st.compliant[scope] += n
			}
			return nil
		}); err != nil {
		return nil, err
	}
	return st, nil
}

// in is a SQL list of quoted strings, never empty.
func in(ids []string) string {
	if len(ids) == 0 {
		return "('')"
	}
	q := make([]string, len(ids))
	for i, id := range ids {
		q[i] = report.Quote(id)
	}
	return "(" + strings.Join(q, ", ") + ")"
}

// phasesAnswer is the answer of GET /v1/deployments/{id}/phases.
type phasesAnswer struct {
	Site       string    `json:"site"`
	AsOf       time.Time `json:"as_of"`
	Deployment string    `json:"deployment_id"`
	Name       string    `json:"deployment_name"`
	Collection string    `json:"collection"`
	List       string    `json:"list"` // the generated list of the deployment's updates
	Start      time.Time `json:"start"`
	// DecidedBy is the site that decides the phases (where the deployment was created);
	// DecidedHere says the answering site is it, and the waiting reasons are its decisions.
	DecidedBy   string                 `json:"decided_by"`
	DecidedHere bool                   `json:"decided_here"`
	BacklogOK   *bool                  `json:"backlog_ok,omitempty"`
	Phases      []pacing.PhaseStatus   `json:"phases"`
	Sites       []pacing.SiteWatermark `json:"sites"` // the watermarks the freshness check reads
	Message     string                 `json:"message,omitempty"`
}

// answer builds the status of one deployment from what the store holds: the plan, the
// generated collections' members, the compliance and the releases. The decider adds its
// decisions; elsewhere a phase not released waits for the deciding site.
func (d *phaseDecider) answer(dep phasedDeployment, st *phaseState, now time.Time) *phasesAnswer {
	a := &phasesAnswer{Site: d.cfg.Site, AsOf: now.UTC(), Deployment: dep.ID, Name: dep.Name, Collection: dep.Collection,
		List: schema.PhaseListID(dep.ID), Start: dep.Start, DecidedBy: dep.Site, Phases: []pacing.PhaseStatus{}, Sites: st.watermarks}
	if a.DecidedBy == "" {
		a.DecidedBy = "(the site above that holds it)"
		if d.cfg.Root {
			a.DecidedBy = d.cfg.Site
		}
	}
	for i, p := range dep.plans {
		id := schema.PhaseCollectionID(dep.ID, i+1)
		ps := pacing.PhaseStatus{Phase: i + 1, Name: p.Name, Collection: p.Collection, PhaseCollection: id, Criterion: p.SuccessPct,
			Soak: p.Soak.String(), State: pacing.PhaseWaiting, Compliant: st.compliant[id]}
		if p.Share > 0 {
			s := p.Share
			ps.Share = &s
		}
		if c, ok := st.collections[id]; ok {
			ps.Members = int64(len(c.Members))
		}
		ps.SuccessPct = pacing.SharePct(ps.Compliant, ps.Members)
		if r, ok := st.releases[dep.ID][i+1]; ok {
			at := r.ReleasedAt
			ps.State, ps.ReleasedAt, ps.Reason = pacing.PhaseReleased, &at, r.Reason
		} else {
			ps.Reason = "not released: decided at site " + a.DecidedBy
		}
		a.Phases = append(a.Phases, ps)
	}
	return a
}

// ServeHTTP answers GET /v1/deployments/{id}/phases: at the deciding site its decisions (as of
// its last step), elsewhere what the site's reference data holds.
func (d *phaseDecider) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if id == "" || len(id) > schema.DefaultLimits.MaxIDBytes || !schema.PrintableID(id) {
		writeAPIError(w, http.StatusBadRequest, schema.CodeMalformed, "the deployment id must be 1 to 128 bytes without control characters", "deployment")
		return
	}
	sites, ok := querySites(w, r)
	if !ok {
		return
	}
	if len(sites) > 1 || (len(sites) == 1 && sites[0] != "" && sites[0] != d.cfg.Site) {
		writeAPIError(w, http.StatusNotFound, schema.CodeNotFound, fmt.Sprintf("site %s is not served here (this is site %s)", strings.Join(sites, ", "), d.cfg.Site), "site")
		return
	}
	d.mu.Lock()
	decided := d.decisions[id]
	cached, fresh := d.answered[id]
	d.mu.Unlock()
	if decided != nil {
		writePhases(w, http.StatusOK, decided)
		return
	}
	if fresh && time.Since(cached.at) < phaseInterval {
		// Read from the store at most once an interval per deployment: the answer changes
		// no faster, and a reader polling it must not cost the store a query each time.
		writePhases(w, http.StatusOK, cached.answer)
		return
	}
	deps, err := d.deployments(r.Context(), id)
	var st *phaseState
	if err == nil && len(deps) == 1 {
		st, err = d.read(r.Context(), deps)
	}
	if err != nil {
		w.Header().Set("Retry-After", "2")
		writeAPIError(w, http.StatusServiceUnavailable, schema.CodeUnavailable, err.Error(), "")
		return
	}
	if len(deps) == 0 {
		writeAPIError(w, http.StatusNotFound, schema.CodeNotFound, fmt.Sprintf("no deployment %s at site %s", id, d.cfg.Site), "deployment")
		return
	}
	a := d.answer(deps[0], st, d.cfg.Now())
	switch {
	case len(deps[0].Phases) == 0:
		a.Message = "the deployment has no phases: it is released to its whole collection at its start"
	case d.decides(&deps[0].Deployment):
		a.DecidedHere = true
		a.Message = "the site has not decided this deployment yet (it does every few seconds)"
	}
	d.mu.Lock()
	if d.answered == nil || len(d.answered) > 1000 {
		d.answered = map[string]cachedPhases{}
	}
	d.answered[id] = cachedPhases{at: time.Now(), answer: a}
	d.mu.Unlock()
	writePhases(w, http.StatusOK, a)
}

// cachedPhases is an answer read from the store, kept for an interval.
type cachedPhases struct {
	at     time.Time
	answer *phasesAnswer
}

func writePhases(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// newSitePhases wires a site's part in phased deployments and returns its decider (nil where
// the site has no store): the book ingest answers from (set on the pacer, which answers
// ingest's Released, and fed by a follower of ref.<site>), and the decider, which decides
// where the site key can vouch for what it writes. cfg is newSite's, after the trust was set
// up (cfg.Ingest.Auth); backlogOK the pacing controller's (nil: always), ownWatermark the
// site's own watermark.
func (s *site) newSitePhases(cfg siteConfig, backlogOK func() bool, ownWatermark func() time.Time, reg prometheus.Registerer, log *slog.Logger) *phaseDecider {
	refTopic := kafka.RefTopic(cfg.Code)
	// The site key vouches for what the decider writes (ingest's, or the file the site's key
	// is in when it holds the private key); its public keys check what the book applies.
	var key ed25519.PrivateKey
	var keys []ed25519.PublicKey
	if cfg.Auth.Mode != ingest.AuthOff {
		if a := cfg.Ingest.Auth; a != nil && a.Key() != nil {
			key = a.Key()
		} else if cfg.Auth.SiteKeyFile != "" {
			key, _ = privateSiteKey(cfg.Auth.SiteKeyFile)
		}
		var pub ed25519.PublicKey
		if key != nil {
			pub = key.Public().(ed25519.PublicKey)
		} else if cfg.Auth.SiteKeyFile != "" {
			pub, _ = ingest.LoadSitePublicKey(cfg.Auth.SiteKeyFile)
		}
		if pub != nil {
			var err error
			if keys, err = cfg.Auth.PublicKeys(pub); err != nil {
				keys = []ed25519.PublicKey{pub}
			}
		}
	}
	if s.ingest != nil {
		if keys == nil && cfg.Auth.Mode != ingest.AuthOff {
			log.Warn("the phase book checks no vouch: the site's public key is not known here")
		}
		book := ingest.NewPhaseBook(refTopic, keys...)
		if s.pacer != nil {
			s.pacer.phases = book.Released
		}
		s.addActor(actorFunc{"phase book", func(ctx context.Context) error {
			apply := func(r kafka.Record) { book.Apply(ingestRecord(r)) }
			following{Kafka: cfg.Kafka, Topic: refTopic, Apply: apply, Every: time.Second,
				What: "the phase releases", Level: slog.LevelError, Retry: time.Second}.follow(ctx, log)
			return nil
		}})
	}
	if s.store == nil || !(cfg.RunProjector || cfg.RunReports) {
		return nil
	}
	group := cfg.ProjectorGroup
	if group == "" {
		group = "statepipe-projector-" + cfg.Code
	}
	if backlogOK == nil && cfg.Pacing.Mode != pacing.ModeOff {
		// No pacing controller in this process (the projector role alone): the site's
		// backlog is what its ingest nodes publish in pacing.<site>.
		own := newAboveStatus(cfg.Kafka, cfg.Code, keys)
		stale := cfg.Pacing.MaxStaleness
		if stale <= 0 {
			stale = pacing.DefaultConfig().MaxStaleness
		}
		backlogOK = func() bool { return own.backlogOK(time.Now(), stale) }
		topic := PacingTopic(cfg.Code)
		s.addActor(actorFunc{"pacing statuses", func(ctx context.Context) error {
			following{Kafka: cfg.Kafka, Topic: topic, Apply: own.apply, Every: 500 * time.Millisecond,
				What: "the site's pacing statuses (phases wait meanwhile)", Level: slog.LevelWarn, Retry: 2 * time.Second}.follow(ctx, log)
			return nil
		}})
	}
	dc := phaseDeciderConfig{Site: cfg.Code, DB: s.db, Store: s.store, Topic: refTopic, Key: key,
		RefFolded: kafka.GroupCaughtUp(cfg.Kafka, group, refTopic), OwnWatermark: ownWatermark, BacklogOK: backlogOK,
		Log: log.With("role", phaseDeciderName)}
	if t := cfg.Hierarchy.Topology; t != nil {
		dc.Below = t.Descendants(cfg.Code)
		dc.Root = t.Parent(cfg.Code) == ""
	} else {
		dc.Root = true
	}
	if key != nil || cfg.Auth.Mode == ingest.AuthOff {
		dc.Produce = ingestProducer{s.producer(refTopic)}.Produce
	} else {
		log.Info("not deciding phased deployments here: no site key to vouch for the releases (give the projector the site's private key, or run ingest beside it)")
	}
	d := newPhaseDecider(dc, reg)
	s.addActor(d)
	return d
}

// privateSiteKey reads a site key file holding the private key (nil, error for a public one).
func privateSiteKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, errors.New("not a private key")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, errors.New("not an Ed25519 key")
	}
	return key, nil
}

// cmdDeploymentPhases is `statepipe deployments phases --deployment D [--site S] [--json]`.
func cmdDeploymentPhases(ctx context.Context, args []string) error {
	fs := newFlags("deployments phases", "--deployment ID [--url URL] [--site CODE] [--json]")
	base := fs.String("url", "http://127.0.0.1:8080", "base URL of a running statepipe")
	dep := fs.String("deployment", "", "deployment id (required)")
	site := fs.String("site", "", "the site to ask, where one process serves several (statepipe run --topology; default: its root): the deciding site shows why a phase waits")
	asJSON := fs.Bool("json", false, "print the JSON answer instead of the table")
	tokens := addTokenFlags(fs.FlagSet, true)
	if _, err := fs.parse(args); err != nil {
		return err
	}
	if *dep == "" {
		return fs.fail("--deployment is required")
	}
	u := strings.TrimRight(*base, "/") + "/v1/deployments/" + url.PathEscape(*dep) + "/phases"
	if *site != "" {
		u += "?site=" + url.QueryEscape(*site)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fs.fail(fmt.Sprintf("--url %q: %v", *base, err))
	}
	tokens.set(req)
	var raw json.RawMessage
	if err := doJSON(req, &raw); err != nil {
		return fmt.Errorf("cannot get the phases of deployment %s: %w", *dep, err)
	}
	if *asJSON {
		_, err := os.Stdout.Write(raw)
		return err
	}
	var a phasesAnswer
	if err := json.Unmarshal(raw, &a); err != nil {
		return err
	}
	printPhases(os.Stdout, &a)
	return nil
}

// printPhases writes the phases of a deployment as a table.
func printPhases(w io.Writer, a *phasesAnswer) {
	name := a.Deployment
	if a.Name != "" {
		name += " (" + a.Name + ")"
	}
	fmt.Fprintf(w, "deployment %s at site %s, as of %s\n", name, a.Site, a.AsOf.Format(time.RFC3339))
	decided := "decided at " + a.DecidedBy
	if a.DecidedHere {
		decided = "decided here"
		if a.BacklogOK != nil && !*a.BacklogOK {
			decided += " (backlog over target)"
		}
	}
	fmt.Fprintf(w, "collection %s, updates in list %s, start %s; %s\n", a.Collection, a.List, a.Start.Format(time.RFC3339), decided)
	if a.Message != "" {
		fmt.Fprintln(w, a.Message)
	}
	if len(a.Phases) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PHASE\tNAME\tCLAIMS\tMEMBERS\tCOMPLIANT\tSUCCESS\tCRITERION\tSOAK\tSTATE\tWHY")
	for _, p := range a.Phases {
		claims := "the rest"
		switch {
		case p.Share != nil:
			claims = fmt.Sprintf("share %g", *p.Share)
		case p.Collection != "":
			claims = "collection " + p.Collection
		}
		success := "—"
		if p.Members > 0 {
			success = fmt.Sprintf("%g %%", p.SuccessPct)
		}
		state := p.State
		if p.ReleasedAt != nil {
			state = "released at " + p.ReleasedAt.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%d\t%s\t%g %%\t%s\t%s\t%s\n", p.Phase, p.Name, claims, p.Members, p.Compliant, success, p.Criterion, p.Soak, state, p.Reason)
	}
	_ = tw.Flush()
	if len(a.Sites) > 0 {
		var wms []string
		for _, s := range a.Sites {
			wm := "none yet"
			if !s.Watermark.IsZero() {
				wm = s.Watermark.Format(time.RFC3339)
			}
			wms = append(wms, s.Site+" "+wm)
		}
		fmt.Fprintf(w, "\nwatermarks: %s\n", strings.Join(wms, ", "))
	}
}
