package main

import (
	"context"
	"crypto/ed25519"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/statepipe/statepipe/ingest"
	"github.com/statepipe/statepipe/internal/kafka"
	"github.com/statepipe/statepipe/replicator"
	"github.com/statepipe/statepipe/report"
	"github.com/statepipe/statepipe/schema"
)

// hierarchyConfig is how a site takes part in a site hierarchy: the topology, and the
// replicator's timing.
type hierarchyConfig struct {
	TopologyFile string
	Topology     *replicator.Topology // loaded from TopologyFile
	Interval     time.Duration
	SweepEvery   time.Duration
	Links        replicator.LinkThresholds
	// EpochDir keeps each replicator's epoch file (embedded: the data directory), unless
	// EpochFile names it.
	EpochDir  string
	EpochFile string
	// ParentKeys returns the public keys a parent vouches for its reference data with (nil:
	// the parent runs with auth off); ParentKeyFile is --replicator.parent-key.
	ParentKeys    func(parent string) ([]ed25519.PublicKey, error)
	ParentKeyFile string
	// SiteKeysDir holds the keys of the sites below (site-<CODE>.key): what they send is
	// folded only when it verifies (--replicator.site-keys; embedded: the data directory).
	SiteKeysDir string
	// Key is the site's own key, which vouches for the reference data copied down (where the
	// site's ingest does not run in the same process).
	Key ed25519.PrivateKey
	// keysMadeHere: every site's key is made in SiteKeysDir by this process (run --topology):
	// a key not there yet is not worth a warning.
	keysMadeHere bool
	// wrapParent, in tests, stands between a site's replicator and its parent's Kafka: to
	// duplicate, reorder or refuse what it sends (faults the broker cannot be made to cause).
	wrapParent func(site string, p replicator.Producer) replicator.Producer
}

func (c *hierarchyConfig) registerFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.TopologyFile, "topology", "", "site hierarchy file (YAML; examples/topology.yaml): run hosts every site of it (with --site, that site alone); a server role takes its site's place in it")
	fs.DurationVar(&c.Interval, "replicator.interval", time.Second, "how often a site sends what changed (and a heartbeat) to its parent")
	fs.DurationVar(&c.SweepEvery, "replicator.sweep-every", 5*time.Minute, "how often a site sends all its cells to its parent, replacing the whole set held there")
	fs.DurationVar(&c.Links.Degraded, "replicator.degraded-after", replicator.DefaultLinkThresholds.Degraded, "a link to a parent is degraded after this long without a heartbeat")
	fs.DurationVar(&c.Links.Failed, "replicator.failed-after", replicator.DefaultLinkThresholds.Failed, "a link to a parent is failed after this long without a heartbeat")
	fs.StringVar(&c.SiteKeysDir, "replicator.site-keys", "", "directory of the keys of the sites below (site-<CODE>.key, the public half is enough): what they send is folded only when vouched for with them")
	fs.StringVar(&c.ParentKeyFile, "replicator.parent-key", "", "the parent site's key (PEM, its public half is enough): reference data copied down must be vouched with it")
}

// parentKeys sets ParentKeys from --replicator.parent-key; without it, with auth on, copying
// reference data down cannot be checked and is refused.
func (c *hierarchyConfig) parentKeys(site string, auth ingest.AuthConfig) error {
	if auth.Mode == ingest.AuthOff {
		return nil
	}
	if c.ParentKeyFile == "" {
		return fmt.Errorf("cannot copy reference data down to %s: give --replicator.parent-key (the parent site's key, its public half is enough), or --ingest.auth off", site)
	}
	pk, err := ingest.LoadSitePublicKey(c.ParentKeyFile)
	if err != nil {
		return fmt.Errorf("cannot use --replicator.parent-key: %w", err)
	}
	c.ParentKeys = func(string) ([]ed25519.PublicKey, error) { return []ed25519.PublicKey{pk}, nil }
	return nil
}

// load reads and checks the topology file and the timing.
func (c *hierarchyConfig) load() error {
	if c.Interval == 0 && c.SweepEvery == 0 && c.Links == (replicator.LinkThresholds{}) {
		c.Interval, c.SweepEvery, c.Links = time.Second, 5*time.Minute, replicator.DefaultLinkThresholds // built in code, not by flags
	}
	if err := c.Links.Validate("replicator."); err != nil {
		return err
	}
	if c.Interval <= 0 || c.SweepEvery < c.Interval {
		return fmt.Errorf("cannot use --replicator.interval %s and --replicator.sweep-every %s: want 0 < interval <= sweep-every", c.Interval, c.SweepEvery)
	}
	if c.TopologyFile == "" {
		return nil
	}
	t, err := replicator.LoadTopology(c.TopologyFile)
	if err != nil {
		return err
	}
	c.Topology = t
	return nil
}

