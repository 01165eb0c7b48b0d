package chdb

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/statepipe/statepipe/schema"
)

// Analyst SQL (QueryReadOnly) gets a budget of its own. Queries on one chDB connection run
// one after another, so a slow analyst query on the primary connection held every insert of
// the projector and every report behind it (12 minutes, once). analysts therefore keeps
// apart from the primary:
//
//   - up to SQLLimits.MaxConcurrent analyst connections (opened when first needed, then kept:
//     connections are not churned), each configured with the limits and readonly = 1 last, so
//     no SET or SETTINGS can change them; one query more is a *schema.SQLBusyError (503);
//   - a vet connection for the classifier's probes (schema.VetSQL: parsing only; the engine
//     refuses EXPLAIN in a subquery under readonly = 1, so it cannot run on the others);
//   - a control connection that runs nothing but KILL QUERY, so a cancellation never waits
//     behind a query: each analyst query starts with a comment naming it (schema.SQLTag), and
//     when its context ends (the caller went away, a deadline) or the store closes it is
//     killed — in about 10 ms.
type analysts struct {
	s      *Session
	limits schema.SQLLimits
	tag    string // this store's queries: <tag>-<n>
	seq    atomic.Uint64

	mu       sync.Mutex
	idle     []*conn
	busy     int // slots taken (queries being vetted or run)
	vet      *conn
	closed   bool
	released bool          // the connections are closed
	drained  chan struct{} // closed when busy reaches 0 after close

	ctlMu sync.Mutex // serialises use of ctl with its closing
	ctl   *conn
}

func newAnalysts(s *Session, limits schema.SQLLimits) *analysts {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return &analysts{s: s, limits: limits.OrDefault(), tag: hex.EncodeToString(b[:])}
}

// QueryReadOnly runs one analyst statement: vetted by schema.VetSQL (one SELECT, nothing
// that writes, reads files or reaches out), then run in its canonical form on an analyst
// connection with the store's SQL limits (Config.SQL) and readonly = 1. Errors: a
// *schema.FieldError naming query for a refused statement or a limit reached (the limit
// named), a *schema.SQLBusyError when MaxConcurrent queries already run, the context's error
// when it ended first (the query is killed), schema.ErrSQLUnavailable (wrapping ErrClosed)
// when the store closed under it.
func (st *Store) QueryReadOnly(ctx context.Context, query string) (*schema.Result, error) {
	return st.sql.query(ctx, query)
}

func (a *analysts) query(ctx context.Context, query string) (*schema.Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := a.acquire(); err != nil {
		return nil, err
	}
	defer a.release()
	canonical, err := schema.VetSQL(ctx, a.probe, query)
	if err != nil {
		return nil, err
	}
	c, err := a.conn()
	if err != nil {
		return nil, err
	}
	id := a.tag + "-" + strconv.FormatUint(a.seq.Add(1), 10)
	done := make(chan struct{})
	stop := context.AfterFunc(ctx, func() { a.killUntil(id, done) })
	out, err := c.query([]byte(schema.SQLTag(id)+canonical), "JSONCompact")
	close(done)
	stop()
	a.put(c)
	switch {
	case err == nil:
	case ctx.Err() != nil:
		return nil, fmt.Errorf("cannot run sql: %w", ctx.Err())
	case a.isClosed():
		return nil, fmt.Errorf("cannot run sql: %w: %w", schema.ErrSQLUnavailable, ErrClosed)
	default:
		return nil, schema.SQLQueryError(err, a.limits)
	}
	res, err := decodeResult(out)
	if err != nil {
		return nil, err
	}
	if err := schema.CheckSQLResult(res, a.limits); err != nil {
		return nil, err
	}
	return res, nil
}

// acquire takes a slot, or answers busy at once.
func (a *analysts) acquire() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case a.closed:
		return fmt.Errorf("cannot run sql: %w: %w", schema.ErrSQLUnavailable, ErrClosed)
	case a.busy >= a.limits.MaxConcurrent:
		return &schema.SQLBusyError{Running: a.busy}
	}
	a.busy++
	return nil
}

func (a *analysts) release() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.busy--
	if a.closed && a.busy == 0 {
		a.releaseConns()
		if a.drained != nil {
			close(a.drained)
			a.drained = nil
		}
	}
}

