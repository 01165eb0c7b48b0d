package main

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/statepipe/statepipe/ingest"
	"github.com/statepipe/statepipe/internal/kafka"
	"github.com/statepipe/statepipe/projector"
	"github.com/statepipe/statepipe/report"
	"github.com/statepipe/statepipe/schema"
)

// siteStore is what a site needs of its store: the schema contract plus read-only SQL.
type siteStore interface {
	schema.Store
	report.ReadOnlyQuerier
}

var siteCode = regexp.MustCompile(`^[A-Z0-9]{1,16}$`)

// database returns the ClickHouse database of a site.
func database(site string) string { return "statepipe_" + strings.ToLower(site) }

// siteConfig is everything one site's roles need.
type siteConfig struct {
	Code   string
	Kafka  kafka.Config
	Ingest ingest.Config
	Auth   ingest.AuthConfig
	// AdminToken guards the administrative endpoints when set.
	AdminToken string
	Projector  projector.Config
	// ExpiredCleanup is how long expired updates stay in reports.
	ExpiredCleanup time.Duration
	// ProjectorGroup is the projector's consumer group (default statepipe-projector-<site>).
	// A new group re-folds the topic from its start: a replay.
	ProjectorGroup string
	// Roles to host; the embedded run hosts all.
	RunIngest, RunProjector, RunReports bool
}

// site is one site's roles wired to its Kafka topics and store.
type site struct {
	cfg     siteConfig
	db      string
	store   siteStore
	writer  *kafkago.Writer
	dlq     *kafkago.Writer
	reader  *kafka.GroupConsumer
	proj    *projector.Projector
	ingest  *ingest.Handler
	reports *report.API

	refWriter *kafkago.Writer
	refImport *ingest.RefHandler

	resyncWriter *kafkago.Writer
	resyncs      *kafka.KeySet // open resync requests, mirrored from resync.<site>
	resyncAdmin  *ingest.ResyncAdmin
	enroller     *ingest.Enroller
	enrollWriter *kafkago.Writer
	revokeWriter *kafkago.Writer
	background   []func(ctx context.Context) // run by the node until it stops
}

