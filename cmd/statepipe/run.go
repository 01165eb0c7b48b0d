package main

import (
	"context"
	"crypto/ed25519"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	neturl "net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/statepipe/statepipe/chhttp"
	"github.com/statepipe/statepipe/ingest"
	"github.com/statepipe/statepipe/internal/kafka"
	"github.com/statepipe/statepipe/pacing"
	"github.com/statepipe/statepipe/projector"
	"github.com/statepipe/statepipe/replicator"
	"github.com/statepipe/statepipe/schema"
)

// runConfig is `statepipe run`: every role of one site in one process. Without
// --kafka.brokers it starts the embedded broker; without --clickhouse.dsn, the embedded
// engine.
type runConfig struct {
	Data           string
	Listen         string
	KafkaListen    string
	Site           string
	Group          string // projector consumer group override (tests: replay)
	ExpiredCleanup time.Duration
	Kafka          kafka.Config
	Ingest         ingest.Config
	Auth           ingest.AuthConfig
	AdminToken     string
	ReaderToken    string
	TLSCert        string
	TLSKey         string
	HTTP           httpConfig
	Projector      projector.Config
	Store          storeConfig
	Hierarchy      hierarchyConfig
	Pacing         pacing.Config
	// ClickHouseHTTP is ClickHouse's HTTP interface on the embedded site (chhttp.go).
	ClickHouseHTTP chHTTPConfig
	// OneSite, with a topology, runs only site Site of it (its Kafka and its parent's from
	// the topology): one process per site, as in server mode, on the embedded parts.
	OneSite bool
}

// registerFlags registers the flags of `statepipe run`.
func (c *runConfig) registerFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Data, "data", "data", "data directory (embedded Kafka log, embedded ClickHouse tables)")
	fs.StringVar(&c.KafkaListen, "kafka.listen", "127.0.0.1:9092", "embedded broker address (Kafka tools can read it)")
	c.Hierarchy.registerFlags(fs)
	c.ClickHouseHTTP.registerFlags(fs)
	// Embedded mode is for trying statepipe: unsigned reports are accepted, signed ones
	// verified. The server roles require signatures.
	c.registerSiteFlags(fs, ingest.AuthOptional)
}

// registerSiteFlags registers the flags every way of running a site shares; authMode is the
// default of --ingest.auth.
func (c *runConfig) registerSiteFlags(fs *flag.FlagSet, authMode string) {
	fs.StringVar(&c.Listen, "listen", "127.0.0.1:8080", "HTTP address: ingest, reports, SQL, /metrics, /healthz")
	fs.StringVar(&c.TLSCert, "tls.cert", "", "serve HTTPS with this certificate (PEM; with --tls.key)")
	fs.StringVar(&c.TLSKey, "tls.key", "", "private key of --tls.cert (PEM)")
	c.HTTP.registerFlags("http.", fs)
	fs.StringVar(&c.Site, "site", "P01", "site code")
	fs.DurationVar(&c.ExpiredCleanup, "reports.expired-cleanup", schema.DefaultExpiredCleanup, "how long an expired update stays in reports")
	c.Kafka.RegisterFlags("kafka.", fs)
	c.Ingest.RegisterFlags("ingest.", fs)
	c.Auth.RegisterFlags("ingest.", fs, authMode)
	c.Pacing.RegisterFlags("pacing.", fs)
	fs.StringVar(&c.AdminToken, "admin-token", os.Getenv("STATEPIPE_ADMIN_TOKEN"), "bearer token of administrators: required by /v1/ref, /v1/resync, /v1/revoke (and /v1/sql without --reader-token), accepted everywhere (default $STATEPIPE_ADMIN_TOKEN; empty: open)")
	fs.StringVar(&c.ReaderToken, "reader-token", os.Getenv("STATEPIPE_READER_TOKEN"), "bearer token of readers: required by /v1/reports/*, /v1/sql and /metrics when set (default $STATEPIPE_READER_TOKEN; empty: reports and metrics open)")
	c.Projector.RegisterFlags("projector.", fs)
	c.Store.registerFlags(fs)
}