// probe runs one of the classifier's probes on the vet connection.
func (a *analysts) probe(ctx context.Context, q string) (*schema.Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	a.mu.Lock()
	if a.vet == nil && !a.closed {
		c, err := a.s.connect()
		if err == nil {
			// Probes parse and never read data; the settings only shape their output.
			if _, err = c.query([]byte("SET output_format_json_quote_64bit_integers = 0, max_query_size = 4194304"), ""); err != nil {
				a.s.release(c)
			}
		}
		if err != nil {
			a.mu.Unlock()
			return nil, fmt.Errorf("cannot open chdb connection for sql checks: %w", err)
		}
		a.vet = c
	}
	vet := a.vet
	a.mu.Unlock()
	if vet == nil {
		return nil, ErrClosed
	}
	out, err := vet.query([]byte(q), "JSONCompact") // the slot held keeps vet open
	if err != nil {
		return nil, err
	}
	return decodeResult(out)
}

// conn returns an idle analyst connection, or opens and configures one (the slot taken
// bounds how many exist), together with the control connection its query may need.
func (a *analysts) conn() (*conn, error) {
	a.ctlMu.Lock()
	if a.ctl == nil {
		c, err := a.s.connect()
		if err != nil {
			a.ctlMu.Unlock()
			return nil, fmt.Errorf("cannot open chdb control connection: %w", err)
		}
		a.ctl = c
	}
	a.ctlMu.Unlock()
	a.mu.Lock()
	if n := len(a.idle); n > 0 {
		c := a.idle[n-1]
		a.idle = a.idle[:n-1]
		a.mu.Unlock()
		return c, nil
	}
	a.mu.Unlock()
	c, err := a.s.connect()
	if err != nil {
		return nil, fmt.Errorf("cannot open chdb connection for sql: %w", err)
	}
	// As the primary's (sessionSettings): an analyst's text may be as long as the API takes
	// (report.MaxSQLBytes), more than the default 256 KiB of max_query_size.
	settings := append([]schema.SQLSetting{{Name: "output_format_json_quote_64bit_integers", Value: int64(0)},
		{Name: "join_use_nulls", Value: int64(0)}, {Name: "max_query_size", Value: int64(4 << 20)}}, a.limits.EngineSettings()...)
	if _, err := c.query([]byte(schema.SetStatement(settings)), ""); err != nil {
		a.s.release(c)
		return nil, fmt.Errorf("cannot configure chdb connection for sql: %w", err)
	}
	return c, nil
}

// put returns a connection after its query.
func (a *analysts) put(c *conn) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.released {
		a.s.release(c)
		return
	}
	a.idle = append(a.idle, c)
}

func (a *analysts) isClosed() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.closed
}

// killUntil kills query id until it has returned (done): a KILL that came before the query
// started finds nothing, so it is repeated.
func (a *analysts) killUntil(id string, done <-chan struct{}) {
	for {
		a.kill("/* statepipe-sql " + id + " */%")
		select {
		case <-done:
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// kill runs KILL QUERY … ASYNC for the analyst queries whose text matches pattern (LIKE).
func (a *analysts) kill(pattern string) {
	a.ctlMu.Lock()
	defer a.ctlMu.Unlock()
	if a.ctl != nil {
		_, _ = a.ctl.query([]byte("KILL QUERY WHERE query LIKE "+schema.QuoteSQL(pattern)+" ASYNC"), "")
	}
}

// closeWait is how long close waits for killed queries to return.
const closeWait = 5 * time.Second

// close refuses new queries, kills the running ones and closes the connections. It returns
// once they have stopped (milliseconds after the kill), or after closeWait with an error: the
// connections of queries still running are closed when they return, never under them.
func (a *analysts) close() error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil
	}
	a.closed = true
	if a.busy == 0 {
		a.releaseConns()
		a.mu.Unlock()
		return nil
	}
	drained := make(chan struct{})
	a.drained = drained
	a.mu.Unlock()
	deadline := time.After(closeWait)
	for {
		a.kill("/* statepipe-sql " + a.tag + "-%")
		select {
		case <-drained:
			return nil
		case <-deadline:
			a.mu.Lock()
			n := a.busy
			a.mu.Unlock()
			if n == 0 {
				return nil
			}
			return fmt.Errorf("cannot stop %d analyst sql queries within %s: their connections close when they return", n, closeWait)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// releaseConns closes every connection no query uses (a.mu held).
func (a *analysts) releaseConns() {
	if a.released {
		return
	}
	a.released = true
	for _, c := range a.idle {
		a.s.release(c)
	}
	a.idle = nil
	if a.vet != nil {
		a.s.release(a.vet)
		a.vet = nil
	}
	a.ctlMu.Lock()
	if a.ctl != nil {
		a.s.release(a.ctl)
		a.ctl = nil
	}
	a.ctlMu.Unlock()
}
