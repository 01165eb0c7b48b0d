package chdb

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"unsafe"

	"github.com/ebitengine/purego"
)

// ErrLibraryNotFound is returned when libchdb.so cannot be located. Its text tells the
// user how to install the library, because embedded mode cannot run without it.
var ErrLibraryNotFound = errors.New("cannot find chDB's libchdb.so: run `make deps` " +
	"(fetches the npm package @chdb/lib-linux-x64-gnu into .deps/chdb/), or set CHDB_LIB_PATH " +
	"to the library's path; server mode (--clickhouse.dsn) needs no library")

// lib holds the C entry points of libchdb.so (chdb.h, the v3 connection API).
type lib struct {
	setSignalHandlers func(enabled int32)
	connect           func(argc int32, argv unsafe.Pointer) unsafe.Pointer
	closeConn         func(conn unsafe.Pointer)
	queryN            func(conn unsafe.Pointer, q unsafe.Pointer, qlen uintptr, f unsafe.Pointer, flen uintptr) unsafe.Pointer
	destroyResult     func(res unsafe.Pointer)
	resultBuffer      func(res unsafe.Pointer) unsafe.Pointer
	resultLength      func(res unsafe.Pointer) uintptr
	resultError       func(res unsafe.Pointer) unsafe.Pointer
	resultRowsRead    func(res unsafe.Pointer) uint64
	// Rows and bytes the statement read from tables (X-ClickHouse-Summary's read_rows and
	// read_bytes); nil in a library without them.
	resultStorageRowsRead, resultStorageBytesRead func(res unsafe.Pointer) uint64
	// The streaming API: the output of one statement chunk by chunk as the engine makes it.
	streamQueryN func(conn unsafe.Pointer, q unsafe.Pointer, qlen uintptr, f unsafe.Pointer, flen uintptr) unsafe.Pointer
	streamFetch  func(conn unsafe.Pointer, res unsafe.Pointer) unsafe.Pointer
	streamCancel func(conn unsafe.Pointer, res unsafe.Pointer)

	goSignals savedSignals // the Go runtime's fault handlers, restored after chdb_connect
}

var (
	loadOnce sync.Once
	loaded   *lib
	loadErr  error
)

// LibraryCandidates lists where the library is looked for, in order: the explicit path,
// $CHDB_LIB_PATH, .deps/chdb/ in the working directory and beside the executable, and the
// system library directory.
func LibraryCandidates(explicit string) []string {
	var c []string
	if explicit != "" {
		c = append(c, explicit)
	}
	if p := os.Getenv("CHDB_LIB_PATH"); p != "" {
		c = append(c, p)
	}
	c = append(c, filepath.Join(".deps", "chdb", "libchdb.so"))
	if exe, err := os.Executable(); err == nil {
		dir := filepath.Dir(exe)
		c = append(c, filepath.Join(dir, ".deps", "chdb", "libchdb.so"),
			filepath.Join(dir, "..", ".deps", "chdb", "libchdb.so"),
			filepath.Join(dir, "libchdb.so"))
	}
	return append(c, "/usr/local/lib/libchdb.so")
}

// load opens libchdb.so once per process. The library is never linked at build time, so a
// binary that does not use embedded mode starts on a machine without it.
func load(explicit string) (*lib, error) {
	loadOnce.Do(func() {
		var path string
		for _, p := range LibraryCandidates(explicit) {
			if st, err := os.Stat(p); err == nil && !st.IsDir() {
				path = p
				break
			}
		}
		if path == "" {
			loadErr = ErrLibraryNotFound
			return
		}
		goSignals, err := saveSignals()
		if err != nil {
			loadErr = err
			return
		}
		h, err := purego.Dlopen(path, purego.RTLD_NOW|purego.RTLD_GLOBAL)
		if err != nil {
			loadErr = fmt.Errorf("cannot load %s: %w", path, err)
			return
		}
		l := &lib{}
		for name, fn := range map[string]any{
			"chdb_set_signal_handlers_enabled": &l.setSignalHandlers,
			"chdb_connect":                     &l.connect,
			"chdb_close_conn":                  &l.closeConn,
			"chdb_query_n":                     &l.queryN,
			"chdb_destroy_query_result":        &l.destroyResult,
			"chdb_result_buffer":               &l.resultBuffer,
			"chdb_result_length":               &l.resultLength,
			"chdb_result_error":                &l.resultError,
			"chdb_result_rows_read":            &l.resultRowsRead,
			"chdb_stream_query_n":              &l.streamQueryN,
			"chdb_stream_fetch_result":         &l.streamFetch,
			"chdb_stream_cancel_query":         &l.streamCancel,
		} {
			sym, err := purego.Dlsym(h, name)
			if err != nil {
				loadErr = fmt.Errorf("cannot find symbol %s in %s (a chDB library older than 3.x?): %w", name, path, err)
				return
			}
			purego.RegisterFunc(fn, sym)
		}
		for name, fn := range map[string]any{
			"chdb_result_storage_rows_read":  &l.resultStorageRowsRead,
			"chdb_result_storage_bytes_read": &l.resultStorageBytesRead,
		} {
			if sym, err := purego.Dlsym(h, name); err == nil {
				purego.RegisterFunc(fn, sym)
			}
		}
		// ClickHouse installs handlers for SIGSEGV, SIGINT, … that would take them from the Go
		// runtime (nil-pointer panics, graceful shutdown). Keep Go in charge: no ClickHouse
		// handlers, and Go's fault handlers put back (signals.go).
		l.setSignalHandlers(0)
		if loadErr = goSignals.restore(); loadErr != nil {
			return
		}
		l.goSignals = goSignals
		loaded = l
	})
	return loaded, loadErr
}

// cString returns a NUL-terminated copy of s.
func cString(s string) []byte {
	b := make([]byte, len(s)+1)
	copy(b, s)
	return b
}

// goString copies a NUL-terminated C string.
func goString(p unsafe.Pointer) string {
	if p == nil {
		return ""
	}
	n := 0
	for *(*byte)(unsafe.Add(p, n)) != 0 {
		n++
	}
	return string(unsafe.Slice((*byte)(p), n))
}
