package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/statepipe/statepipe/client"
	"github.com/statepipe/statepipe/ingest"
	"github.com/statepipe/statepipe/internal/chdb"
	"github.com/statepipe/statepipe/internal/kafka"
	"github.com/statepipe/statepipe/projector"
	"github.com/statepipe/statepipe/replicator"
	"github.com/statepipe/statepipe/report"
	"github.com/statepipe/statepipe/schema"
)

// A site hierarchy in one process (statepipe run --topology): a central site C, a middle site A
// with a site S below it, and a site B — every level the DESIGN's model has. Clients report to
// A, S and B; each test checks the reports at every level against an oracle computed from what
// the clients were acknowledged for.

// testTree is a running hierarchy.
type testTree struct {
	t     *testing.T
	url   string
	data  string
	topo  string            // topology file
	code  map[string]string // role (C, A, S, B) → site code
	node  *node
	stop  func()
	fleet *treeFleet
}

type treeOpts struct {
	data string // reuse (restart)
	code map[string]string
	wrap func(site string, p replicator.Producer) replicator.Producer
	tune func(*runConfig)
}

var treeSeq atomic.Int64

// treeLinks are the tests' link thresholds: short, so a cut shows soon, and long enough that a
// loaded machine's late heartbeat is not a failed link.
var treeLinks = replicator.LinkThresholds{Degraded: 2 * time.Second, Failed: 5 * time.Second}

// startTree starts the four sites; a restart passes the previous tree's data and codes.
func startTree(t *testing.T, o treeOpts) *testTree {
	t.Helper()
	requireChdb(t)
	tr := &testTree{t: t, code: o.code, data: o.data}
	if tr.code == nil {
		base := fmt.Sprintf("H%d%04d", treeSeq.Add(1), rand.IntN(10000))
		tr.code = map[string]string{"C": base + "C", "A": base + "A", "S": base + "S", "B": base + "B"}
	}
	if tr.data == "" {
		tr.data = t.TempDir()
	}
	tr.topo = filepath.Join(tr.data, "topology.yaml")
	yaml := fmt.Sprintf("sites:\n  - code: %[1]s\n  - code: %[2]s\n    parent: %[1]s\n  - code: %[3]s\n    parent: %[2]s\n  - code: %[4]s\n    parent: %[1]s\n",
		tr.code["C"], tr.code["A"], tr.code["S"], tr.code["B"])
	if err := os.WriteFile(tr.topo, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := runConfig{Data: tr.data, Listen: "127.0.0.1:0", KafkaListen: "127.0.0.1:0", Site: "P01",
		Kafka: kafka.DefaultConfig(), Ingest: ingestDefaults(), Auth: authDefaults(ingest.AuthOptional), Projector: projectorDefaults()}
	cfg.Kafka.Brokers = realKafka()
	cfg.Kafka.Partitions = 2
	cfg.Auth.MaxMessageAge = 100 * 365 * 24 * time.Hour
	cfg.Projector.BatchWait = 50 * time.Millisecond
	cfg.Store.ChdbPath = chdbDir
	cfg.Hierarchy = hierarchyConfig{TopologyFile: tr.topo, Interval: 200 * time.Millisecond, SweepEvery: 2 * time.Second,
		Links: treeLinks, wrapParent: o.wrap}
	if o.tune != nil {
		o.tune(&cfg)
	}
	tr.node, tr.stop = runTestNode(t, cfg, nil, quietLogger())
	tr.url = tr.node.url()
	return tr
}

// get reads a report of site (site= on the one listener) into v and returns the status.
func (tr *testTree) get(path, site string, v any) int {
	tr.t.Helper()
	u, _ := url.Parse(tr.url + path)
	q := u.Query()
	if site != "" {
		q.Set("site", site)
	}
	u.RawQuery = q.Encode()
	resp, err := http.Get(u.String())
	if err != nil {
		tr.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == 200 && v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			tr.t.Fatal(err)
		}
	}
	return resp.StatusCode
}

