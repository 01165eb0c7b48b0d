package chdb

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
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
//     connections are not churned), each for one site's database — its current database
//     (USE), with the limits, the scope of system.tables and system.columns and readonly = 1
//     last, so no SET or SETTINGS can change them; a query of another database takes an idle
//     connection of its own database, or replaces the oldest idle one; one query more than
//     MaxConcurrent is a *schema.SQLBusyError (503);
//   - a vet connection for the classifier's probes (schema.VetSQL: parsing only; the engine
//     refuses EXPLAIN in a subquery under readonly = 1, so it cannot run on the others);
//   - a control connection that runs nothing but KILL QUERY, so a cancellation never waits
//     behind a query: each analyst query starts with a comment naming it (schema.SQLTag), and
//     when its context ends (the caller went away, a deadline) or the store closes it is
//     killed — in about 10 ms.
//
// The answer streams (conn.stream, decodeJSONCompact): each block the engine produces is
// decoded and counted (schema.SQLResultError) as it arrives, and the first row past
// --sql.max-result-rows or --sql.max-result-bytes stops the query. So the process holds at
// most about the limit of an answer, plus the block being read — not the whole answer as
// JSON in the engine, its copy, its decoding and its rows (a 600 MB answer once took the
// process from 207 MB to 3.3 GB before it was refused).
type analysts struct {
	s      *Session
	limits schema.SQLLimits
	tag    string // this store's queries: <tag>-<n>
	seq    atomic.Uint64

	mu       sync.Mutex
	idle     []analystConn // oldest first
	open     int           // analyst connections open, idle or running a query
	busy     int           // slots taken (queries being vetted or run)
	vet      *conn
	closed   bool
	released bool          // the connections are closed
	drained  chan struct{} // closed when busy reaches 0 after close

	ctlMu sync.Mutex // serialises use of ctl with its closing
	ctl   *conn
}

// analystConn is an analyst connection and the database it is scoped to.
type analystConn struct {
	c  *conn
	db string
}

func newAnalysts(s *Session, limits schema.SQLLimits) *analysts {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return &analysts{s: s, limits: limits.OrDefault(), tag: hex.EncodeToString(b[:])}
}

// QueryReadOnly runs one analyst statement of the site whose database is database: vetted by
// schema.VetSQL (one SELECT, nothing that writes, reads files, reaches out or reads another
// database), then run in its canonical form on an analyst connection whose current database is
// database, with the store's SQL limits (Config.SQL) and readonly = 1; its answer is counted
// as it streams. Errors: a *schema.FieldError naming query for a refused statement or a
// limit reached (the limit named), a *schema.SQLBusyError when MaxConcurrent queries already
// run, the context's error when it ended first (the query is killed),
// schema.ErrSQLUnavailable (wrapping ErrClosed) when the store closed under it.
func (st *Store) QueryReadOnly(ctx context.Context, database, query string) (*schema.Result, error) {
	return st.sql.query(ctx, database, query)
}

// enter checks what every analyst statement needs before it is vetted — a live context, a
// site's database — and takes a slot (a *schema.SQLBusyError when none is free); the caller
// releases it.
func (a *analysts) enter(ctx context.Context, database string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := schema.CheckSQLDatabase(database); err != nil {
		return err
	}
	return a.acquire()
}

