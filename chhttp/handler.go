package chhttp

import (
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/statepipe/statepipe/schema"
)

// Store runs one analyst statement and answers in an output format: the embedded adapter's
// QueryReadOnlyFormat (the statement's FORMAT clause, or defaultFormat).
type Store interface {
	QueryReadOnlyFormat(ctx context.Context, database, query, defaultFormat string) (*schema.SQLAnswer, error)
}

// Config is one site's ClickHouse HTTP interface.
type Config struct {
	// Site and Database are the site's code and database: the only database queries read.
	Site, Database string
	// Store runs the statements.
	Store Store
	// ReaderToken and AdminToken are the site's tokens, taken as the password: with a reader
	// token, either; with only an admin token, that one; with neither, the interface is open
	// (as POST /v1/sql is).
	ReaderToken, AdminToken string
	// Limits are the store's analyst SQL limits: the settings system.settings shows and a URL
	// setting may repeat.
	Limits schema.SQLLimits
	// Version and Timezone are the engine's (version(), timezone()): shown in errors and the
	// X-ClickHouse-Timezone header.
	Version, Timezone string
}

// MaxQueryBytes bounds a statement (the query parameter and the body together), as POST
// /v1/sql does.
const MaxQueryBytes = 1 << 20

// DefaultFormat is the format of an answer without FORMAT or default_format, as ClickHouse's.
const DefaultFormat = "TabSeparated"

// Handler serves the interface.
type Handler struct {
	cfg           Config
	settings      []schema.SQLSetting
	settingsTable string
	displayName   string
}

// New returns the handler of cfg.
func New(cfg Config) (*Handler, error) {
	if cfg.Store == nil {
		return nil, errors.New("cannot serve the ClickHouse HTTP interface: no store")
	}
	if err := schema.CheckSQLDatabase(cfg.Database); err != nil {
		return nil, err
	}
	if cfg.Version == "" {
		cfg.Version = "unknown"
	}
	if cfg.Timezone == "" {
		cfg.Timezone = "UTC"
	}
	s := siteSettings(cfg.Database, cfg.Limits)
	return &Handler{cfg: cfg, settings: s, settingsTable: settingsTable(s), displayName: "statepipe-" + cfg.Site}, nil
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/ping":
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.writeError(w, "", &chError{1, "/ping answers GET and HEAD"})
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
		_, _ = io.WriteString(w, "Ok.\n")
	case "/":
		h.serveQuery(w, r)
	default:
		w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
		w.WriteHeader(http.StatusNotFound)
		_, _ = fmt.Fprintf(w, "There is no handle %s\n\nUse / or /ping for health checks.\n", clip(r.URL.Path))
	}
}

// serveQuery answers GET and POST / with a query.
func (h *Handler) serveQuery(w http.ResponseWriter, r *http.Request) {
	params := r.URL.Query()
	queryID := params.Get("query_id")
	if queryID == "" {
		queryID = newQueryID()
	}
	fail := func(e *chError) { h.writeError(w, queryID, e) }
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		fail(&chError{1, "statepipe's ClickHouse interface answers GET and POST"})
		return
	}
	if r.Method == http.MethodGet && !params.Has("query") {
		w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
		_, _ = io.WriteString(w, "Ok.\n") // GET / is a health check, as ClickHouse's
		return
	}
	if e := h.authenticate(r); e != nil {
		fail(e)
		return
	}
	if e := h.checkParams(params); e != nil {
		fail(e)
		return
	}
	database := firstOf(params.Get("database"), r.Header.Get("X-ClickHouse-Database"))
	if database != "" && database != h.cfg.Database && database != "default" {
		fail(&chError{codeAccessDenied, fmt.Sprintf("this interface reads database %s only (site %s); database %s is not served here", h.cfg.Database, h.cfg.Site, clip(database))})
		return
	}
	query, e := readQuery(w, r, params)
	if e != nil {
		fail(e)
		return
	}
	if strings.TrimSpace(query) == "" {
		fail(&chError{codeSyntax, "Empty query"})
		return
	}
	format := firstOf(params.Get("default_format"), r.Header.Get("X-ClickHouse-Format"), DefaultFormat)
	start := time.Now()
	ans, err := h.cfg.Store.QueryReadOnlyFormat(r.Context(), h.cfg.Database, h.withSettingsTable(query), format)
	if err != nil {
		if r.Context().Err() != nil {
			return // the client went away: nobody to answer
		}
		fail(storeError(err))
		return
	}
	h.writeAnswer(w, r, queryID, ans, time.Since(start))
}

// readQuery returns the statement: the query parameter, and for POST the body after it (a
// newline between), at most MaxQueryBytes together.
func readQuery(w http.ResponseWriter, r *http.Request, params map[string][]string) (string, *chError) {
	query := ""
	if q := params["query"]; len(q) > 0 {
		query = q[0]
	}
	if r.Method == http.MethodPost && r.Body != nil {
		if enc := r.Header.Get("Content-Encoding"); enc != "" && enc != "identity" {
			return "", &chError{codeNotImplemented, fmt.Sprintf("a compressed request body (Content-Encoding %s) is not supported: send the statement as it is", clip(enc))}
		}
		if media, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); strings.HasPrefix(media, "multipart/") {
			return "", &chError{codeNotImplemented, "multipart requests (query parameters or external data in a form) are not supported: send the statement as the body or the query parameter"}
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(max(0, MaxQueryBytes-len(query)))))
		if err != nil {
			return "", &chError{codeSyntax, fmt.Sprintf("cannot read the query (at most %d bytes with the query parameter): %s", MaxQueryBytes, clip(err.Error()))}
		}
		if q := params["decompress"]; len(q) > 0 && q[0] == "1" { // the body in ClickHouse's compressed blocks
			if body, err = decompressNative(body, max(0, MaxQueryBytes-len(query))); err != nil {
				return "", &chError{codeCorruptedData, clip(err.Error())}
			}
		}
		if len(body) > 0 {
			if query != "" {
				query += "\n"
			}
			query += string(body)
		}
	}
	if len(query) > MaxQueryBytes {
		return "", &chError{codeSyntax, fmt.Sprintf("the query is longer than %d bytes", MaxQueryBytes)}
	}
	return query, nil
}