// startRun builds the embedded node; the caller runs it.
func startRun(ctx context.Context, cfg runConfig, wrap func(siteStore) siteStore, log *slog.Logger) (*node, error) {
	if err := cfg.Hierarchy.load(); err != nil {
		return nil, err
	}
	if cfg.Hierarchy.Topology != nil && cfg.Auth.SiteKeyFile != "" {
		return nil, fmt.Errorf("cannot use --ingest.site-key with --topology: it names one site's key, and each site of the topology keeps its own in the data directory")
	}
	var parentKafka kafka.Config
	if t := cfg.Hierarchy.Topology; t != nil && cfg.OneSite {
		var err error
		if parentKafka, err = cfg.oneSiteKafka(t); err != nil {
			return nil, err
		}
	}
	n := newNode(log)
	if err := n.configureHTTP(cfg.HTTP); err != nil {
		return nil, err
	}
	fail := func(err error) (*node, error) {
		for i := len(n.closers) - 1; i >= 0; i-- {
			n.closers[i]()
		}
		return nil, err
	}
	if err := n.listen(cfg.Listen, cfg.TLSCert, cfg.TLSKey); err != nil {
		return fail(err)
	}
	n.onClose(func() { _ = n.listener.Close() })
	if len(cfg.Kafka.Brokers) == 0 {
		host, portStr, err := net.SplitHostPort(cfg.KafkaListen)
		if err != nil || host != "127.0.0.1" {
			return fail(fmt.Errorf("cannot use --kafka.listen %q: want 127.0.0.1:PORT", cfg.KafkaListen))
		}
		port, _ := strconv.Atoi(portStr)
		b, err := kafka.StartEmbedded(kafka.EmbeddedConfig{Dir: filepath.Join(cfg.Data, "kafka"), Port: port,
			MaxRequest: kafka.EmbeddedMaxRequest(cfg.Kafka.BatchBytes)})
		if err != nil {
			return fail(err)
		}
		n.onClose(b.Close)
		cfg.Kafka.Brokers = b.Addrs()
	}
	if cfg.Store.ChdbPath == "" {
		cfg.Store.ChdbPath = filepath.Join(cfg.Data, "chdb")
	}
	st, err := cfg.Store.open(ctx)
	if err != nil {
		return fail(err)
	}
	n.onClose(func() { _ = st.Close() })
	raw := st // ClickHouse's HTTP interface needs the embedded adapter itself
	if wrap != nil {
		st = wrap(st)
	}
	topo := cfg.Hierarchy.Topology
	codes := []string{cfg.Site}
	var router *siteRouter
	switch {
	case topo != nil && cfg.OneSite:
		cfg.Hierarchy.EpochDir = cfg.Data
		if err := cfg.Hierarchy.parentKeys(cfg.Site, cfg.Auth); err != nil && topo.Parent(cfg.Site) != "" {
			return fail(err)
		}
	case topo != nil:
		codes = siteCodes(topo)
		if topo.Server() {
			log.Warn("hosting every site of a server-mode topology in one process: its kafka and url fields are not used (run one site of it per process with --site)")
		}
		router = newSiteRouter(topo.Root())
		cfg.Hierarchy.EpochDir = cfg.Data
		if cfg.Auth.Mode != ingest.AuthOff {
			cfg.Hierarchy.SiteKeysDir = cfg.Data // every site of the process keeps its key there
			cfg.Hierarchy.keysMadeHere = true
			cfg.Hierarchy.ParentKeys = func(parent string) ([]ed25519.PublicKey, error) {
				key, err := ingest.LoadSitePublicKey(filepath.Join(cfg.Data, "site-"+parent+".key"))
				if err != nil {
					return nil, err
				}
				return cfg.Auth.PublicKeys(key)
			}
		}
	}
	for _, code := range codes {
		auth := cfg.Auth
		if auth.SiteKeyFile == "" && auth.Mode != ingest.AuthOff {
			// The embedded site keeps its key in its data directory, made on first start.
			auth.SiteKeyFile = filepath.Join(cfg.Data, "site-"+code+".key")
			auth.SiteKeyCreate = true
		}
		s, err := newSite(ctx, siteConfig{Code: code, Kafka: cfg.Kafka, Ingest: cfg.Ingest, Auth: auth, AdminToken: cfg.AdminToken, ReaderToken: cfg.ReaderToken, Projector: cfg.Projector,
			ProjectorGroup: cfg.Group, ExpiredCleanup: cfg.ExpiredCleanup, Hierarchy: cfg.Hierarchy, Pacing: cfg.Pacing, RunIngest: true, RunProjector: true, RunReports: true}, st, n.reg, log)
		if err != nil {
			return fail(err)
		}
		if topo == nil || cfg.OneSite {
			if topo != nil {
				if err := s.hierarchyRoles(cfg.Hierarchy, parentKafka, true, true, n.reg, log); err != nil {
					s.close()
					return fail(err)
				}
			}
			n.addSite(s)
			continue
		}
		if err := s.hierarchyRoles(cfg.Hierarchy, cfg.Kafka, true, true, n.reg, log); err != nil {
			s.close()
			return fail(err)
		}
		mux := http.NewServeMux()
		s.register(mux)
		router.add(code, mux)
		n.sites = append(n.sites, s)
	}
	if router != nil {
		router.register(n.mux)
	}
	if err := cfg.startCHHTTP(ctx, n, raw, log); err != nil {
		return fail(err)
	}
	return n, nil
}

// startCHHTTP starts ClickHouse's HTTP interface where it applies: asked for, one site, the
// embedded store.
func (cfg *runConfig) startCHHTTP(ctx context.Context, n *node, st siteStore, log *slog.Logger) error {
	store, embedded := st.(chhttp.Store)
	switch {
	case (cfg.ClickHouseHTTP.Listen == "" && cfg.ClickHouseHTTP.Listener == nil) || !embedded:
		return nil
	case len(n.sites) != 1:
		log.Warn("ClickHouse's HTTP interface is not served for several sites in one process (--clickhouse-http.listen): run one site per process with --site")
		return nil
	}
	return n.startCHHTTP(ctx, cfg.ClickHouseHTTP, n.sites[0], store, cfg.Store.SQL)
}