// importRef posts reference data at site and returns the status and body.
func (tr *testTree) importRef(site, kind string, lines ...string) (int, string) {
	tr.t.Helper()
	resp, err := http.Post(tr.url+"/v1/ref/"+kind+"?wait=false&site="+site, "application/x-ndjson", strings.NewReader(strings.Join(lines, "\n")))
	if err != nil {
		tr.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// treeFleet is the clients of the sites below, and the truth: each client's latest full
// report of the updates U1…U4 that the site acknowledged.
type treeFleet struct {
	t       *testing.T
	url     string
	rng     *rand.Rand
	mu      sync.Mutex
	clients map[string]*client.Client
	site    map[string]string           // client → its site's code
	truth   map[string]map[string]int32 // client → update → state (1–3); absent: none
}

const treeUpdates = 4

func newTreeFleet(t *testing.T, tr *testTree, perSite int, seed uint64) *treeFleet {
	f := &treeFleet{t: t, url: tr.url, rng: rand.New(rand.NewPCG(seed, seed+1)), clients: map[string]*client.Client{},
		site: map[string]string{}, truth: map[string]map[string]int32{}}
	for _, role := range []string{"A", "S", "B"} {
		for i := 0; i < perSite; i++ {
			id := fmt.Sprintf("%s-pc-%02d", strings.ToLower(role), i)
			c, err := client.New(client.Config{URL: tr.url, Site: tr.code[role], ClientID: id})
			if err != nil {
				t.Fatal(err)
			}
			f.clients[id], f.site[id] = c, tr.code[role]
		}
	}
	tr.fleet = f
	return f
}

// round makes every client send a full report with random states (an update sometimes left
// out: the full report removes it), and returns when every report was acknowledged.
func (f *treeFleet) round() {
	f.t.Helper()
	ids := slices.Sorted(func(yield func(string) bool) {
		for id := range f.clients {
			if !yield(id) {
				return
			}
		}
	})
	for _, id := range ids {
		states := map[string]int32{}
		var msgs []schema.StateMessage
		for u := 1; u <= treeUpdates; u++ {
			if f.rng.IntN(5) == 0 {
				continue
			}
			s := int32(1 + f.rng.IntN(3))
			states[fmt.Sprintf("U%d", u)] = s
			msgs = append(msgs, schema.StateMessage{TopicType: schema.TopicUpdateCompliance, TopicID: fmt.Sprintf("U%d", u), State: s})
		}
		if len(msgs) == 0 {
			states["U1"] = 2
			msgs = append(msgs, schema.StateMessage{TopicType: schema.TopicUpdateCompliance, TopicID: "U1", State: 2})
		}
		if err := f.clients[id].Report(context.Background(), true, msgs...); err != nil {
			f.t.Fatal(err)
		}
		f.mu.Lock()
		f.truth[id] = states
		f.mu.Unlock()
	}
}

// expect is the oracle's compliance per update over the clients of sites.
func (f *treeFleet) expect(sites ...string) map[string][5]int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string][5]int64{}
	var total int64
	for id, st := range f.truth {
		if !slices.Contains(sites, f.site[id]) {
			continue
		}
		total++
		for u, s := range st {
			c := out[u]
			c[s-1]++ // [0] not required, [1] required, [2] installed
			out[u] = c
		}
	}
	for u := 1; u <= treeUpdates; u++ {
		id := fmt.Sprintf("U%d", u)
		c := out[id]
		c[3] = total - c[0] - c[1] - c[2] // unknown
		c[4] = total
		out[id] = c
	}
	return out
}

// differs compares a compliance answer with the oracle over sites: "" when equal.
func (f *treeFleet) differs(c *report.Compliance, sites ...string) string {
	want := f.expect(sites...)
	if len(c.Updates) != treeUpdates {
		return fmt.Sprintf("site %s: %d updates, want %d", c.Site, len(c.Updates), treeUpdates)
	}
	for _, u := range c.Updates {
		got := [5]int64{u.NotRequired, u.Required, u.Installed, u.Unknown, u.Total}
		if got != want[u.UpdateID] {
			return fmt.Sprintf("site %s over %v, %s: (not required, required, installed, unknown, total) = %v, oracle %v",
				c.Site, sites, u.UpdateID, got, want[u.UpdateID])
		}
	}
	return ""
}

// levels are the answers to check: the site asked (site=), and the sites whose clients it
// covers.
func (tr *testTree) levels() [][]string {
	c := tr.code
	return [][]string{{c["C"], c["A"], c["S"], c["B"]}, {c["A"], c["A"], c["S"]}, {c["S"], c["S"]}, {c["B"], c["B"]}}
}

// exactAtEveryLevel checks every level against the oracle: "" when all agree.
func (tr *testTree) exactAtEveryLevel() string {
	for _, l := range tr.levels() {
		var c report.Compliance
		if code := tr.get("/v1/reports/compliance", l[0], &c); code != 200 {
			return fmt.Sprintf("compliance at %s: %d", l[0], code)
		}
		if d := tr.fleet.differs(&c, l[1:]...); d != "" {
			return d
		}
	}
	return ""
}

// waitWatermarks waits until every site's watermark, as the central site holds it, is at least
// at: every report acknowledged before at is then counted there.
func (tr *testTree) waitWatermarks(at time.Time) {
	tr.t.Helper()
	treeEventually(tr.t, func() string {
		var c report.Compliance
		if code := tr.get("/v1/reports/compliance", "", &c); code != 200 {
			return fmt.Sprintf("compliance: %d", code)
		}
		if len(c.Sites) != 4 {
			return fmt.Sprintf("central answer lists %d sites, want 4: %+v", len(c.Sites), c.Sites)
		}
		for _, s := range c.Sites {
			if s.Watermark == nil || s.Watermark.Before(at) {
				return fmt.Sprintf("site %s's watermark %v is before %s", s.Site, s.Watermark, at.Format(time.RFC3339Nano))
			}
		}
		return ""
	})
}

