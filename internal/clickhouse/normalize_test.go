package clickhouse

import (
	"math"
	"math/big"
	"net"
	"reflect"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/google/uuid"
	"github.com/shopspring/decimal"

	"github.com/statepipe/statepipe/schema"
)

func ptr[T any](v T) *T { return &v }

// TestNormalize feeds normalize the Go values clickhouse-go scans for each ClickHouse type
// (the column's ScanType) and checks schema.Result's documented forms, the same the embedded
// adapter returns (see internal/storetest's "value types").
func TestNormalize(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		berlin = time.FixedZone("CET", 3600)
	}
	ms := time.Date(2026, 11, 25, 21, 0, 0, 123_456_789, time.UTC)
	for _, c := range []struct {
		typ  string
		in   any
		want any
	}{
		{"UInt64", uint64(7), int64(7)},
		{"UInt64", uint64(math.MaxInt64), int64(math.MaxInt64)},
		{"UInt64", uint64(math.MaxInt64) + 1, uint64(math.MaxInt64) + 1},
		{"UInt8", uint8(255), int64(255)},
		{"UInt16", uint16(500), int64(500)},
		{"UInt32", uint32(4000000000), int64(4000000000)},
		{"Int8", int8(-5), int64(-5)},
		{"Int16", int16(-1), int64(-1)},
		{"Int32", int32(-2145124341), int64(-2145124341)},
		{"Int64", int64(math.MinInt64), int64(math.MinInt64)},
		{"Float32", float32(0.1), 0.1},
		{"Float64", -1.5, -1.5},
		{"Float64", math.NaN(), nil},
		{"Float64", math.Inf(-1), nil},
		{"Bool", true, true},
		{"String", "héllo", "héllo"},
		{"FixedString(3)", "ab\x00", "ab\x00"},
		{"LowCardinality(String)", "lc", "lc"},
		{"Enum8('a' = 1, 'b' = 2)", "b", "b"},
		{"DateTime64(3, 'UTC')", ms, "2026-11-25 21:00:00.123"},
		{"DateTime64(3, 'UTC')", time.Date(2026, 11, 25, 21, 0, 1, 5_000_000, time.UTC), "2026-11-25 21:00:01.005"},
		{"DateTime64(3, 'UTC')", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), "2026-01-02 03:04:05.000"},
		{"DateTime64(6, 'UTC')", ms, "2026-11-25 21:00:00.123456"},
		{"DateTime64(9)", ms, "2026-11-25 21:00:00.123456789"},
		{"DateTime64(0, 'UTC')", ms, "2026-11-25 21:00:00"},
		{"DateTime('UTC')", ms, "2026-11-25 21:00:00"},
		{"DateTime", ms, "2026-11-25 21:00:00"},
		{"DateTime('Europe/Berlin')", ms.In(berlin), ms.In(berlin).Format("2006-01-02 15:04:05")},
		{"Date", time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC), "2026-11-25"},
		{"Date32", time.Date(1950, 1, 2, 0, 0, 0, 0, time.UTC), "1950-01-02"},
		{"Nullable(DateTime64(3, 'UTC'))", &ms, "2026-11-25 21:00:00.123"},
		{"Nullable(DateTime64(3, 'UTC'))", (*time.Time)(nil), nil},
		{"Nullable(String)", ptr("z"), "z"},
		{"Nullable(String)", (*string)(nil), nil},
		{"LowCardinality(Nullable(String))", (*string)(nil), nil},
		{"Nullable(UInt64)", ptr(uint64(3)), int64(3)},
		{"Nullable(Nothing)", (*any)(nil), nil},
		{"LowCardinality(Nullable(Int64))", ptr(int64(5)), int64(5)},
		{"LowCardinality(Nullable(Int64))", (*int64)(nil), nil},
		{"Nullable(UInt64)", ptr(uint64(math.MaxUint64)), uint64(math.MaxUint64)},
		{"Nullable(Bool)", ptr(true), true},
		{"Array(Int32)", []int32{1, -2}, []any{int64(1), int64(-2)}},
		{"Array(Nullable(Int64))", []*int64{ptr(int64(1)), nil}, []any{int64(1), nil}},
		{"Array(LowCardinality(Nullable(String)))", []*string{ptr("a"), nil}, []any{"a", nil}},
		{"Array(String)", []string{"a", "", "ü, 'q'"}, []any{"a", "", "ü, 'q'"}},
		{"Array(String)", []string{}, []any{}},
		{"Array(UInt8)", []uint8{1, 2}, []any{int64(1), int64(2)}},
		{"Array(Nullable(String))", []*string{ptr("n"), nil}, []any{"n", nil}},
		{"Array(DateTime64(3, 'UTC'))", []time.Time{ms}, []any{"2026-11-25 21:00:00.123"}},
		{"Array(Array(UInt64))", [][]uint64{{1}, {2, 3}}, []any{[]any{int64(1)}, []any{int64(2), int64(3)}}},
		{"UUID", uuid.MustParse("61f0c404-5cb3-11e7-907b-a6006ad3dba0"), "61f0c404-5cb3-11e7-907b-a6006ad3dba0"},
		{"Decimal(18, 2)", decimal.RequireFromString("1.25"), 1.25},
		{"IPv4", net.ParseIP("1.2.3.4").To4(), "1.2.3.4"},
		{"IPv6", net.ParseIP("1.2.3.4"), "::ffff:1.2.3.4"},
		{"IPv6", net.ParseIP("2001:db8::1"), "2001:db8::1"},
		{"Int128", big.NewInt(-5), int64(-5)},
		{"UInt256", new(big.Int).SetUint64(math.MaxUint64), uint64(math.MaxUint64)},
		{"UInt256", new(big.Int).Lsh(big.NewInt(1), 100), "1267650600228229401496703205376"},
		{"Int128", new(big.Int).Neg(new(big.Int).Lsh(big.NewInt(1), 127)), "-170141183460469231731687303715884105728"},
		{"Time64(3)", -(time.Hour + 2*time.Minute + 3*time.Second + 45*time.Millisecond), "-01:02:03.045"},
		{"Time", 100 * time.Hour, "100:00:00"},
		{"Map(String, UInt8)", map[string]uint8{"b": 2, "a": 1}, `{"a":1,"b":2}`},
		{"Tuple(UInt8, String)", []any{uint8(1), "a"}, `[1,"a"]`},
		{"Tuple(a UInt8, b DateTime64(3, 'UTC'))", map[string]any{"b": ms, "a": uint8(1)}, `{"a":1,"b":"2026-11-25 21:00:00.123"}`},
		{"SimpleAggregateFunction(max, DateTime64(3, 'UTC'))", ms, "2026-11-25 21:00:00.123"},
	} {
		got := normalize(c.typ, c.in)
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("normalize(%s, %T %v) = %T %#v, want %T %#v", c.typ, c.in, c.in, got, got, c.want, c.want)
		}
	}
}