// oneSiteKafka sets the site's Kafka for running one site of a server-mode topology: the
// brokers --kafka.brokers names, or else an embedded broker at the topology's address for it;
// and returns the parent's (nil brokers for the root).
func (cfg *runConfig) oneSiteKafka(t *replicator.Topology) (kafka.Config, error) {
	ss, ok := t.Site(cfg.Site)
	if !ok {
		return kafka.Config{}, fmt.Errorf("cannot run site %s: it is not in %s", cfg.Site, cfg.Hierarchy.TopologyFile)
	}
	if !t.Server() {
		return kafka.Config{}, fmt.Errorf("cannot run only site %s of %s: a topology run one site per process names every site's kafka.brokers and url (server mode); without --site, run hosts every site of it", cfg.Site, cfg.Hierarchy.TopologyFile)
	}
	if len(cfg.Kafka.Brokers) == 0 {
		if len(ss.Kafka.Brokers) != 1 {
			return kafka.Config{}, fmt.Errorf("cannot start an embedded broker for site %s: the topology names %d brokers for it (want one 127.0.0.1:PORT, or give --kafka.brokers)", cfg.Site, len(ss.Kafka.Brokers))
		}
		cfg.KafkaListen = ss.Kafka.Brokers[0]
	}
	parent := cfg.Kafka
	parent.Brokers = nil
	if p := t.Parent(cfg.Site); p != "" {
		ps, _ := t.Site(p)
		parent.Brokers = ps.Kafka.Brokers
	}
	return parent, nil
}

// welcomeAccess is the part of the welcome that depends on who may do what: the unsigned
// curl where unsigned reports are taken, and where tokens guard the site, how the CLI gets
// them (from the environment: the welcome never prints a secret).
func welcomeAccess(url string, cfg runConfig) string {
	var b strings.Builder
	if cfg.AdminToken != "" || cfg.ReaderToken != "" || cfg.Auth.EnrollToken != "" {
		b.WriteString("  # this site takes tokens: export the values you gave it, the CLI reads them from\n")
		b.WriteString("  # STATEPIPE_ADMIN_TOKEN, STATEPIPE_READER_TOKEN and STATEPIPE_ENROLL_TOKEN\n")
	}
	if cfg.Auth.Mode != ingest.AuthRequired {
		fmt.Fprintf(&b, "  # JSON over plain HTTP, for a client that never enrolled (answered once folded):\n")
		fmt.Fprintf(&b, "  curl -s -H 'Content-Type: application/json' '%s/v1/reports?wait=true' -d '{\"v\":1,\"client\":\"pc-0001\",\"site\":\"%s\",\"full_types\":[500],\"messages\":[{\"serial\":1,\"time\":1764100000000,\"topic_type\":500,\"topic_id\":\"KB5044284\",\"state\":2,\"error\":0},{\"serial\":2,\"time\":1764100000000,\"topic_type\":500,\"topic_id\":\"KB5043050\",\"state\":3,\"error\":0}]}'\n", url, cfg.Site)
	}
	return b.String()
}

func printWelcome(w io.Writer, url string, cfg runConfig, embeddedKafka bool) {
	broker := fmt.Sprintf("brokers %s", strings.Join(cfg.Kafka.Brokers, ","))
	if embeddedKafka {
		broker = fmt.Sprintf("embedded broker at %s (Kafka tools can read it)", strings.Join(cfg.Kafka.Brokers, ","))
	}
	store := "embedded ClickHouse engine (chDB) in " + cfg.Store.ChdbPath
	if cfg.Store.ClickHouse.DSN != "" {
		store = "ClickHouse server " + redactDSN(cfg.Store.ClickHouse.DSN)
	}
	fmt.Fprintf(w, `statepipe is running: site %[2]s
  ingest    POST %[1]s/v1/reports   (application/msgpack or application/json)
  reports   GET  %[1]s/v1/reports/compliance
  sql       POST %[1]s/v1/sql       (read-only)%[8]s
  metrics   GET  %[1]s/metrics
  health    GET  %[1]s/healthz
  kafka     %[3]s, topic %[4]s
  store     %[5]s, database %[6]s

Try it:
%[7]s  # signed, as agents report:
  ./bin/statepipe client enroll --url %[1]s --site %[2]s --id 9f1c2d3e-0000-4000-8000-000000000001 --out pc.identity
  ./bin/statepipe client send --url %[1]s --identity pc.identity examples/report.json
  ./bin/statepipe report compliance --url %[1]s
  ./bin/statepipe sql --url %[1]s "SELECT update_id, state_name, count() FROM v_update_compliance GROUP BY ALL"
`, url, cfg.Site, broker, kafka.StateTopic(cfg.Site), store, database(cfg.Site), welcomeAccess(url, cfg), welcomeCHHTTP(cfg))
}

// redactDSN hides a DSN's password.
func redactDSN(dsn string) string {
	u, err := neturl.Parse(dsn)
	if err != nil {
		return "(unparsable DSN)"
	}
	return u.Redacted()
}
