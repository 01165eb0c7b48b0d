package main

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/statepipe/statepipe/ingest"
	"github.com/statepipe/statepipe/internal/kafka"
	"github.com/statepipe/statepipe/pacing"
	"github.com/statepipe/statepipe/projector"
	"github.com/statepipe/statepipe/replicator"
	"github.com/statepipe/statepipe/report"
	"github.com/statepipe/statepipe/schema"
)

// siteStore is what a site needs of its store: the schema contract plus read-only SQL.
type siteStore interface {
	schema.Store
	report.ReadOnlyQuerier
}

// database returns the ClickHouse database of a site.
func database(site string) string { return schema.Database(site) }

// siteConfig is everything one site's roles need.
type siteConfig struct {
	Code   string
	Kafka  kafka.Config
	Ingest ingest.Config
	Auth   ingest.AuthConfig
	// AdminToken guards the administrative endpoints when set; it is accepted everywhere.
	AdminToken string
	// ReaderToken guards reports, SQL and metrics when set (the administrator's token is
	// accepted too); unset, reports and metrics are open and SQL needs the admin token.
	ReaderToken string
	Projector   projector.Config
	// ExpiredCleanup is how long expired updates stay in reports.
	ExpiredCleanup time.Duration
	// ProjectorGroup is the projector's consumer group (default statepipe-projector-<site>).
	// A new group re-folds the topic from its start: a replay.
	ProjectorGroup string
	// Hierarchy is the site's place in a site hierarchy (its reports cover the sites below).
	Hierarchy hierarchyConfig
	// Pacing is the pacing controller's configuration (where ingest runs).
	Pacing pacing.Config
	// Roles to host; the embedded run hosts all.
	RunIngest, RunProjector, RunReports bool
}

// site is one site's roles wired to its Kafka topics and store.
type site struct {
	cfg     siteConfig
	db      string
	store   siteStore
	ingest  *ingest.Handler
	reports *report.API

	refImport   *ingest.RefHandler
	resyncs     *kafka.KeySet // open resync requests, mirrored from resync.<site>
	resyncAdmin *ingest.ResyncAdmin
	enroller    *ingest.Enroller
	up          *replicator.Up        // the replicator to the parent, in a hierarchy
	watermark   *replicator.Watermark // the site's own projector progress
	pacer       *sitePacer            // where ingest runs
	phases      *phaseDecider         // phased deployments: the decider and its status (where the store is)
	projector   *projector.Projector  // where it runs in this process

	// actors are the site's long-running parts (the projector, the followers of its
	// topics), in the order they start: the node runs them until it stops, and stops them in
	// reverse order (server.go). A new role adds its actor here, nothing else.
	actors []actor
	// clients are the site's Kafka clients, closed after its actors stopped.
	clients []interface{ Close() error }
}

// actor is a long-running part of a node: a site's projector, a follower of a topic, and
// whatever role comes next.
type actor interface {
	// Name says what it is in the node's logs ("projector").
	Name() string
	// Run works until ctx is done (then returns nil) or it fails for good.
	Run(ctx context.Context) error
}

// actorFunc is an actor made of a function.
type actorFunc struct {
	name string
	run  func(ctx context.Context) error
}

func (a actorFunc) Name() string                  { return a.name }
func (a actorFunc) Run(ctx context.Context) error { return a.run(ctx) }

// addActor adds an actor to the site.
func (s *site) addActor(a actor) { s.actors = append(s.actors, a) }

// producer returns a producer for topic, closed with the site.
func (s *site) producer(topic string) *kafka.Producer {
	p := kafka.NewProducer(s.cfg.Kafka, topic)
	s.clients = append(s.clients, p)
	return p
}

