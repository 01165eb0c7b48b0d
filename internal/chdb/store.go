package chdb

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/statepipe/statepipe/schema"
)

// Config selects the library and the data directory.
type Config struct {
	LibPath string // path to libchdb.so; empty searches LibraryCandidates
	Path    string // data directory; empty or ":memory:" keeps everything in memory
	// SQL bounds analyst SQL (QueryReadOnly); the zero value is schema.DefaultSQLLimits.
	SQL schema.SQLLimits
}

// Store implements schema.Store on the process's chDB session: statements, inserts and
// reports on its primary connection, analyst SQL on connections of its own (readonly.go).
type Store struct {
	s     *Session
	spool string // directory for insert spool files
	sql   *analysts

	closeOnce sync.Once
	closeErr  error
}

var _ schema.Store = (*Store)(nil)

// sessionSettings make JSON output match schema.Result's normalisation (64-bit integers as
// numbers, not quoted strings), pin join_use_nulls = 0, which the views and reports are
// written for (an unmatched LEFT JOIN column is its type's default), and let the reports'
// own queries carry their largest id sets (report.MaxReportIDs ids of up to 128 bytes, twice
// in one query: over the default 256 KiB of max_query_size). Analyst SQL runs on connections
// of its own with the default.
const sessionSettings = "SET output_format_json_quote_64bit_integers = 0, join_use_nulls = 0, max_query_size = 4194304"

// New opens (or joins) the process's chDB session.
func New(cfg Config) (*Store, error) {
	if err := cfg.SQL.Validate(); err != nil {
		return nil, err
	}
	s, err := Open(cfg.LibPath, cfg.Path)
	if err != nil {
		return nil, err
	}
	if _, err := s.Query([]byte(sessionSettings), ""); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("cannot configure chdb session: %w", err)
	}
	spool := filepath.Join(os.TempDir(), "statepipe-chdb-spool")
	if cfg.Path != "" && cfg.Path != ":memory:" {
		spool = filepath.Join(cfg.Path, "statepipe-spool")
	}
	if err := os.MkdirAll(spool, 0o700); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("cannot create spool directory %s: %w", spool, err)
	}
	return &Store{s: s, spool: spool, sql: newAnalysts(s, cfg.SQL)}, nil
}

// Close kills the store's running analyst queries, closes their connections and releases
// its reference to the session. It returns within a few milliseconds of the kill (at most
// closeWait) even while an analyst query runs.
func (st *Store) Close() error {
	st.closeOnce.Do(func() { st.closeErr = errors.Join(st.sql.close(), st.s.Close()) })
	return st.closeErr
}

// Exec runs a statement that returns no rows.
func (st *Store) Exec(ctx context.Context, query string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	_, err := st.s.Query([]byte(query), "")
	return err
}

var bufPool = sync.Pool{New: func() any { return new([]byte) }}

// Insert writes rows as one RowBinary insert. The data goes through a spool file read with
// INSERT … FROM INFILE, not inline after the statement: chDB runs every query text through
// clickhouse-local's multi-statement splitter, which ends inline INSERT data at the first
// blank line — and RowBinary holds "\n\n" whenever a value's bytes do (an offset of 2570, a
// serial of 0x0a0a…), so inline batches were cut short at random rows. The file is written to
// the page cache and removed after the insert.
func (st *Store) Insert(ctx context.Context, rows schema.Rows) error {
	if rows.Len() == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	b := (*bp)[:0]
	for i := 0; i < rows.Len(); i++ {
		b = rows.AppendRowBinary(b, i)
	}
	*bp = b
	f, err := os.CreateTemp(st.spool, "insert-*.rowbinary")
	if err != nil {
		return fmt.Errorf("cannot create spool file for %s: %w", rows.Table(), err)
	}
	defer os.Remove(f.Name())
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("cannot write spool file %s: %w", f.Name(), err)
	}
	q := "INSERT INTO " + rows.Table() + " (" + strings.Join(rows.Columns(), ", ") + ") FROM INFILE " +
		quote(f.Name()) + " SETTINGS " + schema.InsertSettingsSQL() + " FORMAT RowBinary"
	if _, err := st.s.Query([]byte(q), ""); err != nil {
		return fmt.Errorf("cannot insert %d rows into %s: %w", rows.Len(), rows.Table(), err)
	}
	return nil
}

// quote returns s as a ClickHouse string literal.
func quote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

type jsonCompact struct {
	Meta []schema.Column     `json:"meta"`
	Data [][]json.RawMessage `json:"data"`
}

// Query runs a read statement and returns normalised rows.
func (st *Store) Query(ctx context.Context, query string) (*schema.Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out, err := st.s.Query([]byte(query), "JSONCompact")
	if err != nil {
		return nil, err
	}
	return decodeResult(out)
}

// decodeResult decodes a JSONCompact answer into normalised rows.
func decodeResult(out []byte) (*schema.Result, error) {
	res := &schema.Result{Columns: []schema.Column{}, Rows: [][]any{}}
	if len(bytes.TrimSpace(out)) == 0 {
		return res, nil
	}
	var jc jsonCompact
	if err := json.Unmarshal(out, &jc); err != nil {
		return nil, fmt.Errorf("cannot decode chdb result: %w", err)
	}
	res.Columns = jc.Meta
	res.Rows = make([][]any, len(jc.Data))
	for i, row := range jc.Data {
		vals := make([]any, len(row))
		for j, raw := range row {
			v, err := normalize(jc.Meta[j].Type, raw)
			if err != nil {
				return nil, fmt.Errorf("cannot decode column %s (%s): %w", jc.Meta[j].Name, jc.Meta[j].Type, err)
			}
			vals[j] = v
		}
		res.Rows[i] = vals
	}
	return res, nil
}

