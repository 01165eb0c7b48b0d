package schema

import (
	"context"
	"encoding/binary"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Store is the storage contract both ClickHouse adapters implement (internal/chdb for the
// embedded engine, internal/clickhouse for a server over the native protocol). The DDL, the
// queries and the batch layout are shared; only the transport differs. Components depend on
// the one- or two-method subsets they need.
type Store interface {
	// Exec runs one statement that returns no rows (DDL, INSERT … SELECT).
	Exec(ctx context.Context, query string) error
	// Query runs one read statement and returns its rows with normalised values.
	Query(ctx context.Context, query string) (*Result, error)
	// Each runs one read statement and passes every row to fn, one at a time, without
	// building a Result (restoring the projector's index reads tens of millions of rows). The
	// row slice is reused between calls; values are normalised as in Query. The server
	// adapter streams; the embedded engine hands over its whole binary result at once, which
	// is held while the rows are passed. Columns may be strings, integers or
	// arrays of them (convert times with toUnixTimestamp64Milli).
	Each(ctx context.Context, query string, fn func(row []any) error) error
	// Insert writes a batch of rows in one insert; it returns only after the engine has
	// acknowledged the whole batch.
	Insert(ctx context.Context, rows Rows) error
	Close() error
}

// InsertSettings are the settings every insert of the projector's rows runs with, in both
// adapters. optimize_on_insert = 0: the engine does not collapse duplicate keys inside an
// inserted block (the merge algorithm run on every insert). Every table is a
// ReplacingMergeTree that readers needing exact rows read with FINAL (or an argMax), which a
// duplicate in one part changes no more than one in two parts; the fold already keeps one row
// per key in a batch's current state. It cut the engine's insert time by about a fifth
// (bench/results/store-cost-*).
var InsertSettings = map[string]int{"optimize_on_insert": 0}

// InsertSettingsSQL is InsertSettings as an INSERT's SETTINGS clause takes them: "k = v, …".
func InsertSettingsSQL() string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(InsertSettings)) {
		parts = append(parts, k+" = "+strconv.Itoa(InsertSettings[k]))
	}
	return strings.Join(parts, ", ")
}

// Rows is a batch of rows for one table, in the column order of Columns. Implementations
// encode without reflection: AppendRowBinary for engines that take ClickHouse's RowBinary
// format, Values for the native protocol's batch API.
type Rows interface {
	Table() string // fully qualified: database.table
	Columns() []string
	Len() int
	AppendRowBinary(dst []byte, i int) []byte
	Values(i int) []any
}

// Result is what a query returns. Values are normalised so both adapters agree: integers as
// int64 (uint64 above MaxInt64 as uint64), floats as float64, Bool as bool, arrays as []any,
// everything else (strings, dates, times) as string in ClickHouse's text format.
type Result struct {
	Columns []Column `json:"columns"`
	Rows    [][]any  `json:"rows"`
}

// ToUint64 reads a UInt64 result value (int64, or uint64 above MaxInt64); 0 for anything else.
func ToUint64(v any) uint64 {
	switch n := v.(type) {
	case int64:
		return uint64(n)
	case uint64:
		return n
	}
	return 0
}

// Column names a result column and its ClickHouse type.
type Column struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// ValueType returns a ClickHouse type without its Nullable(…) and LowCardinality(…)
// wrappers, in any order and nesting: they do not change a value's form in a Result
// (LowCardinality(Nullable(Int64)) is an integer, or nil). Both adapters normalise by it.
func ValueType(typ string) string {
	typ = strings.TrimSpace(typ)
	for {
		switch {
		case strings.HasPrefix(typ, "Nullable(") && strings.HasSuffix(typ, ")"):
			typ = typ[len("Nullable(") : len(typ)-1]
		case strings.HasPrefix(typ, "LowCardinality(") && strings.HasSuffix(typ, ")"):
			typ = typ[len("LowCardinality(") : len(typ)-1]
		default:
			return typ
		}
	}
}

// Index returns the position of the named column, or -1.
func (r *Result) Index(name string) int {
	for i, c := range r.Columns {
		if c.Name == name {
			return i
		}
	}
	return -1
}

// RowBinary append helpers (ClickHouse's RowBinary: little-endian fixed-width integers,
// uvarint-prefixed strings and arrays).

// AppendUInt8 appends a UInt8.
func AppendUInt8(b []byte, v uint8) []byte { return append(b, v) }

// AppendUInt16 appends a UInt16.
func AppendUInt16(b []byte, v uint16) []byte { return binary.LittleEndian.AppendUint16(b, v) }

// AppendInt16 appends an Int16.
func AppendInt16(b []byte, v int16) []byte { return binary.LittleEndian.AppendUint16(b, uint16(v)) }

// AppendInt32 appends an Int32.
func AppendInt32(b []byte, v int32) []byte { return binary.LittleEndian.AppendUint32(b, uint32(v)) }

// AppendUInt64 appends a UInt64.
func AppendUInt64(b []byte, v uint64) []byte { return binary.LittleEndian.AppendUint64(b, v) }

// AppendInt64 appends an Int64 (also DateTime64(3) as Unix milliseconds).
func AppendInt64(b []byte, v int64) []byte { return binary.LittleEndian.AppendUint64(b, uint64(v)) }

// AppendFloat64 appends a Float64.
func AppendFloat64(b []byte, v float64) []byte {
	return binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
}

// AppendString appends a String.
func AppendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// AppendStrings appends an Array(String).
func AppendStrings(b []byte, ss []string) []byte {
	b = binary.AppendUvarint(b, uint64(len(ss)))
	for _, s := range ss {
		b = AppendString(b, s)
	}
	return b
}

// MillisTime converts Unix milliseconds to a UTC time for the native protocol's DateTime64(3).
func MillisTime(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

// AppendUInt16s appends an Array(UInt16).
func AppendUInt16s[T ~uint16](b []byte, vs []T) []byte {
	b = binary.AppendUvarint(b, uint64(len(vs)))
	for _, v := range vs {
		b = AppendUInt16(b, uint16(v))
	}
	return b
}
