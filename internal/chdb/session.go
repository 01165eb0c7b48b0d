package chdb

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"unsafe"
)

// Session is the process's chDB engine and its primary connection. chDB allows one data path
// per process, so Open hands out the same session to every caller with the same data path and
// refuses a different one; sites hosted in one process share it and keep apart by database.
//
// Queries on one chDB connection run one at a time (the library queues them), so work that
// must not wait behind another's — analyst SQL, and the KILL QUERY that stops it — gets
// connections of its own from connect: several connections on the same path share the
// engine and run concurrently.
type Session struct {
	lib     *lib
	primary *conn
	path    string
	args    []string // chdb_connect's argv, for further connections on the same path

	mu     sync.Mutex // guards refs, extra and closed
	refs   int
	extra  int // further connections open (connect)
	closed bool
}

// conn is one chDB connection (chdb_connection*).
type conn struct {
	lib *lib
	p   unsafe.Pointer
	// mu holds a statement and, after a failed one, the statement that flushes its leftovers
	// (query) together, and keeps close from freeing the connection under a statement. The
	// engine runs a connection's statements one at a time anyway.
	mu sync.Mutex
}

var (
	sessionMu sync.Mutex
	current   *Session
)

// ErrClosed is returned by queries on a closed session.
var ErrClosed = errors.New("chdb session is closed")

// Open returns the process's chDB session for data directory path (":memory:" or empty for
// in memory), loading libPath (or the first library found, see LibraryCandidates).
func Open(libPath, path string) (*Session, error) {
	l, err := load(libPath)
	if err != nil {
		return nil, err
	}
	sessionMu.Lock()
	defer sessionMu.Unlock()
	if current != nil {
		if current.path != path {
			return nil, fmt.Errorf("cannot open chdb at %q: this process already has it open at %q (one chDB data path per process)", path, current.path)
		}
		current.mu.Lock()
		current.refs++
		current.mu.Unlock()
		return current, nil
	}
	args := []string{"clickhouse"}
	if path != "" && path != ":memory:" {
		args = append(args, "--path="+path)
	}
	c, err := l.open(args)
	if err != nil {
		return nil, fmt.Errorf("cannot open chdb at %q: %w", path, err)
	}
	current = &Session{lib: l, primary: c, path: path, args: args, refs: 1}
	return current, nil
}

// open calls chdb_connect and puts the Go runtime's fault handlers back, which connecting
// resets (signals.go): after every connect, or a nil dereference anywhere in Go kills the
// process instead of panicking.
func (l *lib) open(args []string) (*conn, error) {
	cargs := make([][]byte, len(args))
	argv := make([]unsafe.Pointer, len(args)+1)
	for i, a := range args {
		cargs[i] = cString(a)
		argv[i] = unsafe.Pointer(&cargs[i][0])
	}
	p := l.connect(int32(len(args)), unsafe.Pointer(&argv[0]))
	runtime.KeepAlive(cargs)
	if err := l.goSignals.restore(); err != nil {
		if p != nil {
			l.closeConn(p)
		}
		return nil, err
	}
	if p == nil {
		return nil, errors.New("chdb_connect returned no connection")
	}
	return &conn{lib: l, p: p}, nil
}

// connect opens a further connection on the session's engine (same path). Its queries run
// concurrently with the primary's; settings changed with SET stay on it. Close it (close)
// before releasing the session: closing the last connection stops the engine.
func (s *Session) connect() (*conn, error) {
	sessionMu.Lock()
	defer sessionMu.Unlock()
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	c, err := s.lib.open(s.args)
	if err != nil {
		return nil, fmt.Errorf("cannot open a further chdb connection at %q: %w", s.path, err)
	}
	s.mu.Lock()
	s.extra++
	s.mu.Unlock()
	return c, nil
}

// release closes a connection from connect.
func (s *Session) release(c *conn) {
	sessionMu.Lock()
	defer sessionMu.Unlock()
	c.close()
	s.mu.Lock()
	s.extra--
	s.mu.Unlock()
}

// Close releases the caller's reference; the last one closes the primary connection.
func (s *Session) Close() error {
	sessionMu.Lock()
	defer sessionMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.refs--
	if s.refs > 0 {
		return nil
	}
	s.closed = true
	// A further connection still open (an analyst query that would not stop within
	// closeWait) keeps the engine up: chDB counts the engine's connections, and that one is
	// closed when its query returns.
	s.primary.close()
	if current == s {
		current = nil
	}
	return nil
}

// Query runs one statement on the primary connection (query may carry inline insert data
// after FORMAT, binary-safe) and returns the output in format ("" for none). Concurrent
// callers are safe; the engine runs their statements one after another.
func (s *Session) Query(query []byte, format string) ([]byte, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	s.mu.Unlock()
	return s.primary.query(query, format)
}

// flushSQL is run after a failed statement; its own output is dropped with the leftovers.
var flushSQL = []byte("SELECT 1 FORMAT Null")

// query runs one statement on c.
//
// A statement that fails (an error, a kill, a limit) leaves what it had written on the
// connection, and 26.5 hands it out in front of the next statement's output — a JSON document
// before the next one (a decoding error), or RowBinary rows in front of the next Each's rows
// (rows that were never asked for); the failed query also stays in system.processes until
// then. So after a failure the connection runs flushSQL before anyone else's statement, and
// its output is dropped.
func (c *conn) query(query []byte, format string) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.p == nil {
		return nil, ErrClosed
	}
	out, _, err := c.run(query, format)
	if err != nil {
		_, _, _ = c.run(flushSQL, "")
	}
	return out, err
}