// importCatalog imports U1…U4 at the central site; it flows down to every site.
func (tr *testTree) importCatalog() {
	tr.t.Helper()
	var lines []string
	for u := 1; u <= treeUpdates; u++ {
		lines = append(lines, fmt.Sprintf(`{"id":"U%d","title":"Update %d","first_synced":"2026-01-01T00:00:00Z"}`, u, u))
	}
	if code, body := tr.importRef(tr.code["C"], "catalog", lines...); code != 200 {
		tr.t.Fatalf("catalog at the central site: %d %s", code, body)
	}
	treeEventually(tr.t, func() string {
		for _, role := range []string{"A", "S", "B"} {
			var c report.Compliance
			if code := tr.get("/v1/reports/compliance", tr.code[role], &c); code != 200 || len(c.Updates) != treeUpdates {
				return fmt.Sprintf("site %s does not have the central catalog yet (%d, %d updates)", tr.code[role], code, len(c.Updates))
			}
		}
		return ""
	})
}

// The reports at every level equal the oracle over the clients below it, and once the central
// site holds every site's watermark past the last acknowledgement they are exact at once — no
// waiting for counts to settle. Reference data imported centrally is at every site and
// read-only there.
func TestHierarchyIsExactAtEveryLevel(t *testing.T) {
	t.Parallel()
	tr := startTree(t, treeOpts{})
	tr.importCatalog()
	code, body := tr.importRef(tr.code["S"], "catalog", `{"id":"U1","title":"mine now","first_synced":"2026-01-01T00:00:00Z"}`)
	if code != 409 || !strings.Contains(body, "owned by site "+tr.code["C"]) {
		t.Errorf("an edit of the central catalog at %s: %d %s, want 409 naming %s", tr.code["S"], code, body, tr.code["C"])
	}
	f := newTreeFleet(t, tr, 6, 1)
	for r := 0; r < 3; r++ {
		f.round()
		last := time.Now()
		tr.waitWatermarks(last)
		if d := tr.exactAtEveryLevel(); d != "" {
			t.Fatalf("round %d, every watermark past the last acknowledgement: %s", r, d)
		}
	}
	// A forged message — S's origin, counts of its choosing, vouched with a key that is not
	// S's — produced straight into the central site's incoming topic is not folded.
	forged, err := replicator.Encode(&replicator.Message{V: 1, Origin: tr.code["S"], Epoch: 1 << 31, Seq: 1,
		Cells:     []replicator.Cell{{Kind: replicator.KindStates, TopicType: 500, TopicID: "U1", Code: 3, Clients: 1000}},
		Heartbeat: &replicator.Heartbeat{Parent: tr.code["A"], Sweep: 1, Watermark: time.Now().UnixMilli()}})
	if err != nil {
		t.Fatal(err)
	}
	_, stranger, _ := ed25519.GenerateKey(nil)
	p := kafka.NewProducer(tr.node.sites[0].cfg.Kafka, replicator.Topic(tr.code["C"]))
	key := []byte(tr.code["S"])
	if err := p.Produce(context.Background(), kafka.Record{Key: key, Value: forged},
		kafka.Record{Key: key, Value: forged, Headers: []kafka.Header{{Key: schema.HeaderVouch, Value: schema.Vouch(stranger, replicator.VouchTopic, key, forged, 0)}}}); err != nil {
		t.Fatal(err)
	}
	_ = p.Close()
	treeEventually(t, func() string {
		if n := promValue(t, tr.url, `statepipe_hierarchy_rejected_records_total{site="`+tr.code["C"]+`"}`); n < 2 {
			return fmt.Sprintf("%v forged records rejected, want 2", n)
		}
		return ""
	})
	if d := tr.exactAtEveryLevel(); d != "" {
		t.Fatalf("after forged messages: %s", d)
	}
	// Genuine messages replayed where they do not belong: everything the central site received
	// (A's, S's and B's, each vouched for by its origin) produced again into A's incoming topic.
	// A takes only what comes from below it: its own and its sibling's are refused, and no
	// level counts anything twice.
	var genuine []kafka.Record
	ctx := context.Background()
	if err := kafka.ReadAll(ctx, tr.node.sites[0].cfg.Kafka, replicator.Topic(tr.code["C"]), func(r kafka.Record) error {
		if len(r.Headers) > 0 && string(r.Key) != tr.code["S"] {
			genuine = append(genuine, kafka.Record{Key: r.Key, Value: r.Value, Headers: r.Headers})
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	pa := kafka.NewProducer(tr.node.sites[0].cfg.Kafka, replicator.Topic(tr.code["A"]))
	if err := pa.Produce(ctx, genuine...); err != nil {
		t.Fatal(err)
	}
	_ = pa.Close()
	treeEventually(t, func() string {
		if n := promValue(t, tr.url, `statepipe_hierarchy_rejected_records_total{site="`+tr.code["A"]+`"}`); n < float64(len(genuine)) {
			return fmt.Sprintf("%s refused %v of the %d records of sites not below it", tr.code["A"], n, len(genuine))
		}
		return ""
	})
	if d := tr.exactAtEveryLevel(); d != "" {
		t.Fatalf("after genuine messages replayed into %s: %s", tr.code["A"], d)
	}
	treeEventually(t, func() string { // a loaded machine may hold a heartbeat past the degraded threshold
		var b report.Backlog
		if code := tr.get("/v1/reports/backlog", "", &b); code != 200 || len(b.Sites) != 4 {
			return fmt.Sprintf("backlog: %d %+v", code, b)
		}
		for _, s := range b.Sites[1:] {
			if len(s.Links) != 1 || s.Links[0].State != replicator.LinkActive {
				return fmt.Sprintf("backlog: site %s's link %+v, want active", s.Site, s.Links)
			}
		}
		return ""
	})
	var narrow report.Compliance
	if tr.get("/v1/reports/compliance", tr.code["A"], &narrow); len(narrow.Sites) != 2 {
		t.Errorf("site=%s lists sites %+v, want it and %s", tr.code["A"], narrow.Sites, tr.code["S"])
	}
	if code := tr.get("/v1/reports/compliance?site=NOPE", "", nil); code != 404 {
		t.Errorf("site=NOPE: %d, want 404", code)
	}
	// A query string net/url would cut short is refused by the router, naming the parameter,
	// not routed as if site= were absent.
	for raw, field := range map[string]string{"site=" + tr.code["S"] + ";x=1": "site", "site=" + tr.code["S"] + "&vendor=%zz": "vendor"} {
		resp, err := http.Get(tr.url + "/v1/reports/compliance?" + raw)
		if err != nil {
			t.Fatal(err)
		}
		var eb schema.ErrorBody
		_ = json.NewDecoder(resp.Body).Decode(&eb)
		resp.Body.Close()
		if resp.StatusCode != 400 || eb.Error.Field != field {
			t.Errorf("?%s: %d %+v, want 400 naming %s", raw, resp.StatusCode, eb.Error, field)
		}
	}
}

// chaos is a link that delivers what it is given twice, the second time in reverse order, and
// now and then sends an old batch again.
type chaos struct {
	p   replicator.Producer
	mu  sync.Mutex
	rng *rand.Rand
	old [][]replicator.Record
}

func (c *chaos) Produce(ctx context.Context, recs ...replicator.Record) error {
	c.mu.Lock()
	stale := []replicator.Record(nil)
	if len(c.old) > 0 && c.rng.IntN(3) == 0 {
		stale = c.old[c.rng.IntN(len(c.old))]
	}
	c.old = append(c.old, recs)
	c.mu.Unlock()
	if err := c.p.Produce(ctx, recs...); err != nil {
		return err
	}
	rev := slices.Clone(recs)
	slices.Reverse(rev)
	if err := c.p.Produce(ctx, rev...); err != nil {
		return err
	}
	if stale != nil {
		return c.p.Produce(ctx, stale...)
	}
	return nil
}

// Every link duplicates, reorders and replays old sends, and a second member folds at the
// central site: the counts converge to the oracle at every level.
func TestHierarchyDuplicatedReorderedForwardingAndTwoFoldMembers(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 4))
	var mu sync.Mutex
	tr := startTree(t, treeOpts{wrap: func(_ string, p replicator.Producer) replicator.Producer {
		mu.Lock()
		defer mu.Unlock()
		return &chaos{p: p, rng: rand.New(rand.NewPCG(rng.Uint64(), 1))}
	}})
	// A second member of the central site's fold group.
	central := tr.node.sites[0]
	group, err := replicator.FoldGroup(context.Background(), central.store, tr.code["C"], central.db)
	if err != nil {
		t.Fatal(err)
	}
	gr := kafka.NewGroupReader(central.cfg.Kafka, group, replicator.Topic(tr.code["C"]))
	defer gr.Close()
	fold := replicator.NewFold(replicator.FoldConfig{Site: tr.code["C"], Database: central.db},
		replicator.FoldParams{Source: replicatorSource{gr}, Store: central.store})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = fold.Run(ctx) }()

	tr.importCatalog()
	f := newTreeFleet(t, tr, 5, 2)
	for r := 0; r < 3; r++ {
		f.round()
	}
	treeEventually(t, tr.exactAtEveryLevel)
}