// hierarchyRoles adds to s the hierarchy's actors for its place in the topology: the fold of
// what its children send (a site with children), the replicator to its parent and the
// forwarder of its descendants' messages (a site with a parent). parentKafka is the parent's
// Kafka (the same broker, embedded).
func (s *site) hierarchyRoles(h hierarchyConfig, parentKafka kafka.Config, fold, up bool, reg prometheus.Registerer, log *slog.Logger) error {
	code := s.cfg.Code
	reg = prometheus.WrapRegistererWith(prometheus.Labels{"site": code}, reg)
	log = log.With("site", code)
	children := h.Topology != nil && len(h.Topology.Children(code)) > 0
	key := h.Key
	if s.refImport != nil {
		key = s.refImport.Key
	}
	// What the sites below send is taken only from them, each vouched for with its own key.
	below := map[string]bool{}
	var keys func(string) ([]ed25519.PublicKey, error)
	if children {
		for _, d := range h.Topology.Descendants(code) {
			below[d] = true
		}
		if s.cfg.Auth.Mode != ingest.AuthOff {
			if h.SiteKeysDir == "" {
				return fmt.Errorf("cannot check what the sites below %s send: give --replicator.site-keys DIR (their keys, site-<CODE>.key), or --ingest.auth off", code)
			}
			if err := checkKeysDir(h.SiteKeysDir, h.Topology.Descendants(code), !h.keysMadeHere, log); err != nil {
				return err
			}
			keys = keysIn(h.SiteKeysDir)
		}
	}
	if fold && children {
		topic := replicator.Topic(code)
		if err := kafka.EnsureTopic(context.Background(), s.cfg.Kafka, topic); err != nil {
			return err
		}
		group, err := replicator.FoldGroup(context.Background(), s.store, code, s.db)
		if err != nil {
			return err
		}
		gr := kafka.NewGroupReader(s.cfg.Kafka, group, topic)
		s.clients = append(s.clients, gr)
		s.addActor(replicator.NewFold(replicator.FoldConfig{Site: code, Database: s.db, Below: below},
			replicator.FoldParams{Source: replicatorSource{gr}, Store: s.store, Keys: keys, Registerer: reg, Logger: log}))
		if s.pacer != nil {
			// What the sites below send waits in hier.<site> too: the central site's fold is the
			// narrowest point of a tree, and its backlog slows every site below.
			s.pacer.fold = replicator.NewWatermark(kafka.NewProgress(s.cfg.Kafka, group, topic), h.Interval)
			s.addActor(s.pacer.fold)
		}
	}
	parent := ""
	if h.Topology != nil {
		parent = h.Topology.Parent(code)
	}
	if !up || parent == "" {
		return nil
	}
	// The parent's Kafka may be unreachable now: the site starts anyway, and its sends fail
	// (the link shows it) until the topic can be made sure of.
	ptopic := replicator.Topic(parent)
	toParent := kafka.NewProducer(parentKafka, ptopic)
	s.clients = append(s.clients, toParent)
	group := s.cfg.ProjectorGroup
	if group == "" {
		group = "statepipe-projector-" + code
	}
	epochFile := h.EpochFile
	if epochFile == "" && h.EpochDir != "" {
		epochFile = filepath.Join(h.EpochDir, "replicator-"+code+".epoch")
	}
	var sendUp replicator.Producer = &ensuringProducer{p: replicatorProducer{toParent}, ensure: func(ctx context.Context) error {
		if err := kafka.EnsureTopic(ctx, parentKafka, ptopic); err != nil {
			return fmt.Errorf("cannot reach the parent %s's Kafka: %w", parent, err)
		}
		return nil
	}}
	if h.wrapParent != nil {
		sendUp = h.wrapParent(code, sendUp)
	}
	var hbPacing func() string
	if s.pacer != nil {
		hbPacing = s.pacer.heartbeatPacing
	}
	u, err := replicator.NewUp(replicator.UpConfig{Site: code, Parent: parent, Database: s.db, Interval: h.Interval, SweepEvery: h.SweepEvery,
		EpochFile: epochFile, Links: h.Links},
		replicator.UpParams{Store: s.store, Cells: replicator.NewCellReader(s.store, s.db), Progress: kafka.NewProgress(s.cfg.Kafka, group, kafka.StateTopic(code), kafka.RefTopic(code)),
			Parent: sendUp, Key: key, Pacing: hbPacing, Registerer: reg, Logger: log})
	if err != nil {
		return err
	}
	s.up = u
	s.addActor(u)
	if s.reports != nil {
		s.reports.Uplink = func() report.Uplink {
			st := u.Status(time.Now())
			return report.Uplink{Parent: st.Parent, Freshness: st.Freshness, BacklogRecords: st.BacklogRecords, State: st.State}
		}
	}
	// Reference data down: the parent's ref.<parent> (on its Kafka) into this site's ref.<code>,
	// checked with the parent's keys and vouched with this site's.
	var parentKeys []ed25519.PublicKey
	if h.ParentKeys != nil {
		if parentKeys, err = h.ParentKeys(parent); err != nil {
			return err
		}
	}
	if s.pacer != nil {
		// The link up and the chain above it pace this site: a stale parent slows its children.
		s.pacer.uplink, s.pacer.parent = u.Status, parent
		s.pacer.above = newAboveStatus(parentKafka, parent, parentKeys)
	}
	dcfg := replicator.DownConfig{Site: code, Parent: parent}
	if err := dcfg.Validate(); err != nil {
		return err
	}
	fromParent := kafka.NewGroupReader(parentKafka, replicator.DownGroup(code), kafka.RefTopic(parent))
	toSelf := kafka.NewProducer(s.cfg.Kafka, kafka.RefTopic(code))
	s.clients = append(s.clients, fromParent, toSelf)
	s.addActor(replicator.NewDown(dcfg, replicator.DownParams{Source: replicatorSource{fromParent}, Child: replicatorProducer{toSelf},
		ParentKeys: parentKeys, Key: key, Registerer: reg, Logger: log}))
	if children {
		gr := kafka.NewGroupReader(s.cfg.Kafka, "statepipe-forward-"+code, replicator.Topic(code))
		s.clients = append(s.clients, gr)
		s.addActor(replicator.NewForward(parent, replicator.ForwardParams{Source: replicatorSource{gr}, Parent: sendUp,
			Site: code, Below: below, Keys: keys, Registerer: reg, Logger: log}))
	}
	return nil
}

