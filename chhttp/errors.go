package chhttp

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/statepipe/statepipe/schema"
)

// ClickHouse's error codes used here, and their names.
const (
	codeSyntax          = 62
	codeUnknownTable    = 60
	codeNotImplemented  = 48
	codeUnknownFormat   = 73
	codeUnknownDatabase = 81
	codeReadonly        = 164
	codeTooManyQueries  = 202
	codeAborted         = 236
	codeResultTooLarge  = 396
	codeCorruptedData   = 246
	codeAccessDenied    = 497
	codeAuthFailed      = 516
	codeUnknown         = 1002
)

var codeNames = map[int]string{
	codeSyntax: "SYNTAX_ERROR", codeUnknownTable: "UNKNOWN_TABLE", codeNotImplemented: "NOT_IMPLEMENTED",
	codeUnknownFormat: "UNKNOWN_FORMAT", codeUnknownDatabase: "UNKNOWN_DATABASE", codeReadonly: "READONLY",
	codeTooManyQueries: "TOO_MANY_SIMULTANEOUS_QUERIES", codeAborted: "ABORTED", codeResultTooLarge: "TOO_MANY_ROWS_OR_BYTES",
	codeAccessDenied: "ACCESS_DENIED", codeAuthFailed: "AUTHENTICATION_FAILED", codeUnknown: "UNKNOWN_EXCEPTION",
	codeCorruptedData: "CORRUPTED_DATA", 159: "TIMEOUT_EXCEEDED", 241: "MEMORY_LIMIT_EXCEEDED", 158: "TOO_MANY_ROWS", 1: "UNSUPPORTED_METHOD",
}

// chError is an answer in ClickHouse's error format.
type chError struct {
	code int
	msg  string
}

// httpStatus is the status ClickHouse's HTTP interface answers a code with.
func (e *chError) httpStatus() int {
	switch e.code {
	case codeAuthFailed:
		return http.StatusUnauthorized
	case codeReadonly, codeAccessDenied:
		return http.StatusForbidden
	case codeUnknownTable, codeUnknownDatabase:
		return http.StatusNotFound
	case codeSyntax, codeUnknownFormat, codeNotImplemented, codeCorruptedData, 46, 47, 36, 43: // …, UNKNOWN_FUNCTION, UNKNOWN_IDENTIFIER, BAD_ARGUMENTS, ILLEGAL_TYPE_OF_ARGUMENT
		return http.StatusBadRequest
	case codeTooManyQueries, codeAborted:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// engineName is the name an engine message ends with: "… (UNKNOWN_TABLE)".
var engineName = regexp.MustCompile(`\(([A-Z][A-Z0-9_]{2,})\)\s*$`)

// body renders the error as ClickHouse does: clients show its text as it is and read the code
// from the X-ClickHouse-Exception-Code header or the text.
func (e *chError) body(version string) string {
	msg := strings.TrimSpace(e.msg)
	name := codeNames[e.code]
	if m := engineName.FindStringSubmatch(msg); m != nil {
		name = m[1]
		msg = strings.TrimSpace(strings.TrimSuffix(msg, m[0]))
	}
	if name == "" {
		name = "UNKNOWN_EXCEPTION"
	}
	msg = strings.TrimSuffix(msg, ".")
	if rest, ok := strings.CutPrefix(msg, "Code: "+strconv.Itoa(e.code)+". DB::Exception: "); ok {
		msg = rest // the engine's own message: said once
	}
	return fmt.Sprintf("Code: %d. DB::Exception: %s. (%s) (version %s (statepipe))\n", e.code, msg, name, version)
}

// storeError maps an analyst SQL error to ClickHouse's code and message.
func storeError(err error) *chError {
	var fe *schema.FieldError
	msg := err.Error()
	if errors.As(err, &fe) {
		msg = fe.Reason
	}
	switch schema.ClassifySQLError(err) {
	case schema.RefusedReadOnly:
		return &chError{codeReadonly, "Cannot execute query in readonly mode: " + msg}
	case schema.RefusedAccess:
		return &chError{codeAccessDenied, msg}
	case schema.RefusedFormat:
		return &chError{codeUnknownFormat, msg}
	case schema.RefusedResultSize:
		return &chError{codeResultTooLarge, msg}
	case schema.RefusedBusy:
		return &chError{codeTooManyQueries, msg}
	case schema.RefusedUnavailable:
		return &chError{codeAborted, msg}
	case schema.RefusedDatabase:
		return &chError{codeUnknownDatabase, msg}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return &chError{codeAborted, "the query was cancelled: its client went away or the site is stopping"}
	}
	if code := schema.EngineErrorCode(err); code != 0 {
		return &chError{code, msg}
	}
	return &chError{codeUnknown, msg}
}

// writeError answers e in ClickHouse's format.
func (h *Handler) writeError(w http.ResponseWriter, queryID string, e *chError) {
	hd := w.Header()
	hd.Set("Content-Type", "text/plain; charset=UTF-8")
	hd.Set("X-ClickHouse-Exception-Code", strconv.Itoa(e.code))
	hd.Set("X-ClickHouse-Server-Display-Name", h.displayName)
	if queryID != "" {
		hd.Set("X-ClickHouse-Query-Id", queryID)
	}
	status := e.httpStatus()
	switch status {
	case http.StatusUnauthorized:
		hd.Set("WWW-Authenticate", `Basic realm="statepipe", charset="UTF-8"`)
	case http.StatusServiceUnavailable:
		hd.Set("Retry-After", strconv.Itoa(int(schema.SQLRetryAfter/time.Second)))
	}
	w.WriteHeader(status)
	_, _ = w.Write([]byte(e.body(h.cfg.Version)))
}

// clip shortens a name or value quoted back to the client.
func clip(s string) string {
	if len(s) > 100 {
		return strings.ToValidUTF8(s[:100], "") + "…"
	}
	return s
}