// switchable is a link that can be cut.
type switchable struct {
	p   replicator.Producer
	cut atomic.Bool
}

func (s *switchable) Produce(ctx context.Context, recs ...replicator.Record) error {
	if s.cut.Load() {
		return errors.New("test: the parent is unreachable")
	}
	return s.p.Produce(ctx, recs...)
}

// The middle site loses its parent for a while: the central site shows the links below as
// failed within the threshold, the middle site shows its backlog growing, and once the link is
// back everything drains to exact counts by itself.
func TestHierarchyParentUnreachableDrainsToExact(t *testing.T) {
	t.Parallel()
	links := map[string]*switchable{}
	var mu sync.Mutex
	tr := startTree(t, treeOpts{wrap: func(site string, p replicator.Producer) replicator.Producer {
		mu.Lock()
		defer mu.Unlock()
		if links[site] == nil {
			links[site] = &switchable{p: p}
		}
		return &switchable{p: links[site]} // the middle site's replicator and forwarder share one cut
	}})
	tr.importCatalog()
	f := newTreeFleet(t, tr, 4, 5)
	f.round()
	tr.waitWatermarks(time.Now())
	mu.Lock()
	links[tr.code["A"]].cut.Store(true)
	mu.Unlock()
	cutAt := time.Now()
	f.round()
	f.round()
	linkState := func(site, role string) (string, int64) {
		var b report.Backlog
		if code := tr.get("/v1/reports/backlog", site, &b); code != 200 {
			t.Fatalf("backlog at %s: %d", site, code)
		}
		for _, s := range b.Sites {
			if s.Site == tr.code[role] && len(s.Links) == 1 {
				return s.Links[0].State, s.Links[0].BacklogRecords
			}
		}
		return "none", 0
	}
	treeEventually(t, func() string {
		a, _ := linkState("", "A")
		s, _ := linkState("", "S")
		if a != replicator.LinkFailed || s != replicator.LinkFailed {
			return fmt.Sprintf("central sees %s's link %s and %s's %s, want failed", tr.code["A"], a, tr.code["S"], s)
		}
		return ""
	})
	t.Logf("the cut link was shown failed %s after the cut (threshold %s)", time.Since(cutAt).Round(time.Millisecond), treeLinks.Failed)
	treeEventually(t, func() string {
		state, backlog := linkState(tr.code["A"], "A")
		if state != replicator.LinkFailed || backlog == 0 {
			return fmt.Sprintf("%s sees its own link %s with %d records waiting, want failed and some", tr.code["A"], state, backlog)
		}
		return ""
	})
	if d := tr.exactAtEveryLevel(); d == "" {
		t.Errorf("the central site is exact while its middle site's link is cut: the test cannot tell")
	}
	mu.Lock()
	links[tr.code["A"]].cut.Store(false)
	mu.Unlock()
	tr.waitWatermarks(time.Now())
	if d := tr.exactAtEveryLevel(); d != "" {
		t.Fatal(d)
	}
	treeEventually(t, func() string {
		if a, _ := linkState("", "A"); a != replicator.LinkActive {
			return fmt.Sprintf("after the cut, central sees %s's link %s", tr.code["A"], a)
		}
		return ""
	})
}

