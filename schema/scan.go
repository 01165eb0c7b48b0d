package schema

import (
	"fmt"
	"math"
	"reflect"
)

// Scan decodes one row of normalised values (a Result's row, or the row Store.Each passes)
// into dst, one pointer per column in order, and checks every value on the way: a value of
// another type, an integer out of the destination's range, a NULL where the destination
// cannot hold one, or a row of another length is an error naming the column (by position,
// counted from 0) and what was found — never a panic. Use Result.Scan where the column names
// are at hand: its errors name the column.
//
// Destinations and what they accept (Result's normalisation: integers as int64, a UInt64
// above MaxInt64 as uint64, floats as float64, arrays as []any, the rest as string):
//
//	*string                              String (and every type the adapters return as text)
//	*int64, *int32, *int16, *int8        integers within the type's range
//	*uint64, *uint32, *uint16, *uint8    integers within the type's range (not negative)
//	*TopicType                           as *uint16
//	*float64                             floats and integers
//	*bool                                Bool, or an integer 0 or 1 (UInt8 flags)
//	*[]string                            Array(String)
//	*[]any                               any Array
//	*any                                 anything, NULL included (nil): read it yourself
//	nil                                  skips the column
//
// Scan allocates nothing but the slices of *[]string and the error, so it suits the index's
// restore, which reads tens of millions of rows.
func Scan(row []any, dst ...any) error {
	if len(row) != len(dst) {
		return fmt.Errorf("cannot decode a row of %d values into %d destinations", len(row), len(dst))
	}
	for i, d := range dst {
		if err := scanValue(row[i], d); err != nil {
			return fmt.Errorf("cannot decode column %d: %w", i, err)
		}
	}
	return nil
}

// Scan decodes row i of r into dst as the function Scan does; its errors name the column.
func (r *Result) Scan(i int, dst ...any) error {
	if r == nil || i < 0 || i >= len(r.Rows) {
		n := 0
		if r != nil {
			n = len(r.Rows)
		}
		return fmt.Errorf("cannot decode row %d: the result has %d rows", i, n)
	}
	row := r.Rows[i]
	if len(row) != len(dst) {
		return fmt.Errorf("cannot decode row %d: %d values for %d destinations", i, len(row), len(dst))
	}
	for j, d := range dst {
		if err := scanValue(row[j], d); err != nil {
			name := ""
			if j < len(r.Columns) {
				name = r.Columns[j].Name
			}
			return fmt.Errorf("cannot decode column %d (%s) of row %d: %w", j, name, i, err)
		}
	}
	return nil
}

// scanValue stores v in dst. It never passes dst to fmt, so that dst does not escape and
// callers' variables stay on their stack.
func scanValue(v any, dst any) error {
	switch d := dst.(type) {
	case nil:
		return nil
	case *any:
		*d = v
		return nil
	case *string:
		s, ok := v.(string)
		if !ok {
			return found(v, "String")
		}
		*d = s
	case *int64:
		n, err := scanInt(v, math.MinInt64, math.MaxInt64, "Int64")
		*d = n
		return err
	case *int32:
		return scanNarrow(d, v, math.MinInt32, math.MaxInt32, "Int32")
	case *int16:
		return scanNarrow(d, v, math.MinInt16, math.MaxInt16, "Int16")
	case *int8:
		return scanNarrow(d, v, math.MinInt8, math.MaxInt8, "Int8")
	case *uint64:
		switch n := v.(type) {
		case uint64:
			*d = n
		case int64:
			if n < 0 {
				return found(v, "UInt64")
			}
			*d = uint64(n)
		default:
			return found(v, "UInt64")
		}
	case *uint32:
		return scanNarrow(d, v, 0, math.MaxUint32, "UInt32")
	case *uint16:
		return scanNarrow(d, v, 0, math.MaxUint16, "UInt16")
	case *TopicType:
		return scanNarrow(d, v, 0, math.MaxUint16, "UInt16")
	case *uint8:
		return scanNarrow(d, v, 0, math.MaxUint8, "UInt8")
	case *float64:
		switch n := v.(type) {
		case float64:
			*d = n
		case int64:
			*d = float64(n)
		case uint64:
			*d = float64(n)
		default:
			return found(v, "Float64")
		}
	case *bool:
		switch b := v.(type) {
		case bool:
			*d = b
		case int64:
			if b != 0 && b != 1 {
				return found(v, "Bool")
			}
			*d = b == 1
		default:
			return found(v, "Bool")
		}
	case *[]string:
		arr, ok := v.([]any)
		if !ok {
			return found(v, "Array(String)")
		}
		out := make([]string, len(arr))
		for k, e := range arr {
			s, ok := e.(string)
			if !ok {
				return fmt.Errorf("element %d: %w", k, found(e, "String"))
			}
			out[k] = s
		}
		*d = out
	case *[]any:
		arr, ok := v.([]any)
		if !ok {
			return found(v, "Array")
		}
		*d = arr
	default:
		panic("BUG: schema.Scan cannot decode into " + reflect.TypeOf(dst).String())
	}
	return nil
}

// scanInt reads an integer value within [lo, hi].
func scanInt(v any, lo, hi int64, want string) (int64, error) {
	n, ok := v.(int64)
	if !ok || n < lo || n > hi {
		return 0, found(v, want)
	}
	return n, nil
}

// scanNarrow reads an integer value within [lo, hi] into an integer type narrower than int64.
func scanNarrow[T int8 | int16 | int32 | uint8 | uint16 | uint32 | TopicType](d *T, v any, lo, hi int64, want string) error {
	n, err := scanInt(v, lo, hi, want)
	*d = T(n)
	return err
}

// found says what a value is when another was wanted.
func found(v any, want string) error {
	switch x := v.(type) {
	case nil:
		return fmt.Errorf("found NULL, want %s", want)
	case string:
		if len(x) > 40 {
			x = x[:40] + "…"
		}
		return fmt.Errorf("found string %q, want %s", x, want)
	case []any:
		return fmt.Errorf("found an array of %d, want %s", len(x), want)
	}
	return fmt.Errorf("found %T %v, want %s", v, v, want)
}