func TestSplitTop(t *testing.T) {
	got := splitTop("a UInt8, b DateTime64(3, 'UTC'), c Enum8('x,y' = 1)")
	want := []string{"a UInt8", "b DateTime64(3, 'UTC')", "c Enum8('x,y' = 1)"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("splitTop = %q, want %q", got, want)
	}
}

// fakeRows is a driver.Rows over Go values, to test readRows' scanning into values of each
// column's ScanType without a server.
type fakeRows struct {
	driver.Rows // methods readRows does not call panic
	types       []driver.ColumnType
	data        [][]any
	i           int
}

type fakeColumn struct {
	name, typ string
	scan      reflect.Type
}

func (c fakeColumn) Name() string             { return c.name }
func (c fakeColumn) Nullable() bool           { return false }
func (c fakeColumn) ScanType() reflect.Type   { return c.scan }
func (c fakeColumn) DatabaseTypeName() string { return c.typ }

func (r *fakeRows) ColumnTypes() []driver.ColumnType { return r.types }
func (r *fakeRows) Next() bool                       { r.i++; return r.i <= len(r.data) }
func (r *fakeRows) Err() error                       { return nil }
func (r *fakeRows) Scan(dest ...any) error {
	for j, d := range dest {
		v := reflect.ValueOf(d).Elem()
		if x := r.data[r.i-1][j]; x == nil {
			v.SetZero()
		} else {
			v.Set(reflect.ValueOf(x))
		}
	}
	return nil
}

func TestReadRows(t *testing.T) {
	ms := time.Date(2026, 11, 25, 21, 0, 0, 123_000_000, time.UTC)
	rows := &fakeRows{
		types: []driver.ColumnType{
			fakeColumn{"serial", "UInt64", reflect.TypeOf(uint64(0))},
			fakeColumn{"error", "Int32", reflect.TypeOf(int32(0))},
			fakeColumn{"time", "DateTime64(3, 'UTC')", reflect.TypeOf(time.Time{})},
			fakeColumn{"params", "Array(String)", reflect.TypeOf([]string{})},
			fakeColumn{"note", "Nullable(String)", reflect.TypeOf((*string)(nil))},
			fakeColumn{"nothing", "Nullable(Nothing)", nil},
		},
		data: [][]any{
			{uint64(1), int32(-2145124341), ms, []string{"a"}, ptr("x"), nil},
			{uint64(math.MaxUint64), int32(0), ms.Add(time.Millisecond), []string{}, (*string)(nil), nil},
		},
	}
	res, err := readRows(rows)
	if err != nil {
		t.Fatal(err)
	}
	want := &schema.Result{
		Columns: []schema.Column{{Name: "serial", Type: "UInt64"}, {Name: "error", Type: "Int32"},
			{Name: "time", Type: "DateTime64(3, 'UTC')"}, {Name: "params", Type: "Array(String)"},
			{Name: "note", Type: "Nullable(String)"}, {Name: "nothing", Type: "Nullable(Nothing)"}},
		Rows: [][]any{
			{int64(1), int64(-2145124341), "2026-11-25 21:00:00.123", []any{"a"}, "x", nil},
			{uint64(math.MaxUint64), int64(0), "2026-11-25 21:00:00.124", []any{}, nil, nil},
		},
	}
	if !reflect.DeepEqual(res, want) {
		t.Fatalf("readRows\n got %#v\nwant %#v", res, want)
	}

	empty, err := readRows(&fakeRows{types: rows.types[:1]})
	if err != nil {
		t.Fatal(err)
	}
	if empty.Rows == nil || len(empty.Rows) != 0 || len(empty.Columns) != 1 {
		t.Fatalf("empty result = %#v, want one column and a non-nil empty Rows", empty)
	}
}