// writeAnswer writes a query's answer with the headers clients read; gzip when the client
// asked for compression (enable_http_compression=1) and takes gzip.
func (h *Handler) writeAnswer(w http.ResponseWriter, r *http.Request, queryID string, ans *schema.SQLAnswer, took time.Duration) {
	summary, _ := json.Marshal(map[string]string{
		"read_rows": strconv.FormatInt(ans.ReadRows, 10), "read_bytes": strconv.FormatInt(ans.ReadBytes, 10),
		"written_rows": "0", "written_bytes": "0", "total_rows_to_read": strconv.FormatInt(ans.ReadRows, 10),
		"result_rows": strconv.FormatInt(ans.Rows, 10), "result_bytes": strconv.Itoa(len(ans.Body)),
		"elapsed_ns": strconv.FormatInt(took.Nanoseconds(), 10),
	})
	hd := w.Header()
	hd.Set("Content-Type", ans.Format.ContentType)
	hd.Set("X-ClickHouse-Format", ans.Format.Name)
	hd.Set("X-ClickHouse-Timezone", h.cfg.Timezone)
	hd.Set("X-ClickHouse-Query-Id", queryID)
	hd.Set("X-ClickHouse-Server-Display-Name", h.displayName)
	hd.Set("X-ClickHouse-Summary", string(summary))
	if r.URL.Query().Get("compress") == "1" { // ClickHouse's own blocks (under gzip, if asked too)
		body, err := compressNative(ans.Body)
		if err != nil {
			h.writeError(w, queryID, &chError{codeCorruptedData, "cannot compress the answer: " + clip(err.Error())})
			return
		}
		ans.Body = body
	}
	if r.URL.Query().Get("enable_http_compression") == "1" && acceptsGzip(r.Header.Get("Accept-Encoding")) {
		hd.Set("Content-Encoding", "gzip")
		hd.Add("Vary", "Accept-Encoding")
		zw := gzip.NewWriter(w)
		if _, err := zw.Write(ans.Body); err == nil {
			_ = zw.Close()
		}
		return
	}
	hd.Set("Content-Length", strconv.Itoa(len(ans.Body)))
	_, _ = w.Write(ans.Body) // a client too slow or gone is cut by the server
}

// acceptsGzip: Accept-Encoding names gzip (without q=0).
func acceptsGzip(accept string) bool {
	for _, part := range strings.Split(accept, ",") {
		enc, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(enc), "gzip") && strings.ReplaceAll(params, " ", "") != "q=0" {
			return true
		}
	}
	return false
}

// authenticate takes the password — of Basic authentication, X-ClickHouse-Key, the password
// parameter, or a Bearer token — as the site's reader or admin token. The user name is not
// checked. More than one way at once is refused, as ClickHouse refuses it.
func (h *Handler) authenticate(r *http.Request) *chError {
	var passwords []string
	if auth := r.Header.Get("Authorization"); auth != "" {
		if _, pass, ok := r.BasicAuth(); ok {
			passwords = append(passwords, pass)
		} else if tok, ok := strings.CutPrefix(auth, "Bearer "); ok {
			passwords = append(passwords, strings.TrimSpace(tok))
		} else {
			return &chError{codeAuthFailed, "the Authorization header is neither Basic nor Bearer"}
		}
	}
	if r.Header.Get("X-ClickHouse-User") != "" || r.Header.Get("X-ClickHouse-Key") != "" {
		passwords = append(passwords, r.Header.Get("X-ClickHouse-Key"))
	}
	if q := r.URL.Query(); q.Has("user") || q.Has("password") {
		passwords = append(passwords, q.Get("password"))
	}
	if len(passwords) > 1 {
		return &chError{codeAuthFailed, "credentials are given more than one way (Authorization, X-ClickHouse-User/Key, user/password parameters): use one"}
	}
	tokens := []string{h.cfg.ReaderToken, h.cfg.AdminToken}
	if h.cfg.ReaderToken == "" {
		tokens = []string{h.cfg.AdminToken}
	}
	if tokens[0] == "" {
		return nil // no token: open, as POST /v1/sql
	}
	if len(passwords) == 1 {
		for _, t := range tokens {
			if t != "" && subtle.ConstantTimeCompare([]byte(passwords[0]), []byte(t)) == 1 {
				return nil
			}
		}
	}
	return &chError{codeAuthFailed, "Authentication failed: the password must be the site's reader token (--reader-token) or admin token (--admin-token); any user name"}
}

func firstOf(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// newQueryID returns a random UUID (version 4), as ClickHouse's query ids are.
func newQueryID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