// ensuringProducer makes sure of its topic before its first produce (and again after a
// failure to), so that a site starts while its parent's Kafka is down.
type ensuringProducer struct {
	p      replicator.Producer
	ensure func(ctx context.Context) error
	mu     sync.Mutex
	sure   bool
}

func (e *ensuringProducer) Produce(ctx context.Context, recs ...replicator.Record) error {
	e.mu.Lock()
	if !e.sure {
		if err := e.ensure(ctx); err != nil {
			e.mu.Unlock()
			return err
		}
		e.sure = true
	}
	e.mu.Unlock()
	return e.p.Produce(ctx, recs...)
}

// checkKeysDir refuses a --replicator.site-keys that is not a directory, and warns for each site
// below whose key it does not hold yet (what that site sends is refused until it does).
func checkKeysDir(dir string, below []string, warn bool, log *slog.Logger) error {
	fi, err := os.Stat(dir)
	if err != nil || !fi.IsDir() {
		return fmt.Errorf("cannot use --replicator.site-keys %s: not a directory (it holds the keys of the sites below, site-<CODE>.key)", dir)
	}
	for _, site := range below {
		if !warn {
			break
		}
		if _, err := os.Stat(filepath.Join(dir, "site-"+site+".key")); err != nil {
			log.Warn("no key for a site below yet: what it sends is refused until its key is in --replicator.site-keys", "below", site, "file", filepath.Join(dir, "site-"+site+".key"))
		}
	}
	return nil
}

// keysIn returns the keys of the sites whose key files dir holds (site-<CODE>.key), each read
// once it is first asked for.
func keysIn(dir string) func(string) ([]ed25519.PublicKey, error) {
	var mu sync.Mutex
	loaded := map[string][]ed25519.PublicKey{}
	return func(site string) ([]ed25519.PublicKey, error) {
		mu.Lock()
		defer mu.Unlock()
		if ks, ok := loaded[site]; ok {
			return ks, nil
		}
		if !schema.ValidSiteCode(site) {
			return nil, fmt.Errorf("no key for site %q", site)
		}
		k, err := ingest.LoadSitePublicKey(filepath.Join(dir, "site-"+site+".key"))
		if err != nil {
			return nil, err
		}
		loaded[site] = []ed25519.PublicKey{k}
		return loaded[site], nil
	}
}