// A site below rebuilt from its raw log (new epochs), the central site rebuilt from its
// incoming topic, and every replicator restarted: exact at every level.
func TestHierarchyRebuildsAndRestartsStayExact(t *testing.T) {
	t.Parallel()
	tr := startTree(t, treeOpts{})
	tr.importCatalog()
	f := newTreeFleet(t, tr, 4, 9)
	f.round()
	f.round()
	tr.waitWatermarks(time.Now())
	if d := tr.exactAtEveryLevel(); d != "" {
		t.Fatal(d)
	}
	tr.stop()
	st, err := chdb.New(chdb.Config{Path: chdbDir})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	if _, err := projector.Rebuild(ctx, st, database(tr.code["B"]), 7*24*time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := projector.Rebuild(ctx, st, database(tr.code["C"]), 7*24*time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := replicator.ResetFold(ctx, st, database(tr.code["C"])); err != nil {
		t.Fatal(err)
	}
	tr2 := startTree(t, treeOpts{data: tr.data, code: tr.code})
	tr2.fleet = f
	restarted := time.Now()
	tr2.waitWatermarks(restarted)
	if d := tr2.exactAtEveryLevel(); d != "" {
		t.Fatalf("after the rebuilds and the restart: %s", d)
	}
	f.url = tr2.url
	for id, c := range f.clients { // the agents keep their serials across the site's restart
		c2, err := client.New(client.Config{URL: tr2.url, Site: f.site[id], ClientID: id, NextSerial: c.LastSerial() + 1})
		if err != nil {
			t.Fatal(err)
		}
		f.clients[id] = c2
	}
	f.round()
	tr2.waitWatermarks(time.Now())
	if d := tr2.exactAtEveryLevel(); d != "" {
		t.Fatalf("a round after the restart: %s", d)
	}
}

// treeEventually is eventually with room for a hierarchy's start: four sites, each with its
// projector's, fold's, forwarder's and reference-data groups joining a loaded broker.
func treeEventually(t *testing.T, f func() string) {
	t.Helper()
	eventuallyWithin(t, 3*time.Minute, f)
}

// freePort returns a loopback port nothing listens on (for a process the test starts).
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// siteProc is one site of a server-mode topology run as its own process (statepipe run
// --topology F --site CODE): its embedded broker, its roles, its replicator.
type siteProc struct {
	t    *testing.T
	bin  string
	args []string
	log  string
	url  string
	cmd  *exec.Cmd
}

func (p *siteProc) start() {
	p.t.Helper()
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		p.t.Fatal(err)
	}
	p.cmd = exec.Command(p.bin, p.args...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); _ = f.Close() }()
	waitHealthy(p.t, p.url)
}

