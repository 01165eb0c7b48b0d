package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"golang.org/x/net/netutil"

	"github.com/statepipe/statepipe/schema"
)

// The node's HTTP server faces machines it does not control: one request must never crash,
// freeze or fill it. What a connection may hold is bounded in time (headers, idle keep-alive,
// the pace of request bodies and answers, each counted over the whole body or answer), in
// number (connections, and connections of one source address), and a panic in any handler is
// one request's 500, not the process's end. Stopping cancels what still runs after a grace
// period, so shutdown keeps its deadline.

// httpConfig bounds what clients can hold of the node's HTTP server.
type httpConfig struct {
	// ReadHeaderTimeout bounds the wait for a request's headers, and the TLS handshake.
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes a keep-alive connection that sent no new request.
	IdleTimeout time.Duration
	// MaxConns bounds the open connections; more wait in the kernel's accept queue.
	MaxConns int
	// MaxConnsPerAddress bounds the open connections of one source address (IPv6: its /64);
	// more are closed as soon as they are accepted. 0 is no bound.
	MaxConnsPerAddress int
	// MinRate (bytes/s) is the slowest a request body or an answer may move, over the whole
	// body or answer, once RateGrace has passed: a body's n bytes must have arrived within
	// RateGrace + n/MinRate of the request's start; an answer's n bytes must have been taken
	// by the client within RateGrace + n/MinRate of time spent writing them.
	MinRate   int64
	RateGrace time.Duration
	// ShutdownGrace is how long running requests may finish at shutdown before their
	// contexts are cancelled; ShutdownTimeout bounds the whole stop.
	ShutdownGrace   time.Duration
	ShutdownTimeout time.Duration
}

// registerFlags registers the HTTP server's flags under prefix.
func (c *httpConfig) registerFlags(prefix string, fs *flag.FlagSet) {
	fs.DurationVar(&c.ReadHeaderTimeout, prefix+"read-header-timeout", 10*time.Second,
		"longest a client may take to send a request's headers (and the TLS handshake); the connection is closed after it (slow headers hold a connection for nothing)")
	fs.DurationVar(&c.IdleTimeout, prefix+"idle-timeout", 30*time.Second,
		"how long a keep-alive connection may wait for its next request before it is closed; agents report minutes apart, and each open connection holds a file descriptor and about 10 KiB")
	fs.IntVar(&c.MaxConns, prefix+"max-conns", 10000,
		"most client connections open at once; more wait in the kernel's accept queue until one closes. Keep it well below ulimit -n, whose file descriptors the Kafka clients and the store share")
	fs.IntVar(&c.MaxConnsPerAddress, prefix+"max-conns-per-address", 1000,
		"most client connections open at once from one source address (an IPv6 address counts by its /64); more are closed as soon as they are accepted, so one address cannot hold every one of --"+prefix+"max-conns. Estates report through NAT and proxies, where one address carries many agents: 1,000 leaves them room (agents report minutes apart, on short connections); raise it for a proxy in front of more. 0 = off")
	fs.Int64Var(&c.MinRate, prefix+"min-rate", 32<<10,
		"slowest a request body or an answer may move, in bytes/s over the whole of it, once --"+prefix+"rate-grace has passed (n bytes within the grace + n / this): a slower client is cut (a report body: 408) and its connection closed. 32 KiB/s makes a held connection cost a client real bandwidth and still lets an 8 MiB report through a 256 kbit/s link")
	fs.DurationVar(&c.RateGrace, prefix+"rate-grace", 5*time.Second,
		"time a request body or an answer gets before --"+prefix+"min-rate applies (connection set-up, TCP slow start, a pause)")
	fs.DurationVar(&c.ShutdownGrace, prefix+"shutdown-grace", 2*time.Second,
		"at shutdown, how long running requests may finish before their contexts are cancelled (a long SQL query is stopped then, a report still waiting on Kafka answered 503); new connections are refused at once. Reports take milliseconds")
	fs.DurationVar(&c.ShutdownTimeout, prefix+"shutdown-timeout", 10*time.Second,
		"longest the HTTP server takes to stop; connections still open then are closed")
}