// replicatorSource is a kafka.GroupReader as the replicator reads it.
type replicatorSource struct{ g *kafka.GroupReader }

func (s replicatorSource) Fetch(ctx context.Context) (replicator.Record, error) {
	r, err := s.g.Fetch(ctx)
	return replicator.Record(r), err
}

func (s replicatorSource) Commit(ctx context.Context, recs ...replicator.Record) error {
	out := make([]kafka.Record, len(recs))
	for i, r := range recs {
		out[i] = kafka.Record(r)
	}
	return s.g.Commit(ctx, out...)
}

// replicatorProducer is a kafka.Producer for the replicator.
type replicatorProducer struct{ p *kafka.Producer }

func (a replicatorProducer) Produce(ctx context.Context, recs ...replicator.Record) error {
	out := make([]kafka.Record, len(recs))
	for i, r := range recs {
		out[i] = kafka.Record(r)
	}
	return a.p.Produce(ctx, out...)
}

// printTopologyWelcome says where the sites of an embedded topology answer and how to try them.
func printTopologyWelcome(w io.Writer, url string, cfg runConfig, t *replicator.Topology) {
	fmt.Fprintf(w, "statepipe is running a site hierarchy: %d sites on one listener, %s\n", len(t.Sites()), url)
	var tree func(code, indent string)
	tree = func(code, indent string) {
		role := "central"
		switch {
		case t.Parent(code) != "" && len(t.Children(code)) > 0:
			role = "forwards to " + t.Parent(code) + " its own cells and those of the sites below it"
		case t.Parent(code) != "":
			role = "sends its cells to " + t.Parent(code)
		default:
			role = "root: its reports cover every site"
		}
		fmt.Fprintf(w, "  %s%-4s database %s, topic %s — %s\n", indent, code, database(code), kafka.StateTopic(code), role)
		for _, c := range t.Children(code) {
			tree(c, indent+"  ")
		}
	}
	tree(t.Root(), "")
	leaf := t.Root()
	if d := t.Descendants(t.Root()); len(d) > 0 {
		leaf = d[0]
	}
	fmt.Fprintf(w, `
A report goes to the site its "site" field names; enrolment to the site in its body; imports,
reports and SQL to the site= parameter (the CLI's --site), %[2]s when none is named.

Try it:
  ./bin/statepipe client enroll --url %[1]s --site %[3]s --id 9f1c2d3e-0000-4000-8000-000000000001 --out pc.identity
  ./bin/statepipe client send --url %[1]s --identity pc.identity examples/report.json
  ./bin/statepipe report compliance --url %[1]s                 # %[2]s and every site below
  ./bin/statepipe report compliance --url %[1]s --site %[3]s    # %[3]s and the sites below it
  ./bin/statepipe report backlog --url %[1]s
`, url, t.Root(), leaf)
}

// replicatorConfig is `statepipe replicator`: one site's link to its parent in server mode.
type replicatorConfig struct {
	runConfig
	Parent      string
	ParentKafka kafka.Config
	EpochFile   string
}

