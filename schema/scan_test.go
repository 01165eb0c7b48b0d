package schema

import (
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestScan(t *testing.T) {
	var (
		s   string
		i64 int64
		i32 int32
		i16 int16
		u64 uint64
		u16 uint16
		f   float64
		b   bool
		ss  []string
		raw any
	)
	row := []any{"pc1", int64(-5), int64(7), int64(3), uint64(math.MaxUint64), int64(65535), int64(2), int64(1), []any{"a", "b"}, nil, "skipped"}
	if err := Scan(row, &s, &i64, &i32, &i16, &u64, &u16, &f, &b, &ss, &raw, nil); err != nil {
		t.Fatal(err)
	}
	got := []any{s, i64, i32, i16, u64, u16, f, b, ss, raw}
	want := []any{"pc1", int64(-5), int32(7), int16(3), uint64(math.MaxUint64), uint16(65535), 2.0, true, []string{"a", "b"}, nil}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}

	for _, c := range []struct {
		name string
		row  []any
		dst  any
		err  string
	}{
		{"string for an integer", []any{"12"}, &i64, `column 0: found string "12", want Int64`},
		{"NULL for a string", []any{nil}, &s, "column 0: found NULL, want String"},
		{"out of Int16", []any{int64(40000)}, &i16, "found int64 40000, want Int16"},
		{"out of Int32", []any{int64(math.MaxInt32 + 1)}, &i32, "want Int32"},
		{"negative for UInt16", []any{int64(-1)}, &u16, "found int64 -1, want UInt16"},
		{"negative for UInt64", []any{int64(-1)}, &u64, "want UInt64"},
		{"above Int64", []any{uint64(math.MaxUint64)}, &i64, "found uint64 18446744073709551615, want Int64"},
		{"2 for a flag", []any{int64(2)}, &b, "want Bool"},
		{"array element", []any{[]any{"a", int64(1)}}, &ss, "column 0: element 1: found int64 1, want String"},
		{"array for a string", []any{[]any{"a"}}, &s, "found an array of 1, want String"},
	} {
		err := Scan(c.row, c.dst)
		if err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%s: got %v, want an error with %q", c.name, err, c.err)
		}
	}
	if err := Scan([]any{"a", "b"}, &s); err == nil || !strings.Contains(err.Error(), "2 values into 1") {
		t.Errorf("short destinations: got %v", err)
	}
}

func TestResultScanNamesTheColumn(t *testing.T) {
	res := &Result{Columns: []Column{{Name: "client"}, {Name: "state"}}, Rows: [][]any{{"pc1", "3"}}}
	var client string
	var state int16
	err := res.Scan(0, &client, &state)
	if err == nil || err.Error() != `cannot decode column 1 (state) of row 0: found string "3", want Int16` {
		t.Fatalf("got %v", err)
	}
	if err := res.Scan(1, &client, &state); err == nil || !strings.Contains(err.Error(), "has 1 rows") {
		t.Fatalf("missing row: got %v", err)
	}
	if err := (&Result{}).Scan(0, &client); err == nil {
		t.Fatal("an empty result must be an error")
	}
}

// The index's restore scans tens of millions of rows: Scan must not allocate.
func TestScanDoesNotAllocate(t *testing.T) {
	row := []any{"pc1", int64(501), "src", int64(9), int64(3), int64(-2147024891)}
	allocs := testing.AllocsPerRun(100, func() {
		var client, topic string
		var tt uint16
		var serial uint64
		var state int16
		var code int32
		if err := Scan(row, &client, &tt, &topic, &serial, &state, &code); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("Scan allocated %v times per row", allocs)
	}
}