// newSite migrates the site's database, creates its topics and builds its roles.
func newSite(ctx context.Context, cfg siteConfig, st siteStore, reg prometheus.Registerer, log *slog.Logger) (*site, error) {
	if !schema.ValidSiteCode(cfg.Code) {
		return nil, fmt.Errorf("cannot use site code %q: %s", cfg.Code, schema.SiteCodeRule)
	}
	if err := cfg.Kafka.Validate(); err != nil {
		return nil, err
	}
	s := &site{cfg: cfg, db: database(cfg.Code), store: st}
	log = log.With("site", cfg.Code)
	reg = prometheus.WrapRegistererWith(prometheus.Labels{"site": cfg.Code}, reg)
	topic := kafka.StateTopic(cfg.Code)
	if cfg.RunProjector || cfg.RunReports {
		applied, err := schema.Migrate(ctx, st, s.db)
		if err != nil {
			return nil, err
		}
		if len(applied) > 0 {
			log.Info("migrated store", "database", s.db, "applied", applied)
		}
	}
	refTopic, resyncTopic := kafka.RefTopic(cfg.Code), kafka.ResyncTopic(cfg.Code)
	group := cfg.ProjectorGroup
	if group == "" {
		group = "statepipe-projector-" + cfg.Code
	}
	var resyncWriter *kafka.Producer // resync.<site>: the projector's requests, the administrators'
	if cfg.RunIngest || cfg.RunProjector {
		if err := kafka.EnsureTopic(ctx, cfg.Kafka, topic); err != nil {
			return nil, err
		}
		// Dead letters are acknowledged reports the projector did not fold: kept until an
		// administrator replays or deletes them, not for the broker's default week.
		if err := kafka.EnsureTopic(ctx, cfg.Kafka, topic+".dlq", kafka.Forever...); err != nil {
			return nil, err
		}
		for _, t := range []string{refTopic, resyncTopic} {
			if err := kafka.EnsureTopic(ctx, cfg.Kafka, t, kafka.Compacted); err != nil {
				return nil, err
			}
		}
		resyncWriter = s.producer(resyncTopic)
		s.resyncs = kafka.NewKeySet()
		s.addActor(actorFunc{"resync follower", func(ctx context.Context) error {
			if err := s.resyncs.Follow(ctx, cfg.Kafka, resyncTopic, log); err != nil && ctx.Err() == nil {
				log.Error("cannot follow resync requests", "err", err)
			}
			return nil
		}})
	}
	if cfg.RunIngest || cfg.RunReports {
		// The site's own watermark: every report accepted before it is folded (the backlog
		// report, the site's line in answers over a hierarchy, and the pacing's signals).
		interval := cfg.Hierarchy.Interval
		if interval <= 0 {
			interval = time.Second
		}
		s.watermark = replicator.NewWatermark(kafka.NewProgress(cfg.Kafka, group, topic, refTopic), interval)
		s.addActor(s.watermark)
	}
	if cfg.RunIngest {
		if err := s.trust(ctx, &cfg, reg, log); err != nil {
			return nil, err
		}
		pc := cfg.Pacing
		if pc.Mode == "" {
			pc = pacing.DefaultConfig()
		}
		pacer, err := newSitePacer(pc, cfg.Code, cfg.Kafka, cfg.Auth.EnrollRate, reg, log)
		if err != nil {
			return nil, err
		}
		s.pacer = pacer
		s.clients = append(s.clients, pacer.out)
		pacer.own = s.watermark
		pacer.enroller = s.enroller
		if s.enroller != nil && pc.Mode == pacing.ModeOn {
			// Until the site's pacing commands are read (a pause holds across restarts), new
			// clients wait a second or two.
			s.enroller.Starting("starting: reading the site's pacing commands")
		}
		if a := cfg.Ingest.Auth; a != nil && a.Key() != nil {
			pacer.key, pacer.keys = a.Key(), []ed25519.PublicKey{a.PublicKey()}
		}
		cfg.Ingest.Pacing = pacer
		cfg.Ingest.Site = cfg.Code
		cfg.Ingest.Topic = topic
		cfg.Ingest.Resync = s.resyncs
		cfg.Ingest.Folded = kafka.GroupPastKey(cfg.Kafka, group, topic)
		h, err := ingest.New(cfg.Ingest, ingestProducer{s.producer(topic)}, reg, log)
		if err != nil {
			return nil, err
		}
		s.ingest = h
		pacer.shed = h.Shed
		// Reference data copied from a site above is read-only here: the owners are those
		// the records of ref.<site> name (replicator.Down sets them).
		owners := &ingest.RefOwners{}
		var ownersRead atomic.Bool
		s.addActor(actorFunc{"reference-data owners", func(ctx context.Context) error {
			apply := func(r kafka.Record) { owners.Apply(ingestRecord(r)) }
			fresh := func(time.Time) { ownersRead.Store(true) }
			following{Kafka: cfg.Kafka, Topic: refTopic, Apply: apply, Fresh: fresh, Every: 200 * time.Millisecond,
				What: "the owners of reference data", Level: slog.LevelError, Retry: time.Second}.follow(ctx, log)
			return nil
		}})
		s.refImport = &ingest.RefHandler{Site: cfg.Code, Producer: ingestProducer{s.producer(refTopic)}, Topic: refTopic, Key: cfg.Ingest.Auth.Key(),
			Folded: kafka.GroupCaughtUp(cfg.Kafka, group, refTopic), FoldWait: cfg.Ingest.FoldWait, Owners: owners.Owner, OwnersRead: ownersRead.Load}
	}
	if cfg.RunProjector {
		cfg.Projector.Database = s.db
		cfg.Projector.RefTopic = refTopic
		cfg.Projector.ExpiredCleanup = cfg.ExpiredCleanup
		cfg.Projector.Topic = topic
		vouch, err := vouchKeys(cfg.Auth, log)
		if err != nil {
			return nil, err
		}
		gc, err := kafka.NewGroupConsumer(cfg.Kafka, group, topic, refTopic)
		if err != nil {
			return nil, err
		}
		s.clients = append(s.clients, gc)
		p, err := projector.New(cfg.Projector, projector.Params{
			Consumer: groupConsumer{gc}, Store: st, Reader: st,
			DeadLetters: projectorProducer{s.producer(topic + ".dlq")}, Resync: projectorProducer{resyncWriter}, OpenResyncs: s.resyncs,
			Lag:        kafka.GroupLag(cfg.Kafka, group, topic, refTopic),
			Vouch:      vouch,
			Registerer: reg, Logger: log,
		})
		if err != nil {
			return nil, err
		}
		s.projector = p
		s.addActor(p)
		if s.pacer != nil {
			s.pacer.inserts = p.InsertStats
		}
	}
	if s.pacer != nil {
		// Last: it reads the others' progress, and its first steps see every signal fresh.
		s.addActor(s.pacer)
	}
	if cfg.RunReports {
		s.reports = &report.API{Site: cfg.Code, Database: s.db, Store: st, ExpiredCleanup: cfg.ExpiredCleanup, Registerer: reg}
		s.reports.Watermark = s.watermark.Get
		if s.pacer != nil {
			s.reports.Pacing = s.pacer.reportPacing
		}
		if t := cfg.Hierarchy.Topology; t != nil {
			h := &report.Hierarchy{Expected: map[string]string{}, Links: cfg.Hierarchy.Links, URLs: map[string]string{}}
			for _, d := range t.Descendants(cfg.Code) {
				h.Expected[d] = t.Parent(d)
				if ds, _ := t.Site(d); ds.URL != "" {
					h.URLs[d] = ds.URL
				}
			}
			s.reports.Hierarchy = h
		}
		if resyncWriter != nil {
			s.resyncAdmin = &ingest.ResyncAdmin{Site: cfg.Code, Producer: ingestProducer{resyncWriter},
				Clients: func(ctx context.Context, collection string) ([]string, error) {
					return report.ScopeClients(ctx, st, s.db, report.Scope{Collection: collection})
				}}
		}
	}
	var backlogOK func() bool
	if s.pacer != nil {
		backlogOK = s.pacer.BacklogOK
	}
	var ownWatermark func() time.Time
	if s.watermark != nil {
		ownWatermark = func() time.Time { t, _ := s.watermark.Get(); return t }
	}
	s.phases = s.newSitePhases(cfg, backlogOK, ownWatermark, reg, log)
	return s, nil
}

