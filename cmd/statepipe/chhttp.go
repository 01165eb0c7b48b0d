package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/statepipe/statepipe/chhttp"
	"github.com/statepipe/statepipe/schema"
)

// chHTTPConfig is ClickHouse's HTTP interface on an embedded site (chhttp): analysts' own
// ClickHouse clients against `statepipe run`, read-only.
type chHTTPConfig struct {
	Listen string
	// Explicit: Listen was given (--clickhouse-http.listen). Its default is ClickHouse's own
	// port, which a ClickHouse server or another statepipe may hold: the default that cannot
	// be bound is a warning, an address given that cannot be bound an error.
	Explicit bool
	// Listener, when set, is used instead of binding Listen (tests bind 127.0.0.1:0).
	Listener net.Listener
}

// defaultCHHTTPListen is --clickhouse-http.listen's default.
const defaultCHHTTPListen = "127.0.0.1:8123"

// chListenFlag is --clickhouse-http.listen: it records that the address was given.
type chListenFlag struct{ c *chHTTPConfig }

func (f chListenFlag) String() string {
	if f.c == nil {
		return ""
	}
	return f.c.Listen
}

func (f chListenFlag) Set(v string) error {
	f.c.Listen, f.c.Explicit = v, true
	return nil
}

func (c *chHTTPConfig) registerFlags(fs *flag.FlagSet) {
	c.Listen = defaultCHHTTPListen
	fs.Var(chListenFlag{c}, "clickhouse-http.listen",
		"`address` of ClickHouse's HTTP interface on the embedded site, read-only, for analysts' own ClickHouse clients (clickhouse-connect, @clickhouse/client, JDBC, Grafana's ClickHouse datasource): every query goes through the guard and limits of /v1/sql, the password is the reader or admin token. 8123 is ClickHouse's own port, so clients find it as they would a server; loopback by default, as the site's other listeners. Empty: off. Not served with --clickhouse.dsn (analysts use the server itself) nor for several sites in one process (--topology without --site); the default, when it cannot be bound, is a warning")
}

// startCHHTTP binds the interface's address for site s on the embedded store st and adds the
// actor that serves it, with the node's HTTP limits (httpserver.go).
func (n *node) startCHHTTP(ctx context.Context, cfg chHTTPConfig, s *site, st chhttp.Store, sqlLimits schema.SQLLimits) error {
	version, tz := "", ""
	if res, err := s.store.Query(ctx, "SELECT version(), timezone()"); err == nil && len(res.Rows) == 1 && len(res.Rows[0]) == 2 {
		version, _ = res.Rows[0][0].(string)
		tz, _ = res.Rows[0][1].(string)
	}
	h, err := chhttp.New(chhttp.Config{Site: s.cfg.Code, Database: s.db, Store: st, ReaderToken: s.cfg.ReaderToken,
		AdminToken: s.cfg.AdminToken, Limits: sqlLimits, Version: version, Timezone: tz})
	if err != nil {
		return err
	}
	l := cfg.Listener
	if l == nil {
		if l, err = net.Listen("tcp", cfg.Listen); err != nil && !cfg.Explicit {
			n.log.Warn("ClickHouse's HTTP interface is off: its default address is taken (a ClickHouse server, or another statepipe?); give --clickhouse-http.listen ADDR, or an empty one to silence this",
				"address", cfg.Listen, "err", err)
			return nil
		} else if err != nil {
			return fmt.Errorf("cannot listen on %s for ClickHouse's HTTP interface (--clickhouse-http.listen; empty turns it off): %w", cfg.Listen, err)
		}
	}
	n.onClose(func() { _ = l.Close() })
	s.addActor(actorFunc{name: "clickhouse-http", run: func(ctx context.Context) error { return n.serveUntil(ctx, l, h) }})
	n.log.Info("serving ClickHouse's HTTP interface (read-only)", "site", s.cfg.Code, "url", "http://"+l.Addr().String())
	return nil
}

// serveUntil serves h on l with the node's limits until ctx is done, then shuts down as the
// node's own server does: running requests get the grace, then their contexts end.
func (n *node) serveUntil(ctx context.Context, l net.Listener, h http.Handler) error {
	base, cancelBase := context.WithCancel(context.Background())
	defer cancelBase()
	srv := &http.Server{
		Handler:           n.protect(h),
		ReadHeaderTimeout: n.http.ReadHeaderTimeout,
		IdleTimeout:       n.http.IdleTimeout,
		BaseContext:       func(net.Listener) context.Context { return base },
		ConnState:         n.connState,
		ErrorLog:          slog.NewLogLogger(n.log.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(n.limitListener(l)) }()
	select {
	case err := <-served:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), n.http.ShutdownTimeout)
	defer cancel()
	grace := time.AfterFunc(n.http.ShutdownGrace, cancelBase)
	defer grace.Stop()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
	}
	<-served
	return nil
}

// welcomeCHHTTP is the welcome's line for the interface, where it is served.
func welcomeCHHTTP(cfg runConfig) string {
	if cfg.ClickHouseHTTP.Listen == "" || cfg.Store.ClickHouse.DSN != "" || (cfg.Hierarchy.Topology != nil && !cfg.OneSite) {
		return ""
	}
	return "\n  clickhouse      http://" + cfg.ClickHouseHTTP.Listen + "   (ClickHouse's HTTP interface, read-only: clickhouse-connect, @clickhouse/client, JDBC)"
}