// defaultHTTPConfig returns the flags' defaults.
func defaultHTTPConfig() httpConfig {
	var c httpConfig
	c.registerFlags("", flag.NewFlagSet("", flag.ContinueOnError))
	return c
}

// validate reports a config that cannot work.
func (c httpConfig) validate() error {
	switch {
	case c.ReadHeaderTimeout <= 0 || c.IdleTimeout <= 0 || c.RateGrace <= 0 || c.ShutdownTimeout <= 0:
		return fmt.Errorf("cannot use http timeouts (read-header %s, idle %s, rate-grace %s, shutdown %s): each must be positive",
			c.ReadHeaderTimeout, c.IdleTimeout, c.RateGrace, c.ShutdownTimeout)
	case c.MaxConns < 1:
		return fmt.Errorf("cannot use http max-conns %d: must be at least 1", c.MaxConns)
	case c.MaxConnsPerAddress < 0:
		return fmt.Errorf("cannot use http max-conns-per-address %d: must be 0 (off) or more", c.MaxConnsPerAddress)
	case c.MinRate < 1:
		return fmt.Errorf("cannot use http min-rate %d: must be at least 1 byte/s", c.MinRate)
	case c.ShutdownGrace < 0 || c.ShutdownGrace >= c.ShutdownTimeout:
		return fmt.Errorf("cannot use http shutdown-grace %s: must be at least 0 and below shutdown-timeout %s", c.ShutdownGrace, c.ShutdownTimeout)
	}
	return nil
}

// configureHTTP sets the HTTP server's limits; call it before run. Without it, or with the
// zero httpConfig (a runConfig built in code: tests, bench), the node uses the flags' defaults.
func (n *node) configureHTTP(c httpConfig) error {
	if c == (httpConfig{}) {
		c = defaultHTTPConfig()
	}
	if err := c.validate(); err != nil {
		return err
	}
	n.http = c
	return nil
}

// httpMetrics are the node's HTTP server metrics.
type httpMetrics struct {
	panics  prometheus.Counter
	slow    *prometheus.CounterVec
	conns   prometheus.Gauge
	refused prometheus.Counter
}

func newHTTPMetrics(reg prometheus.Registerer) httpMetrics {
	f := promauto.With(reg)
	return httpMetrics{
		panics: f.NewCounter(prometheus.CounterOpts{Name: "statepipe_http_panics_total",
			Help: "Requests whose handler panicked: answered 500 (or cut, if the answer had begun) and logged with the stack."}),
		slow: f.NewCounterVec(prometheus.CounterOpts{Name: "statepipe_http_slow_clients_total",
			Help: "Requests cut because the client sent its body (request) or read the answer (response) slower than --http.min-rate."},
			[]string{"direction"}),
		conns: f.NewGauge(prometheus.GaugeOpts{Name: "statepipe_http_open_connections",
			Help: "Client connections open (at most --http.max-conns)."}),
		refused: f.NewCounter(prometheus.CounterOpts{Name: "statepipe_http_connections_refused_total",
			Help: "Connections closed as soon as they were accepted: their source address (IPv6: its /64) already had --http.max-conns-per-address open."}),
	}
}

// limitListener bounds the connections the server takes from l: at most MaxConns open (more
// wait in the kernel's accept queue), and at most MaxConnsPerAddress of one source address
// (more are closed as soon as they are accepted, without taking one of MaxConns: with one cap
// for everyone, 60 idle sockets from one address under --http.max-conns 50 left a /healthz from
// elsewhere waiting until it timed out).
func (n *node) limitListener(l net.Listener) net.Listener {
	if n.http.MaxConnsPerAddress > 0 {
		l = &addrLimitListener{Listener: l, max: n.http.MaxConnsPerAddress, refused: n.metrics.refused, open: map[string]int{}}
	}
	return netutil.LimitListener(l, n.http.MaxConns)
}

// addrLimitListener accepts at most max open connections per source address.
type addrLimitListener struct {
	net.Listener
	max     int
	refused prometheus.Counter

	mu   sync.Mutex
	open map[string]int // open connections per addressKey
}