// trust sets up the site's trust boundary (ingest.Auth, enrolment, rotation, revocation): the
// site key, and the identity log every ingest node follows.
func (s *site) trust(ctx context.Context, cfg *siteConfig, reg prometheus.Registerer, log *slog.Logger) error {
	if err := cfg.Auth.Validate(); err != nil {
		return err
	}
	if cfg.Auth.Mode == ingest.AuthOff {
		auth, err := ingest.NewAuth(cfg.Auth, nil, nil)
		cfg.Ingest.Auth = auth
		return err
	}
	key, err := ingest.LoadSiteKey(cfg.Auth.SiteKeyFile, cfg.Auth.SiteKeyCreate)
	if err != nil {
		return err
	}
	keys, err := cfg.Auth.PublicKeys(key.Public().(ed25519.PublicKey))
	if err != nil {
		return err
	}
	topic := kafka.IdentityTopic(cfg.Code)
	// One partition: every node applies every event of the log in one order (a client id's
	// events would be in one partition anyway, but a partition added later would split them).
	one := cfg.Kafka
	one.Partitions = 1
	if err := kafka.EnsureTopic(ctx, one, topic, kafka.Forever...); err != nil {
		return err
	}
	if parts, err := kafka.Partitions(ctx, cfg.Kafka, topic); err != nil {
		return err
	} else if len(parts) != 1 {
		return fmt.Errorf("cannot use the identity log %s: it has %d partitions, and its events must keep one order (it must have exactly 1)", topic, len(parts))
	}
	ids := ingest.NewIdentities(topic, keys...)
	auth, err := ingest.NewAuth(cfg.Auth, key, ids)
	if err != nil {
		return err
	}
	cfg.Ingest.Auth = auth
	s.addActor(actorFunc{"identity follower", func(ctx context.Context) error {
		// Kept following whatever fails: until it reads again the node only goes stale
		// (and refuses what is signed), it never trusts an old copy.
		apply := func(r kafka.Record) { ids.Apply(ingestRecord(r)) }
		following{Kafka: cfg.Kafka, Topic: topic, Apply: apply, Fresh: ids.MarkFresh, Every: identityFreshEvery,
			What: "the identity log", Level: slog.LevelError, Retry: time.Second}.follow(ctx, log)
		return nil
	}})
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "statepipe_ingest_identity_staleness_seconds",
		Help: "How long ago this node last read the identity log to its end (revocations and rotations reach it within this)."},
		func() float64 { return min(ids.Staleness(time.Now()).Seconds(), 1e9) }))
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "statepipe_ingest_identity_records_ignored_total",
		Help: "Records of the identity log ignored because no ingest of the site vouched for them, or malformed."},
		func() float64 {
			n := 0
			for _, v := range ids.Ignored() {
				n += v
			}
			return float64(n)
		}))
	s.enroller = ingest.NewEnroller(ingest.EnrollerParams{Site: cfg.Code, AdminToken: cfg.AdminToken, Auth: auth, Identities: ids, Log: ingestProducer{s.producer(topic)},
		Registerer: reg, Logger: log})
	return nil
}