func (a *analysts) query(ctx context.Context, database, query string) (*schema.Result, error) {
	if err := a.enter(ctx, database); err != nil {
		return nil, err
	}
	defer a.release()
	canonical, err := schema.VetSQL(ctx, a.probe, database, query)
	if err != nil {
		return nil, err
	}
	res := &schema.Result{Columns: []schema.Column{}, Rows: [][]any{}}
	var size int64
	header := func(cols []schema.Column) error {
		if len(res.Rows) == 0 && len(res.Columns) == 0 {
			res.Columns = cols
			return nil
		}
		if !slices.Equal(cols, res.Columns) {
			return fmt.Errorf("cannot decode chdb result: a block has columns %v, the first had %v", cols, res.Columns)
		}
		return nil
	}
	row := func(r []any) error {
		size += schema.RowBytes(r)
		if err := schema.SQLResultError(int64(len(res.Rows)+1), size, a.limits); err != nil {
			return err // stops the query
		}
		res.Rows = append(res.Rows, r)
		return nil
	}
	err = a.run(ctx, database, canonical, func(c *conn, text []byte) error {
		return c.stream(text, "JSONCompact", func(chunk []byte) error {
			return decodeJSONCompact(chunk, header, row)
		})
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// run runs a vetted statement of database with fn on an analyst connection (the slot is the
// caller's), its text tagged so that the statement is killed when ctx ends, and maps the
// error: a limit of the answer (a *schema.FieldError) as it is, the context's, the store
// closing (schema.ErrSQLUnavailable), the engine's refusal (schema.SQLQueryError).
func (a *analysts) run(ctx context.Context, database, canonical string, fn func(c *conn, text []byte) error) error {
	c, err := a.conn(database)
	if err != nil {
		return err
	}
	id := a.tag + "-" + strconv.FormatUint(a.seq.Add(1), 10)
	done := make(chan struct{})
	stop := context.AfterFunc(ctx, func() { a.killUntil(id, done) })
	err = fn(c, []byte(schema.SQLTag(id)+canonical))
	close(done)
	stop()
	a.put(c, database)
	var fe *schema.FieldError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &fe): // a limit of the answer: the query was stopped
		return err
	case ctx.Err() != nil:
		return fmt.Errorf("cannot run sql: %w", ctx.Err())
	case a.isClosed():
		return fmt.Errorf("cannot run sql: %w: %w", schema.ErrSQLUnavailable, ErrClosed)
	default:
		return schema.SQLQueryError(err, a.limits)
	}
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

// conn returns an idle analyst connection of database, or opens and configures one (the
// slot taken bounds how many run; one idle for another database is closed to make room),
// together with the control connection its query may need.
func (a *analysts) conn(database string) (*conn, error) {
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
	for i := len(a.idle) - 1; i >= 0; i-- {
		if a.idle[i].db == database {
			c := a.idle[i].c
			a.idle = slices.Delete(a.idle, i, i+1)
			a.mu.Unlock()
			return c, nil
		}
	}
	var evict *conn
	if a.open >= a.limits.MaxConcurrent && len(a.idle) > 0 {
		evict = a.idle[0].c
		a.idle = a.idle[1:]
		a.open--
	}
	a.open++
	a.mu.Unlock()
	if evict != nil {
		a.s.release(evict)
	}
	c, err := a.openConn(database)
	if err != nil {
		a.mu.Lock()
		a.open--
		a.mu.Unlock()
		return nil, err
	}
	return c, nil
}

// openConn opens an analyst connection scoped to database.
func (a *analysts) openConn(database string) (*conn, error) {
	c, err := a.s.connect()
	if err != nil {
		return nil, fmt.Errorf("cannot open chdb connection for sql: %w", err)
	}
	// As the primary's (sessionSettings): an analyst's text may be as long as the API takes
	// (report.MaxSQLBytes), more than the default 256 KiB of max_query_size.
	settings := append([]schema.SQLSetting{{Name: "output_format_json_quote_64bit_integers", Value: int64(0)},
		{Name: "join_use_nulls", Value: int64(0)}, {Name: "max_query_size", Value: int64(4 << 20)}}, a.limits.EngineSettings(database)...)
	for _, q := range []string{"USE `" + database + "`", schema.SetStatement(settings)} {
		if _, err := c.query([]byte(q), ""); err != nil {
			a.s.release(c)
			return nil, fmt.Errorf("cannot configure chdb connection for sql in database %s: %w", database, err)
		}
	}
	return c, nil
}

// put returns a connection of database after its query.
func (a *analysts) put(c *conn, database string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.released {
		a.open--
		a.s.release(c)
		return
	}
	a.idle = append(a.idle, analystConn{c: c, db: database})
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
	for _, ac := range a.idle {
		a.s.release(ac.c)
	}
	a.open -= len(a.idle)
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
