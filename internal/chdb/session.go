package chdb

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"unsafe"
)

// Session is the process's one chDB connection. chDB allows a single active connection per
// process, so Open hands out the same session to every caller with the same data path and
// refuses a different one; sites hosted in one process share it and keep apart by database.
type Session struct {
	lib  *lib
	conn unsafe.Pointer // chdb_connection*
	path string

	mu     sync.Mutex // guards refs and closed
	refs   int
	closed bool
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
			return nil, fmt.Errorf("cannot open chdb at %q: this process already has it open at %q (one chDB connection per process)", path, current.path)
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
	cargs := make([][]byte, len(args))
	argv := make([]unsafe.Pointer, len(args)+1)
	for i, a := range args {
		cargs[i] = cString(a)
		argv[i] = unsafe.Pointer(&cargs[i][0])
	}
	conn := l.connect(int32(len(args)), unsafe.Pointer(&argv[0]))
	runtime.KeepAlive(cargs)
	if conn == nil {
		return nil, fmt.Errorf("cannot open chdb at %q: chdb_connect returned no connection", path)
	}
	current = &Session{lib: l, conn: conn, path: path, refs: 1}
	return current, nil
}

// Close releases the caller's reference; the last one closes the connection.
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
	s.lib.closeConn(s.conn)
	if current == s {
		current = nil
	}
	return nil
}

// Query runs one statement (query may carry inline insert data after FORMAT, binary-safe)
// and returns the output in format ("" for none). chDB executes statements on its own
// threads; concurrent callers are safe.
func (s *Session) Query(query []byte, format string) ([]byte, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	s.mu.Unlock()
	var qp unsafe.Pointer
	if len(query) > 0 {
		qp = unsafe.Pointer(&query[0])
	}
	f := cString(format)
	res := s.lib.queryN(*(*unsafe.Pointer)(s.conn), qp, uintptr(len(query)), unsafe.Pointer(&f[0]), uintptr(len(format)))
	runtime.KeepAlive(query)
	runtime.KeepAlive(f)
	if res == nil {
		return nil, errors.New("chdb_query returned no result")
	}
	defer s.lib.destroyResult(res)
	if msg := goString(s.lib.resultError(res)); msg != "" {
		return nil, errors.New(msg)
	}
	n := s.lib.resultLength(res)
	if n == 0 {
		return nil, nil
	}
	buf := s.lib.resultBuffer(res)
	out := make([]byte, n)
	copy(out, unsafe.Slice((*byte)(buf), n))
	return out, nil
}