func cmdReplicator(ctx context.Context, args []string) error {
	var cfg replicatorConfig
	fs := flag.NewFlagSet("replicator", flag.ContinueOnError)
	fs.StringVar(&cfg.Listen, "listen", "127.0.0.1:8082", "HTTP address: /metrics, /healthz")
	fs.StringVar(&cfg.Site, "site", "", "site code (required)")
	fs.StringVar(&cfg.Parent, "parent", "", "the parent site's code (default: the topology's)")
	cfg.Kafka.RegisterFlags("kafka.", fs)
	cfg.ParentKafka.RegisterFlags("parent.kafka.", fs)
	fs.StringVar(&cfg.Auth.SiteKeyFile, "ingest.site-key", "", "this site's key (PEM, private): vouches for the reference data copied down; empty with --ingest.auth off")
	fs.StringVar(&cfg.Auth.Mode, "ingest.auth", ingest.AuthRequired, "off: copy reference data down unvouched and unchecked (only where the sites' projectors run with --ingest.auth off)")
	fs.StringVar(&cfg.EpochFile, "replicator.epoch-file", "", "file keeping the last epoch used (default: replicator-<site>.epoch in the working directory)")
	cfg.Hierarchy.registerFlags(fs)
	cfg.Store.registerFlags(fs)
	fs.StringVar(&cfg.Store.ChdbPath, "chdb.path", "data/chdb", "embedded engine's data directory when no --clickhouse.dsn is given")
	cfg.HTTP = defaultHTTPConfig()
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := cfg.Hierarchy.load(); err != nil {
		return err
	}
	if !schema.ValidSiteCode(cfg.Site) {
		return fmt.Errorf("cannot replicate site %q: --site: %s", cfg.Site, schema.SiteCodeRule)
	}
	topo := cfg.Hierarchy.Topology
	if topo == nil {
		if cfg.Parent == "" {
			return fmt.Errorf("cannot replicate site %s: name its parent (--parent CODE and --parent.kafka.brokers) or give --topology FILE", cfg.Site)
		}
		t, err := replicator.NewTopology([]replicator.Site{{Code: cfg.Parent}, {Code: cfg.Site, Parent: cfg.Parent}})
		if err != nil {
			return err
		}
		topo = t
	} else if _, ok := topo.Site(cfg.Site); !ok {
		return fmt.Errorf("cannot replicate site %s: it is not in %s", cfg.Site, cfg.Hierarchy.TopologyFile)
	}
	parent := topo.Parent(cfg.Site)
	if parent == "" {
		return fmt.Errorf("cannot replicate site %s: it is the root of the topology, with no parent to send to", cfg.Site)
	}
	if cfg.Parent != "" && cfg.Parent != parent {
		return fmt.Errorf("cannot replicate site %s: --parent %s, but the topology names %s", cfg.Site, cfg.Parent, parent)
	}
	if len(cfg.ParentKafka.Brokers) == 0 {
		if ps, _ := topo.Site(parent); ps.Kafka != nil {
			cfg.ParentKafka.Brokers = ps.Kafka.Brokers
		}
	}
	if len(cfg.Kafka.Brokers) == 0 {
		if ss, _ := topo.Site(cfg.Site); ss.Kafka != nil {
			cfg.Kafka.Brokers = ss.Kafka.Brokers
		}
	}
	for name, c := range map[string]*kafka.Config{"--kafka.brokers": &cfg.Kafka, "--parent.kafka.brokers": &cfg.ParentKafka} {
		if len(c.Brokers) == 0 {
			return fmt.Errorf("cannot replicate site %s: %s is required (or a server-mode topology naming the brokers)", cfg.Site, name)
		}
		if err := c.Validate(); err != nil {
			return err
		}
	}
	cfg.Hierarchy.Topology = topo
	if cfg.Auth.Mode != ingest.AuthOff {
		if cfg.Auth.SiteKeyFile == "" {
			return fmt.Errorf("cannot copy reference data down to %s: give --ingest.site-key (this site's key), or --ingest.auth off", cfg.Site)
		}
		key, err := ingest.LoadSiteKey(cfg.Auth.SiteKeyFile, false)
		if err != nil {
			return err
		}
		cfg.Hierarchy.Key = key
	}
	if err := cfg.Hierarchy.parentKeys(cfg.Site, cfg.Auth); err != nil {
		return err
	}
	cfg.Hierarchy.EpochFile = cfg.EpochFile
	if cfg.EpochFile == "" {
		cfg.Hierarchy.EpochFile = "replicator-" + cfg.Site + ".epoch"
	}
	log := logger()
	n, st, err := roleNodeWithStore(ctx, &cfg.runConfig, log)
	if err != nil {
		return err
	}
	s, err := newSite(ctx, siteConfig{Code: cfg.Site, Kafka: cfg.Kafka, Auth: cfg.Auth, Hierarchy: cfg.Hierarchy}, st, n.reg, log)
	if err != nil {
		return err
	}
	s.db = database(cfg.Site)
	if err := s.hierarchyRoles(cfg.Hierarchy, cfg.ParentKafka, false, true, n.reg, log); err != nil {
		return err
	}
	n.addSite(s)
	log.Info("replicator running", "site", cfg.Site, "parent", parent, "parent_brokers", cfg.ParentKafka.Brokers, "metrics", n.url()+"/metrics")
	return n.run(ctx)
}

// siteCodes lists a topology's site codes, root first.
func siteCodes(t *replicator.Topology) []string {
	return append([]string{t.Root()}, t.Descendants(t.Root())...)
}