func (l *addrLimitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		key := addressKey(c.RemoteAddr())
		l.mu.Lock()
		over := l.open[key] >= l.max
		if !over {
			l.open[key]++
		}
		l.mu.Unlock()
		if over {
			l.refused.Inc()
			_ = c.Close()
			continue
		}
		return &addrConn{Conn: c, l: l, key: key}, nil
	}
}

// addressKey is what the per-address bound counts by: the IP of a TCP address, its /64 for
// IPv6 (a host usually holds a whole /64).
func addressKey(a net.Addr) string {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return a.String()
	}
	if ip4 := ta.IP.To4(); ip4 != nil {
		return ip4.String()
	}
	return ta.IP.Mask(net.CIDRMask(64, 128)).String() + "/64"
}

// addrConn gives its address's place back when it closes.
type addrConn struct {
	net.Conn
	l    *addrLimitListener
	key  string
	once sync.Once
}

func (c *addrConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.mu.Lock()
		if c.l.open[c.key]--; c.l.open[c.key] <= 0 {
			delete(c.l.open, c.key)
		}
		c.l.mu.Unlock()
	})
	return err
}

// connState counts open connections.
func (n *node) connState(_ net.Conn, s http.ConnState) {
	switch s {
	case http.StateNew:
		n.metrics.conns.Inc()
	case http.StateClosed, http.StateHijacked:
		n.metrics.conns.Dec()
	}
}

// protect wraps the node's routes: request bodies and answers must keep the minimum rate, and
// a panic becomes a 500.
func (n *node) protect(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		pw := &pacedWriter{ResponseWriter: w, rc: http.NewResponseController(w), cfg: &n.http, slow: n.metrics.slow}
		// Writes of an earlier request on this connection left a deadline behind.
		_ = pw.rc.SetWriteDeadline(time.Time{})
		defer func() {
			if v := recover(); v != nil {
				n.recovered(pw, r, v)
			}
			// The server flushes what is buffered after the handler returned: bounded too.
			_ = pw.rc.SetWriteDeadline(time.Now().Add(n.http.RateGrace))
		}()
		if r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
			// Also bounds what the server discards of a body the handler did not read. The
			// request is copied, not changed: the server decides from its own body whether
			// the connection can be reused.
			_ = pw.rc.SetReadDeadline(start.Add(n.http.RateGrace))
			r2 := *r
			r2.Body = &pacedBody{ReadCloser: r.Body, w: pw, start: start}
			r = &r2
		}
		next.ServeHTTP(pw, r)
	})
}

// recovered answers a request whose handler panicked with v: 500 with the error body when
// nothing was written yet; otherwise the connection is cut, so the client sees a broken answer
// rather than a short one. http.ErrAbortHandler is the handler's own way to cut; passed on.
func (n *node) recovered(w *pacedWriter, r *http.Request, v any) {
	if v == http.ErrAbortHandler { // compared as net/http compares it
		panic(v)
	}
	n.metrics.panics.Inc()
	n.log.Error("panic serving a request", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr,
		"panic", fmt.Sprint(v), "answered", !w.wrote, "stack", string(debug.Stack()))
	if w.wrote {
		panic(http.ErrAbortHandler)
	}
	h := w.Header()
	clear(h)
	h.Set("Content-Type", "application/json")
	h.Set("Connection", "close") // the request's body and state are unknown
	w.WriteHeader(http.StatusInternalServerError)
	_ = json.NewEncoder(w).Encode(schema.ErrorBody{Error: schema.ErrorDetail{Code: schema.CodeInternal,
		Message: "internal error while handling the request; it was logged at the server"}})
}

// allowance is how long n bytes may take at the minimum rate, after the grace.
func (c *httpConfig) allowance(n int64) time.Duration {
	return c.RateGrace + time.Duration(float64(n)/float64(c.MinRate)*float64(time.Second))
}

// pacedBody is a request body that must arrive at the minimum rate: before each read the
// connection's read deadline becomes the request's start + grace + (bytes so far / rate).
type pacedBody struct {
	io.ReadCloser
	w     *pacedWriter
	start time.Time
	n     int64
	done  bool
}

