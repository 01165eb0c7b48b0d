package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// node is one process's HTTP surface and actors: whatever sites and roles it hosts.
type node struct {
	log      *slog.Logger
	reg      *prometheus.Registry
	mux      *http.ServeMux
	ready    atomic.Bool
	listener net.Listener
	scheme   string // http, or https with a certificate
	sites    []*site
	closers  []func()    // run in reverse order after the actors stopped
	http     httpConfig  // limits of the HTTP server (httpserver.go)
	metrics  httpMetrics // of the HTTP server
}

func newNode(log *slog.Logger) *node {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	n := &node{log: log, reg: reg, mux: http.NewServeMux(), http: defaultHTTPConfig(), metrics: newHTTPMetrics(reg)}
	prom := promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
	n.mux.Handle("GET /metrics", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.metricsGuard(prom).ServeHTTP(w, r) // readers' token, when the sites set one
	}))
	n.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		if !n.ready.Load() {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		for _, s := range n.sites {
			if err := s.ready(); err != nil {
				http.Error(w, "site "+s.cfg.Code+": "+err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	return n
}

// listen binds the HTTP address early so the URL can be printed before serving; with a
// certificate and key (PEM files) it serves HTTPS.
func (n *node) listen(addr, certFile, keyFile string) error {
	n.scheme = "http"
	var cfg *tls.Config
	if certFile != "" || keyFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return fmt.Errorf("cannot load --tls.cert/--tls.key: %w", err)
		}
		cfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		n.scheme = "https"
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("cannot listen on %s: %w", addr, err)
	}
	if cfg != nil {
		l = tls.NewListener(l, cfg)
	}
	n.listener = l
	return nil
}

// url returns the node's base URL.
func (n *node) url() string { return n.scheme + "://" + n.listener.Addr().String() }

func (n *node) addSite(s *site) {
	n.sites = append(n.sites, s)
	s.register(n.mux)
}

// waitReady waits until the node runs and every site is ready (what /healthz answers 200
// for), at most timeout.
func (n *node) waitReady(ctx context.Context, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		ready := n.ready.Load()
		for _, s := range n.sites {
			ready = ready && s.ready() == nil
		}
		if ready {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// metricsGuard guards /metrics with the readers' token of the node's sites (the first that
// sets one; tokens are flags of the process).
func (n *node) metricsGuard(h http.Handler) http.Handler {
	for _, s := range n.sites {
		if s.cfg.ReaderToken != "" {
			return roles{admin: token(s.cfg.AdminToken), reader: token(s.cfg.ReaderToken)}.readers(h)
		}
	}
	return h
}

func (n *node) onClose(f func()) { n.closers = append(n.closers, f) }

// run serves HTTP and runs every site's actors until ctx is done or one actor fails, then
// stops them — HTTP first, then each site's actors in reverse order of start — logging how
// long each took, and last how long the whole stop took.
func (n *node) run(ctx context.Context) error {
	var g run.Group
	ctx, cancel := context.WithCancel(ctx)
	var stopping time.Time // when the stop began
	g.Add(func() error { <-ctx.Done(); return nil }, func(error) { stopping = time.Now(); cancel() })

	// Requests' contexts derive from base, cancelled once shutdown's grace has passed: a
	// request still running then (a long SQL query) is told to stop, so the stop keeps its
	// deadline. Not at once: the requests running when a stop begins are reports that take
	// milliseconds, and answering them beats making their clients send them again.
	base, cancelBase := context.WithCancel(context.Background())
	srv := &http.Server{
		Handler:           n.protect(n.mux),
		ReadHeaderTimeout: n.http.ReadHeaderTimeout,
		IdleTimeout:       n.http.IdleTimeout,
		BaseContext:       func(net.Listener) context.Context { return base },
		ConnState:         n.connState,
	}
	g.Add(func() error {
		if err := srv.Serve(n.limitListener(n.listener)); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}, func(error) {
		start := time.Now()
		sctx, c := context.WithTimeout(context.Background(), n.http.ShutdownTimeout)
		defer c()
		grace := time.AfterFunc(n.http.ShutdownGrace, cancelBase)
		err := srv.Shutdown(sctx)
		grace.Stop()
		cancelBase()
		if err != nil {
			_ = srv.Close()
			n.log.Warn("requests still running at the shutdown deadline: connections closed", "timeout", n.http.ShutdownTimeout)
		}
		n.log.Info("stopped http", "took", time.Since(start))
	})
	// run.Group calls the interrupts one after another in the order the actors were added,
	// and each waits for its actor to return: adding a site's actors last first stops them in
	// reverse order of start.
	for _, s := range n.sites {
		for i := len(s.actors) - 1; i >= 0; i-- {
			n.add(&g, s.cfg.Code, s.actors[i])
		}
	}
	n.ready.Store(true)
	err := g.Run()
	n.ready.Store(false)
	for _, s := range n.sites {
		s.close()
	}
	for i := len(n.closers) - 1; i >= 0; i-- {
		n.closers[i]()
	}
	if !stopping.IsZero() {
		n.log.Info("stopped statepipe", "took", time.Since(stopping))
	}
	return err
}

// add runs a site's actor in g, on a context of its own: cancelled when g stops, after the
// actors added before it stopped; the interrupt returns once the actor has.
func (n *node) add(g *run.Group, site string, a actor) {
	actx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	g.Add(func() error {
		defer close(done)
		return a.Run(actx)
	}, func(error) {
		start := time.Now()
		cancel()
		<-done
		n.log.Info("stopped "+a.Name(), "site", site, "took", time.Since(start))
	})
}