// queryStats is query, with what the statement read from tables.
func (c *conn) queryStats(query []byte, format string) ([]byte, readStats, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.p == nil {
		return nil, readStats{}, ErrClosed
	}
	out, st, err := c.run(query, format)
	if err != nil {
		_, _, _ = c.run(flushSQL, "")
	}
	return out, st, err
}

// readStats is what a result (or a streamed chunk: what was read since the chunk before)
// says the statement read from tables; zero in a library that does not say.
type readStats struct{ rows, bytes uint64 }

func (c *conn) readStats(res unsafe.Pointer) readStats {
	if c.lib.resultStorageRowsRead == nil || c.lib.resultStorageBytesRead == nil {
		return readStats{}
	}
	return readStats{c.lib.resultStorageRowsRead(res), c.lib.resultStorageBytesRead(res)}
}

func (c *conn) run(query []byte, format string) ([]byte, readStats, error) {
	var qp unsafe.Pointer
	if len(query) > 0 {
		qp = unsafe.Pointer(&query[0])
	}
	f := cString(format)
	res := c.lib.queryN(*(*unsafe.Pointer)(c.p), qp, uintptr(len(query)), unsafe.Pointer(&f[0]), uintptr(len(format)))
	runtime.KeepAlive(query)
	runtime.KeepAlive(f)
	if res == nil {
		return nil, readStats{}, errors.New("chdb_query returned no result")
	}
	defer c.lib.destroyResult(res)
	if msg := goString(c.lib.resultError(res)); msg != "" {
		return nil, readStats{}, errors.New(msg)
	}
	st := c.readStats(res)
	n := c.lib.resultLength(res)
	if n == 0 {
		return nil, st, nil
	}
	buf := c.lib.resultBuffer(res)
	out := make([]byte, n)
	copy(out, unsafe.Slice((*byte)(buf), n))
	return out, st, nil
}

// noActiveStream is what 26.5 answers a fetch after a stream that ended with the chunk
// before (a statement that finished within one fetch ends so, not with an empty chunk).
const noActiveStream = "No active streaming query"

// stream runs one statement on c and passes its output to fn chunk by chunk, as the engine
// produces it (chdb_stream_query_n, then chdb_stream_fetch_result until an empty chunk, or
// noActiveStream after one): nothing holds the whole output. In 26.5 a chunk is one block,
// in a JSON format a document of its own. chunk is the library's memory, valid only during
// the call: fn must not keep it. An error from fn stops the statement
// (chdb_stream_cancel_query) and is returned. As after query, a failed or stopped statement's
// leftovers are flushed before the connection runs anything else.
func (c *conn) stream(query []byte, format string, fn func(chunk []byte) error) error {
	return c.streamRows(query, format, func(chunk []byte, _ uint64, _ readStats) error { return fn(chunk) })
}

// streamRows is stream, passing fn each chunk's rows too (chdb_result_rows_read of a chunk:
// the rows of the answer it holds) and what the statement read from tables since the chunk
// before (their sum is the statement's).
func (c *conn) streamRows(query []byte, format string, fn func(chunk []byte, rows uint64, read readStats) error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.p == nil {
		return ErrClosed
	}
	err := c.runStream(query, format, fn)
	if err != nil {
		_, _, _ = c.run(flushSQL, "")
	}
	return err
}

func (c *conn) runStream(query []byte, format string, fn func(chunk []byte, rows uint64, read readStats) error) error {
	var qp unsafe.Pointer
	if len(query) > 0 {
		qp = unsafe.Pointer(&query[0])
	}
	f := cString(format)
	cp := *(*unsafe.Pointer)(c.p)
	res := c.lib.streamQueryN(cp, qp, uintptr(len(query)), unsafe.Pointer(&f[0]), uintptr(len(format)))
	runtime.KeepAlive(query)
	runtime.KeepAlive(f)
	if res == nil {
		return errors.New("chdb_stream_query returned no result")
	}
	defer c.lib.destroyResult(res)
	if msg := goString(c.lib.resultError(res)); msg != "" {
		return errors.New(msg)
	}
	for chunks := 0; ; chunks++ {
		chunk := c.lib.streamFetch(cp, res)
		if chunk == nil {
			c.lib.streamCancel(cp, res)
			return errors.New("chdb_stream_fetch_result returned no result")
		}
		if msg := goString(c.lib.resultError(chunk)); msg != "" {
			c.lib.destroyResult(chunk)
			if msg == noActiveStream && chunks > 0 { // ended with the chunk before: an error would have come instead
				return nil
			}
			return errors.New(msg)
		}
		n := c.lib.resultLength(chunk)
		if n == 0 {
			c.lib.destroyResult(chunk)
			return nil
		}
		err := fn(unsafe.Slice((*byte)(c.lib.resultBuffer(chunk)), n), c.lib.resultRowsRead(chunk), c.readStats(chunk))
		c.lib.destroyResult(chunk)
		if err != nil {
			c.lib.streamCancel(cp, res)
			return err
		}
	}
}

// close closes the connection once its running statement, if any, has returned; later
// statements get ErrClosed.
func (c *conn) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.p != nil {
		c.lib.closeConn(c.p)
		c.p = nil
	}
}