func (b *pacedBody) Read(p []byte) (int, error) {
	if b.done {
		return b.ReadCloser.Read(p)
	}
	_ = b.w.rc.SetReadDeadline(b.start.Add(b.w.cfg.allowance(b.n)))
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	switch {
	case errors.Is(err, io.EOF):
		// No deadline after the body: the server's read that watches for the client going
		// away must not time out and cancel a long-running request.
		b.done = true
		_ = b.w.rc.SetReadDeadline(time.Time{})
	case errors.Is(err, os.ErrDeadlineExceeded):
		b.done = true
		b.w.slow.WithLabelValues("request").Inc()
		b.w.Header().Set("Connection", "close")
		err = &slowBodyError{err: err, n: b.n, took: time.Since(b.start), cfg: b.w.cfg}
	}
	return n, err
}

// slowBodyError is a body cut for its pace; errors.Is(err, os.ErrDeadlineExceeded) holds.
type slowBodyError struct {
	err  error
	n    int64
	took time.Duration
	cfg  *httpConfig
}

func (e *slowBodyError) Error() string {
	return fmt.Sprintf("the body arrived slower than %d bytes/s after a %s grace (%d bytes in %s)",
		e.cfg.MinRate, e.cfg.RateGrace, e.n, e.took.Round(time.Millisecond))
}

func (e *slowBodyError) Unwrap() error { return e.err }

// pacedWriter is a ResponseWriter whose answer must reach the client at the minimum rate,
// twice over:
//
//   - each piece of at most writeChunk bytes must be taken within the grace plus its size at
//     the rate, so a client that stops reading is cut after about the grace, whatever the
//     kernel's buffers took before (several MB, which the next rule counts as sent);
//   - the whole answer is counted as pacedBody counts a body: its first n bytes must be taken
//     within the grace plus n at the rate of time spent writing, so a client that reads
//     steadily but slower than the rate is cut within about the grace plus the answer's size
//     at the rate (plus what the kernel buffered). Each piece once got a fresh grace of its
//     own: a reader taking every piece just within it held a large answer for as long as the
//     answer lasted at its pace — hours.
//
// Only time spent writing counts: the handler's own pauses between writes are not the
// client's. It remembers whether the answer began.
type pacedWriter struct {
	http.ResponseWriter
	rc      *http.ResponseController
	cfg     *httpConfig
	slow    *prometheus.CounterVec
	wrote   bool
	cut     bool
	n       int64         // bytes of the answer written so far
	writing time.Duration // time spent in writes so far
}

func (w *pacedWriter) WriteHeader(code int) {
	if code >= 200 {
		w.wrote = true
	}
	w.ResponseWriter.WriteHeader(code)
}

// writeChunk is the most a write is given its own deadline for.
const writeChunk = 64 << 10

func (w *pacedWriter) Write(p []byte) (int, error) {
	w.wrote = true
	if len(p) == 0 {
		return w.ResponseWriter.Write(p)
	}
	written := 0
	for len(p) > 0 {
		chunk := p[:min(len(p), writeChunk)]
		start := w.deadline(int64(len(chunk)))
		n, err := w.ResponseWriter.Write(chunk)
		w.writing += time.Since(start)
		w.n += int64(n)
		written += n
		if err != nil {
			w.checkCut(err)
			return written, err
		}
		p = p[n:]
	}
	return written, nil
}

// deadline sets the write deadline for the next more bytes of the answer and returns now.
func (w *pacedWriter) deadline(more int64) time.Time {
	now := time.Now()
	_ = w.rc.SetWriteDeadline(now.Add(min(w.cfg.allowance(more), w.cfg.allowance(w.n+more)-w.writing)))
	return now
}

func (w *pacedWriter) FlushError() error {
	w.wrote = true
	start := w.deadline(0)
	err := w.rc.Flush()
	w.writing += time.Since(start)
	w.checkCut(err)
	return err
}

func (w *pacedWriter) Flush() { _ = w.FlushError() }

func (w *pacedWriter) checkCut(err error) {
	if !w.cut && errors.Is(err, os.ErrDeadlineExceeded) {
		w.cut = true
		w.slow.WithLabelValues("response").Inc()
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (w *pacedWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