// vouchKeys are the public keys the projector checks records with: the site key's (the file
// --ingest.site-key names, public or private) and those it replaced; none with --ingest.auth
// off — every record is then folded, whoever produced it.
func vouchKeys(auth ingest.AuthConfig, log *slog.Logger) ([]ed25519.PublicKey, error) {
	if auth.Mode == ingest.AuthOff {
		log.Warn("folding every record of the state topic, vouched for by ingest or not (--ingest.auth off): anyone who can produce to the broker can report for any client")
		return nil, nil
	}
	if auth.SiteKeyFile == "" {
		return nil, fmt.Errorf("cannot check what ingest vouched for: give the projector the site's key (--ingest.site-key FILE: the site key or its public half), or --ingest.auth off")
	}
	key, err := ingest.LoadSitePublicKey(auth.SiteKeyFile)
	if err != nil {
		return nil, err
	}
	return auth.PublicKeys(key)
}

// pause waits d or until ctx is done.
func pause(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// identityFreshEvery is how often a node checks that it has read the identity log to its end.
const identityFreshEvery = 500 * time.Millisecond

// register adds the site's HTTP routes, each behind the token of the callers it serves
// (roles.go): administrative ones the admin token, reports and SQL the reader token.
func (s *site) register(mux *http.ServeMux) {
	r := roles{admin: token(s.cfg.AdminToken), reader: token(s.cfg.ReaderToken)}
	admin := r.admin.guard
	if s.ingest != nil {
		mux.Handle("POST /v1/reports", s.ingest)
		mux.Handle("POST /v1/configmgr/reports", s.ingest.ConfigMgr())
		mux.Handle("POST /v1/ref/{kind}", admin(s.refImport))
	}
	if s.enroller != nil {
		mux.HandleFunc("POST /v1/enroll", s.enroller.ServeEnroll)
		mux.Handle("POST /v1/revoke", admin(http.HandlerFunc(s.enroller.ServeRevoke)))
	}
	if s.reports != nil {
		reports := http.NewServeMux()
		s.reports.Register(reports)
		mux.Handle("GET /v1/reports/{name}", r.readers(reports))
		mux.Handle("POST /v1/sql", r.analysts(reports))
	}
	if s.resyncAdmin != nil {
		mux.Handle("POST /v1/resync", admin(s.resyncAdmin))
	}
	if s.phases != nil {
		mux.Handle("GET /v1/deployments/{id}/phases", r.readers(s.phases))
	}
	if s.pacer != nil {
		mux.Handle("GET /v1/pacing", r.readers(http.HandlerFunc(s.pacer.serveStatus)))
		mux.Handle("POST /v1/pacing/{op}", admin(http.HandlerFunc(s.pacer.serveCommand)))
	}
}

// ready reports why the site cannot serve yet: an ingest that has not read its identity log
// up to date refuses signed reports and enrolments (503), so a load balancer should wait.
func (s *site) ready() error {
	if s.refImport != nil && s.refImport.OwnersRead != nil && !s.refImport.OwnersRead() {
		return fmt.Errorf("reference data's owners not read up to date yet")
	}
	if s.ingest != nil && s.cfg.Auth.Mode != ingest.AuthOff && s.enroller != nil {
		if stale := s.enroller.Staleness(time.Now()); stale > s.cfg.Auth.IdentityMaxStaleness {
			return fmt.Errorf("identity log not read up to date (for %s)", min(stale, 24*time.Hour).Round(time.Second))
		}
	}
	return nil
}

// close releases the site's Kafka clients (after its actors stopped).
func (s *site) close() {
	for _, c := range s.clients {
		_ = c.Close()
	}
}