// newSite migrates the site's database, creates its topics and builds its roles.
func newSite(ctx context.Context, cfg siteConfig, st siteStore, reg prometheus.Registerer, log *slog.Logger) (*site, error) {
	if !siteCode.MatchString(cfg.Code) {
		return nil, fmt.Errorf("cannot use site code %q: 1-16 characters A-Z, 0-9", cfg.Code)
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
	if cfg.RunIngest || cfg.RunProjector {
		for _, t := range []string{topic, topic + ".dlq"} {
			if err := kafka.EnsureTopic(ctx, cfg.Kafka, t); err != nil {
				return nil, err
			}
		}
		for _, t := range []string{refTopic, resyncTopic} {
			if err := kafka.EnsureTopic(ctx, cfg.Kafka, t, kafka.Compacted); err != nil {
				return nil, err
			}
		}
		s.resyncWriter = kafka.NewWriter(cfg.Kafka, resyncTopic)
		s.resyncs = kafka.NewKeySet()
		s.background = append(s.background, func(ctx context.Context) {
			if err := s.resyncs.Follow(ctx, cfg.Kafka, resyncTopic, log); err != nil && ctx.Err() == nil {
				log.Error("cannot follow resync requests", "err", err)
			}
		})
	}
	if cfg.RunIngest {
		if err := s.trust(ctx, &cfg, log); err != nil {
			return nil, err
		}
		cfg.Ingest.Site = cfg.Code
		cfg.Ingest.Resync = s.resyncs
		s.writer = kafka.NewWriter(cfg.Kafka, topic)
		h, err := ingest.New(cfg.Ingest, s.writer, reg, log)
		if err != nil {
			return nil, err
		}
		s.ingest = h
		s.refWriter = kafka.NewWriter(cfg.Kafka, refTopic)
		s.refImport = &ingest.RefHandler{Site: cfg.Code, Producer: s.refWriter}
	}
	if cfg.RunProjector {
		cfg.Projector.Database = s.db
		cfg.Projector.RefTopic = refTopic
		cfg.Projector.ExpiredCleanup = cfg.ExpiredCleanup
		group := cfg.ProjectorGroup
		if group == "" {
			group = "statepipe-projector-" + cfg.Code
		}
		cfg.Projector.Topic = topic
		gc, err := kafka.NewGroupConsumer(cfg.Kafka, group, topic, refTopic)
		if err != nil {
			return nil, err
		}
		s.reader = gc
		s.dlq = kafka.NewWriter(cfg.Kafka, topic+".dlq")
		kc := cfg.Kafka
		p, err := projector.New(cfg.Projector, projector.Params{
			Consumer: groupConsumer{gc}, Store: st, Reader: st, DeadLetters: s.dlq, Resync: s.resyncWriter, OpenResyncs: s.resyncs,
			Lag:        kafka.GroupLag(kc, group, topic),
			Registerer: reg, Logger: log,
		})
		if err != nil {
			return nil, err
		}
		s.proj = p
	}
	if cfg.RunReports {
		s.reports = &report.API{Site: cfg.Code, Database: s.db, Store: st, ExpiredCleanup: cfg.ExpiredCleanup}
		if s.resyncWriter != nil {
			s.resyncAdmin = &ingest.ResyncAdmin{Site: cfg.Code, Producer: s.resyncWriter,
				Clients: func(ctx context.Context, collection string) ([]string, error) {
					return report.ScopeClients(ctx, st, s.db, report.Scope{Collection: collection})
				}}
		}
	}
	return s, nil
}

// trust sets up the site's trust boundary (ingest.Auth, enrolment, revocation): the site
// key, and the enrolled-clients and revocations topics every ingest node mirrors.
func (s *site) trust(ctx context.Context, cfg *siteConfig, log *slog.Logger) error {
	var key ed25519.PrivateKey
	if cfg.Auth.Mode != ingest.AuthOff && cfg.Auth.SiteKeyFile != "" {
		k, err := ingest.LoadOrCreateSiteKey(cfg.Auth.SiteKeyFile)
		if err != nil {
			return err
		}
		key = k
	}
	enrolled, revoked := kafka.NewKeySet(), kafka.NewKeySet()
	auth, err := ingest.NewAuth(cfg.Auth, key, revoked)
	if err != nil {
		return err
	}
	cfg.Ingest.Auth = auth
	if cfg.Auth.Mode == ingest.AuthOff {
		return nil
	}
	enrollTopic, revokeTopic := kafka.EnrollTopic(cfg.Code), kafka.RevokeTopic(cfg.Code)
	for _, t := range []string{enrollTopic, revokeTopic} {
		if err := kafka.EnsureTopic(ctx, cfg.Kafka, t, kafka.Compacted); err != nil {
			return err
		}
		set := enrolled
		if t == revokeTopic {
			set = revoked
		}
		s.background = append(s.background, func(ctx context.Context) {
			if err := set.Follow(ctx, cfg.Kafka, t, log); err != nil && ctx.Err() == nil {
				log.Error("cannot follow compacted topic", "topic", t, "err", err)
			}
		})
	}
	s.enrollWriter = kafka.NewWriter(cfg.Kafka, enrollTopic)
	s.revokeWriter = kafka.NewWriter(cfg.Kafka, revokeTopic)
	s.enroller = &ingest.Enroller{Site: cfg.Code, Auth: auth, Enrolled: enrolled, Enrollments: s.enrollWriter,
		Revocations: s.revokeWriter, Log: log}
	return nil
}

// register adds the site's HTTP routes; administrative ones need the admin token when set.
func (s *site) register(mux *http.ServeMux) {
	admin := func(h http.Handler) http.Handler { return ingest.RequireBearer(s.cfg.AdminToken, h) }
	if s.ingest != nil {
		mux.Handle("POST /v1/reports", s.ingest)
		mux.Handle("POST /v1/ref/{kind}", admin(s.refImport))
	}
	if s.enroller != nil {
		mux.HandleFunc("POST /v1/enroll", s.enroller.ServeEnroll)
		mux.Handle("POST /v1/revoke", admin(http.HandlerFunc(s.enroller.ServeRevoke)))
	}
	if s.reports != nil {
		s.reports.Guard = admin
		s.reports.Register(mux)
	}
	if s.resyncAdmin != nil {
		mux.Handle("POST /v1/resync", admin(s.resyncAdmin))
	}
}

// close releases the site's Kafka clients (after its actors stopped).
func (s *site) close() {
	if s.writer != nil {
		_ = s.writer.Close()
	}
	if s.refWriter != nil {
		_ = s.refWriter.Close()
	}
	for _, w := range []*kafkago.Writer{s.enrollWriter, s.revokeWriter} {
		if w != nil {
			_ = w.Close()
		}
	}
	if s.resyncWriter != nil {
		_ = s.resyncWriter.Close()
	}
	if s.dlq != nil {
		_ = s.dlq.Close()
	}
	if s.reader != nil {
		_ = s.reader.Close()
	}
}

// groupConsumer hands the projector the generations of a kafka.GroupConsumer.
type groupConsumer struct{ g *kafka.GroupConsumer }

func (c groupConsumer) Next(ctx context.Context) (projector.Generation, error) {
	gen, err := c.g.Next(ctx)
	if err != nil {
		return nil, err
	}
	return gen, nil
}
