package main

import (
	"context"
	"crypto/ed25519"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/statepipe/statepipe/internal/kafka"
	"github.com/statepipe/statepipe/replicator"
)

// hierarchyConfig is how a site takes part in a site hierarchy: the topology, and the
// replicator's timing.
type hierarchyConfig struct {
	TopologyFile string
	Topology     *replicator.Topology // loaded from TopologyFile
	Interval     time.Duration
	SweepEvery   time.Duration
	Links        replicator.LinkThresholds
	// EpochDir keeps each replicator's epoch file (embedded: the data directory).
	EpochDir string
	// ParentKeys returns the public keys a parent vouches for its reference data with (nil:
	// the parent runs with auth off).
	ParentKeys func(parent string) ([]ed25519.PublicKey, error)
}

func (c *hierarchyConfig) registerFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.TopologyFile, "topology", "", "site hierarchy file (YAML; examples/topology.yaml): with run, host every site of it in this process")
	fs.DurationVar(&c.Interval, "replicator.interval", time.Second, "how often a site sends what changed (and a heartbeat) to its parent")
	fs.DurationVar(&c.SweepEvery, "replicator.sweep-every", 5*time.Minute, "how often a site sends all its cells to its parent, replacing the whole set held there")
	fs.DurationVar(&c.Links.Degraded, "replicator.degraded-after", replicator.DefaultLinkThresholds.Degraded, "a link to a parent is degraded after this long without a heartbeat")
	fs.DurationVar(&c.Links.Failed, "replicator.failed-after", replicator.DefaultLinkThresholds.Failed, "a link to a parent is failed after this long without a heartbeat")
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
	if fold && children {
		topic := replicator.Topic(code)
		if err := kafka.EnsureTopic(context.Background(), s.cfg.Kafka, topic); err != nil {
			return err
		}
		gr := kafka.NewGroupReader(s.cfg.Kafka, "statepipe-hier-"+code, topic)
		s.clients = append(s.clients, gr)
		s.addActor(replicator.NewFold(replicator.FoldConfig{Site: code, Database: s.db},
			replicator.FoldParams{Source: replicatorSource{gr}, Store: s.store, Registerer: reg, Logger: log}))
	}
	parent := ""
	if h.Topology != nil {
		parent = h.Topology.Parent(code)
	}
	if !up || parent == "" {
		return nil
	}
	ptopic := replicator.Topic(parent)
	if err := kafka.EnsureTopic(context.Background(), parentKafka, ptopic); err != nil {
		return fmt.Errorf("cannot reach the parent %s's Kafka: %w", parent, err)
	}
	toParent := kafka.NewProducer(parentKafka, ptopic)
	s.clients = append(s.clients, toParent)
	group := s.cfg.ProjectorGroup
	if group == "" {
		group = "statepipe-projector-" + code
	}
	epochFile := ""
	if h.EpochDir != "" {
		epochFile = filepath.Join(h.EpochDir, "replicator-"+code+".epoch")
	}
	u, err := replicator.NewUp(replicator.UpConfig{Site: code, Parent: parent, Database: s.db, Interval: h.Interval, SweepEvery: h.SweepEvery,
		EpochFile: epochFile, Links: h.Links},
		replicator.UpParams{Store: s.store, Progress: kafka.NewProgress(s.cfg.Kafka, group, kafka.StateTopic(code), kafka.RefTopic(code)),
			Parent: replicatorProducer{toParent}, Registerer: reg, Logger: log})
	if err != nil {
		return err
	}
	s.up = u
	s.addActor(u)
	// Reference data down: the parent's ref.<parent> (on its Kafka) into this site's ref.<code>,
	// checked with the parent's keys and vouched with this site's.
	var parentKeys []ed25519.PublicKey
	if h.ParentKeys != nil {
		if parentKeys, err = h.ParentKeys(parent); err != nil {
			return err
		}
	}
	var key ed25519.PrivateKey
	if s.refImport != nil {
		key = s.refImport.Key
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
		s.addActor(replicator.NewForward(parent, replicator.ForwardParams{Source: replicatorSource{gr}, Parent: replicatorProducer{toParent}, Registerer: reg, Logger: log}))
	}
	return nil
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

// flagSetExplicitly refuses --name given together with --topology.
func flagSetExplicitly(fs *flag.FlagSet, name string) error {
	var err error
	fs.Visit(func(f *flag.Flag) {
		if f.Name == name {
			err = fmt.Errorf("cannot use --%s with --topology: the topology names the sites (pick one with site= or the CLI's --site)", name)
		}
	})
	return err
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