func (p *siteProc) kill() {
	if p.cmd != nil && p.cmd.Process != nil {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		for p.cmd.ProcessState == nil {
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// One site per process, as in server mode: the child's process (its replicator with it) is
// SIGKILLed while its clients report, and started again; the central site, in a process of
// its own, ends exact — as does the child.
// procPair is a central site and a child, each its own process with its own embedded broker
// (a server-mode topology run one site per process), the catalog U1…U4 imported at the
// central site and copied down to the child.
type procPair struct {
	dir, c, p      string
	central, child *siteProc
	tr, childView  *testTree
}

func startProcPair(t *testing.T) *procPair { return startProcPairOrdered(t, false) }

// startProcPairOrdered starts the child first when childFirst: its parent's Kafka is not
// there yet.
func startProcPairOrdered(t *testing.T, childFirst bool) *procPair {
	t.Helper()
	requireChdb(t)
	bin := buildBinary(t)
	dir := t.TempDir()
	base := fmt.Sprintf("K%04d", rand.IntN(10000))
	c, p := base+"C", base+"P"
	hc, hp := freePort(t), freePort(t)
	// Each site's own embedded broker; on real Apache Kafka (KAFKA_BROKERS) both sites' topics
	// on the one cluster.
	kc, kp := fmt.Sprintf("127.0.0.1:%d", freePort(t)), fmt.Sprintf("127.0.0.1:%d", freePort(t))
	var brokers []string
	if real := realKafka(); real != nil {
		kc, kp = real[0], real[0]
		brokers = []string{"--kafka.brokers", real[0]}
	}
	topo := filepath.Join(dir, "topology.yaml")
	yaml := fmt.Sprintf(`sites:
  - {code: %s, kafka: {brokers: ["%s"]}, url: "http://127.0.0.1:%d"}
  - {code: %s, parent: %s, kafka: {brokers: ["%s"]}, url: "http://127.0.0.1:%d"}
`, c, kc, hc, p, c, kp, hp)
	if err := os.WriteFile(topo, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	common := []string{"run", "--topology", topo, "--replicator.interval", "200ms", "--replicator.sweep-every", "2s",
		"--replicator.degraded-after", "2s", "--replicator.failed-after", "5s", "--kafka.partitions", "2", "--projector.batch-wait", "50ms"}
	common = append(common, brokers...)
	pp := &procPair{dir: dir, c: c, p: p}
	if err := os.MkdirAll(filepath.Join(dir, "p"), 0o700); err != nil { // the child's, where its key will be
		t.Fatal(err)
	}
	pp.central = &siteProc{t: t, bin: bin, log: filepath.Join(dir, "central.log"), url: fmt.Sprintf("http://127.0.0.1:%d", hc),
		args: append(slices.Clone(common), "--site", c, "--data", filepath.Join(dir, "c"), "--listen", fmt.Sprintf("127.0.0.1:%d", hc),
			"--replicator.site-keys", filepath.Join(dir, "p"))} // the child's key, made on its first start
	t.Cleanup(func() {
		if t.Failed() {
			for _, f := range []string{filepath.Join(dir, "central.log"), filepath.Join(dir, "child.log")} {
				b, _ := os.ReadFile(f)
				t.Logf("--- %s (last 3 KiB)\n%s", f, b[max(0, len(b)-3072):])
			}
		}
	})
	if !childFirst {
		pp.central.start()
	} else {
		// The parent's key, given to the child before the parent ever ran.
		if err := os.MkdirAll(filepath.Join(dir, "c"), 0o700); err != nil {
			t.Fatal(err)
		}
		if _, err := ingest.LoadOrCreateSiteKey(filepath.Join(dir, "c", "site-"+c+".key")); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(pp.central.kill)
	pp.child = &siteProc{t: t, bin: bin, log: filepath.Join(dir, "child.log"), url: fmt.Sprintf("http://127.0.0.1:%d", hp),
		args: append(slices.Clone(common), "--site", p, "--data", filepath.Join(dir, "p"), "--listen", fmt.Sprintf("127.0.0.1:%d", hp),
			"--replicator.parent-key", filepath.Join(dir, "c", "site-"+c+".key"))}
	pp.child.start()
	t.Cleanup(pp.child.kill)
	if childFirst {
		// Well after the child: its reader of the parent's reference data has failed to dial
		// for seconds, and joins the parent's group only once ref.<parent> is made.
		time.Sleep(8 * time.Second)
		pp.central.start()
	}
	pp.tr = &testTree{t: t, url: pp.central.url, code: map[string]string{"C": c}}
	var lines []string
	for u := 1; u <= treeUpdates; u++ {
		lines = append(lines, fmt.Sprintf(`{"id":"U%d","title":"Update %d","first_synced":"2026-01-01T00:00:00Z"}`, u, u))
	}
	if code, body := pp.tr.importRef(c, "catalog", lines...); code != 200 {
		t.Fatalf("catalog: %d %s", code, body)
	}
	pp.childView = &testTree{t: t, url: pp.child.url}
	treeEventually(t, func() string {
		var rep report.Compliance
		if code := pp.childView.get("/v1/reports/compliance", "", &rep); code != 200 || len(rep.Updates) != treeUpdates {
			return fmt.Sprintf("the child does not have the central catalog yet (%d)", code)
		}
		return ""
	})
	return pp
}

// waitCentral waits until the central site holds the child's watermark at or after at.
func (pp *procPair) waitCentral(t *testing.T, at time.Time) {
	t.Helper()
	treeEventually(t, func() string {
		var rep report.Compliance
		if code := pp.tr.get("/v1/reports/compliance", "", &rep); code != 200 {
			return fmt.Sprintf("central compliance: %d", code)
		}
		for _, s := range rep.Sites {
			if s.Site == pp.p && s.Watermark != nil && !s.Watermark.Before(at) {
				return ""
			}
		}
		return fmt.Sprintf("central sites %+v: the child's watermark is not past %s yet", rep.Sites, at)
	})
}

// One site per process, as in server mode: the child's process (its replicator with it) is
// SIGKILLed while its clients report, and started again; the central site, in a process of
// its own, ends exact — as does the child.
func TestHierarchyChildKilledUnderLoadStaysExact(t *testing.T) {
	pp := startProcPair(t)
	c, p, child, tr, childView := pp.c, pp.p, pp.child, pp.tr, pp.childView
	_ = c
	f := &treeFleet{t: t, url: child.url, rng: rand.New(rand.NewPCG(11, 12)), clients: map[string]*client.Client{},
		site: map[string]string{}, truth: map[string]map[string]int32{}}
	for i := 0; i < 30; i++ {
		id := fmt.Sprintf("pc-%02d", i)
		cl, err := client.New(client.Config{URL: child.url, Site: p, ClientID: id, MaxAttempts: 1})
		if err != nil {
			t.Fatal(err)
		}
		f.clients[id], f.site[id] = cl, p
	}
	// Load: every client reports again and again; a report the site does not acknowledge
	// (the process is dead) is not truth, and the client reports again.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var acked atomic.Int64
	var installed atomic.Bool // the second phase: every update installed everywhere
	for id, cl := range f.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(len(id)), uint64(id[len(id)-1])))
			failed := false // the last report may have been accepted unacknowledged: end on an acknowledged one
			for {
				select {
				case <-stop:
					if !failed {
						return
					}
				default:
				}
				states := map[string]int32{}
				var msgs []schema.StateMessage
				for u := 1; u <= treeUpdates; u++ {
					s := int32(1 + rng.IntN(3))
					if installed.Load() {
						s = 3
					}
					states[fmt.Sprintf("U%d", u)] = s
					msgs = append(msgs, schema.StateMessage{TopicType: schema.TopicUpdateCompliance, TopicID: fmt.Sprintf("U%d", u), State: s})
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				err := cl.Report(ctx, true, msgs...)
				cancel()
				if failed = err != nil; failed {
					time.Sleep(100 * time.Millisecond)
					continue
				}
				acked.Add(1)
				f.mu.Lock()
				f.truth[id] = states
				f.mu.Unlock()
				time.Sleep(time.Duration(rng.IntN(50)) * time.Millisecond)
			}
		}()
	}
	waitAcked := func(n int64) {
		eventually(t, func() string {
			if a := acked.Load(); a < n {
				return fmt.Sprintf("%d reports acknowledged, want %d", a, n)
			}
			return ""
		})
	}
	waitAcked(600)
	// Long enough that the killed replicator's sequence is well past where a new one's would
	// be when the phase below begins: only a greater epoch then makes the new values win.
	time.Sleep(6 * time.Second)
	child.kill()
	before := acked.Load()
	child.start()
	// Soon after the restart every client installs everything: the cells of the other states
	// drop to nothing at the child, and must at the central site too — which only values newer
	// than everything the killed replicator sent can do.
	waitAcked(before + 30)
	installed.Store(true)
	waitAcked(before + 30 + 200)
	close(stop)
	wg.Wait()
	last := time.Now()

	// The central site: its watermark of the child past the last acknowledgement, then exact.
	pp.waitCentral(t, last)
	for _, at := range []*testTree{tr, childView} {
		var rep report.Compliance
		if code := at.get("/v1/reports/compliance", "", &rep); code != 200 {
			t.Fatalf("compliance at %s: %d", at.url, code)
		}
		if d := f.differs(&rep, p); d != "" {
			t.Errorf("after the child was killed under load: %s", d)
		}
	}
}

// The child is restored from an older copy of its data directory (its broker's log, its
// tables, its replicator's epoch file): the central site, which had newer counts from it,
// ends equal to what the restored child counts — not to what it had.
func TestHierarchyChildRestoredFromAnOldCopy(t *testing.T) {
	pp := startProcPair(t)
	f := &treeFleet{t: t, url: pp.child.url, rng: rand.New(rand.NewPCG(21, 22)), clients: map[string]*client.Client{},
		site: map[string]string{}, truth: map[string]map[string]int32{}}
	for i := 0; i < 12; i++ {
		id := fmt.Sprintf("pc-%02d", i)
		cl, err := client.New(client.Config{URL: pp.child.url, Site: pp.p, ClientID: id})
		if err != nil {
			t.Fatal(err)
		}
		f.clients[id], f.site[id] = cl, pp.p
	}
	compliance := func(at *testTree) *report.Compliance {
		var rep report.Compliance
		if code := at.get("/v1/reports/compliance", "", &rep); code != 200 {
			t.Fatalf("compliance at %s: %d", at.url, code)
		}
		return &rep
	}
	f.round()
	pp.waitCentral(t, time.Now())
	if d := f.differs(compliance(pp.tr), pp.p); d != "" {
		t.Fatal(d)
	}
	// The copy, taken with the child stopped, as a backup would be.
	pp.child.kill()
	backup := filepath.Join(pp.dir, "p-backup")
	if out, err := exec.Command("cp", "-a", filepath.Join(pp.dir, "p"), backup).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	old := f.expect(pp.p)
	pp.child.start()
	for id, cl := range f.clients { // after the copy every client reports anew, and some are new
		_ = id
		if err := cl.Report(context.Background(), true, schema.StateMessage{TopicType: schema.TopicUpdateCompliance, TopicID: "U1", State: 3}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 12; i < 20; i++ {
		cl, err := client.New(client.Config{URL: pp.child.url, Site: pp.p, ClientID: fmt.Sprintf("pc-%02d", i)})
		if err != nil {
			t.Fatal(err)
		}
		if err := cl.Report(context.Background(), true, schema.StateMessage{TopicType: schema.TopicUpdateCompliance, TopicID: "U2", State: 2},
			schema.StateMessage{TopicType: 402, TopicID: "U2", State: 11, Error: -2145124341}); err != nil { // cells only the newer state has
			t.Fatal(err)
		}
	}
	pp.waitCentral(t, time.Now())
	if newer := compliance(pp.tr); newer.Updates[0].Total != 20 {
		t.Fatalf("before the restore the central site counts %d clients, want 20", newer.Updates[0].Total)
	}
	errorsAt := func(at *testTree) int {
		var e report.Errors
		if code := at.get("/v1/reports/errors", "", &e); code != 200 {
			t.Fatalf("errors at %s: %d", at.url, code)
		}
		return len(e.Errors)
	}
	if n := errorsAt(pp.tr); n != 1 {
		t.Fatalf("before the restore the central site shows %d errors, want 1", n)
	}
	// Restore the old copy and start the child from it.
	pp.child.kill()
	if err := os.RemoveAll(filepath.Join(pp.dir, "p")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(backup, filepath.Join(pp.dir, "p")); err != nil {
		t.Fatal(err)
	}
	pp.child.start()
	restarted := time.Now()
	pp.waitCentral(t, restarted)
	if central, child := errorsAt(pp.tr), errorsAt(pp.childView); central != child || (realKafka() == nil && central != 0) {
		t.Errorf("after the restore: %d errors at the central site, %d at the child; want none (the copy had none)", central, child)
	}
	central, child := compliance(pp.tr), compliance(pp.childView)
	for i, u := range central.Updates {
		c := child.Updates[i]
		got := [5]int64{u.NotRequired, u.Required, u.Installed, u.Unknown, u.Total}
		// On real Kafka the copy held the store only (the broker is elsewhere): the child may
		// fold again what came after it. Either way the central site counts what the child does.
		if got != [5]int64{c.NotRequired, c.Required, c.Installed, c.Unknown, c.Total} || (realKafka() == nil && got != old[u.UpdateID]) {
			t.Errorf("%s after the restore: central %v, restored child (%v), the copy's truth %v", u.UpdateID, got,
				[5]int64{c.NotRequired, c.Required, c.Installed, c.Unknown, c.Total}, old[u.UpdateID])
		}
	}
}

// A site starts while its parent's Kafka is unreachable (a central outage must not keep a
// primary from its own clients), and once the parent is up its counts go up by themselves.
func TestHierarchyChildStartsWithoutItsParent(t *testing.T) {
	if realKafka() != nil {
		t.Skip("both sites' topics are on the one real cluster: the parent's Kafka cannot be missing")
	}
	pp := startProcPairOrdered(t, true)
	cl, err := client.New(client.Config{URL: pp.child.url, Site: pp.p, ClientID: "pc-00"})
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.Report(context.Background(), true, schema.StateMessage{TopicType: schema.TopicUpdateCompliance, TopicID: "U1", State: 3}); err != nil {
		t.Fatal(err)
	}
	pp.waitCentral(t, time.Now())
	var rep report.Compliance
	if code := pp.tr.get("/v1/reports/compliance", "", &rep); code != 200 || rep.Updates[0].Installed != 1 {
		t.Fatalf("central compliance: %d %+v, want U1 installed at 1", code, rep.Updates)
	}
}