// decodeJSONCompact decodes one JSONCompact document — one block of a streamed answer
// (conn.stream: 26.5 writes every block as a document of its own, with its meta, data and row
// count) — passing its columns to header and each row, normalised, to row; an error from
// either stops it. It reads b row by row and holds no more than one row's text: b is the
// library's memory, never copied whole. A document that is cut short, or whose row count is
// not its rows', is an error.
func decodeJSONCompact(b []byte, header func([]schema.Column) error, row func([]any) error) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := expectDelim(dec, '{'); err != nil {
		return err
	}
	var cols []schema.Column
	var raw []json.RawMessage
	rows, declared := int64(0), int64(-1)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("cannot decode chdb result: %w", err)
		}
		switch tok {
		case "meta":
			if err := dec.Decode(&cols); err != nil {
				return fmt.Errorf("cannot decode chdb result's columns: %w", err)
			}
			if err := header(cols); err != nil {
				return err
			}
		case "data":
			if err := expectDelim(dec, '['); err != nil {
				return err
			}
			for dec.More() {
				raw = raw[:0] // the cells' text is reused: normalize copies what it keeps
				if err := dec.Decode(&raw); err != nil {
					return fmt.Errorf("cannot decode chdb result row %d: %w", rows, err)
				}
				if len(raw) != len(cols) {
					return fmt.Errorf("cannot decode chdb result row %d: %d values for %d columns", rows, len(raw), len(cols))
				}
				vals := make([]any, len(raw))
				for j, r := range raw {
					v, err := normalize(cols[j].Type, r)
					if err != nil {
						return fmt.Errorf("cannot decode column %s (%s): %w", cols[j].Name, cols[j].Type, err)
					}
					vals[j] = v
				}
				rows++
				if err := row(vals); err != nil {
					return err
				}
			}
			if err := expectDelim(dec, ']'); err != nil {
				return err
			}
		case "rows":
			if err := dec.Decode(&declared); err != nil {
				return fmt.Errorf("cannot decode chdb result's row count: %w", err)
			}
		default: // statistics, rows_before_limit_at_least
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return fmt.Errorf("cannot decode chdb result: %w", err)
			}
		}
	}
	if err := expectDelim(dec, '}'); err != nil {
		return err
	}
	if declared != rows {
		return fmt.Errorf("cannot decode chdb result: %d rows of the %d it declares", rows, declared)
	}
	return nil
}

func expectDelim(dec *json.Decoder, want json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("cannot decode chdb result: %w", err)
	}
	if tok != want {
		return fmt.Errorf("cannot decode chdb result: %v where %v belongs", tok, want)
	}
	return nil
}

// normalize turns one JSON value of ClickHouse type typ into schema.Result's value types.
func normalize(typ string, raw json.RawMessage) (any, error) {
	typ = schema.ValueType(typ)
	if string(raw) == "null" {
		return nil, nil
	}
	switch {
	case strings.HasPrefix(typ, "Array("):
		var items []json.RawMessage
		if err := json.Unmarshal(raw, &items); err != nil {
			return nil, err
		}
		inner := strings.TrimSuffix(strings.TrimPrefix(typ, "Array("), ")")
		out := make([]any, len(items))
		for i, it := range items {
			v, err := normalize(inner, it)
			if err != nil {
				return nil, err
			}
			out[i] = v
		}
		return out, nil
	case strings.HasPrefix(typ, "Map("):
		return mapText(raw)
	case strings.HasPrefix(typ, "Int") || strings.HasPrefix(typ, "UInt"):
		d := json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber()
		var n json.Number
		if err := d.Decode(&n); err != nil {
			return nil, err
		}
		return integer(n.String())
	case strings.HasPrefix(typ, "Float") || strings.HasPrefix(typ, "Decimal"):
		var f float64
		err := json.Unmarshal(raw, &f)
		return f, err
	case typ == "Bool":
		var b bool
		err := json.Unmarshal(raw, &b)
		return b, err
	default:
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return string(raw), nil
		}
		return s, nil
	}
}

// mapText returns a Map's JSON text with its keys in sorted order, as the server adapter
// returns it (Go maps do not keep the order ClickHouse stores the entries in), and written
// as that adapter writes them: numbers as ClickHouse printed them, strings as Go's encoder
// escapes them.
func mapText(raw json.RawMessage) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("cannot read map %s: %w", raw, err)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // ClickHouse prints <, > and & as is
	if err := enc.Encode(m); err != nil {
		return nil, err
	}
	return strings.TrimSuffix(buf.String(), "\n"), nil
}

// integer reads an integer's decimal text as the server adapter normalises integers: int64,
// uint64 above MaxInt64, and the text itself beyond both (Int128, Int256, UInt256).
func integer(text string) (any, error) {
	if v, err := strconv.ParseInt(text, 10, 64); err == nil {
		return v, nil
	}
	if u, err := strconv.ParseUint(text, 10, 64); err == nil {
		return u, nil
	}
	if _, ok := new(big.Int).SetString(text, 10); !ok {
		return nil, fmt.Errorf("cannot read integer %q", text)
	}
	return text, nil
}
