package chdb

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// Each runs a read statement and passes every row to fn. The engine returns the result as
// one RowBinaryWithNamesAndTypes buffer (no JSON: restoring 30 M states through JSON takes
// minutes), decoded row by row into the normalised value types of schema.Result. Supported
// column types: String, integers, Bool and arrays of them, Nullable and LowCardinality
// however they nest; convert times in the query.
func (st *Store) Each(ctx context.Context, query string, fn func(row []any) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	out, err := st.s.Query([]byte(query), "RowBinaryWithNamesAndTypes")
	if err != nil {
		return err
	}
	if len(out) == 0 {
		return nil
	}
	d := &rbDecoder{b: out}
	n := d.uvarint()
	if n > 10000 {
		return fmt.Errorf("cannot decode chdb result: %d columns", n)
	}
	names := make([]string, n)
	for i := range names {
		names[i] = d.str()
	}
	types := make([]string, n)
	for i := range types {
		types[i] = d.str()
	}
	if d.err != nil {
		return fmt.Errorf("cannot decode chdb result header: %w", d.err)
	}
	row := make([]any, n)
	for rowN := 0; len(d.b) > 0; rowN++ {
		for i, t := range types {
			row[i] = d.value(t)
			if d.err != nil {
				return fmt.Errorf("cannot decode column %s (%s) of row %d: %w", names[i], t, rowN, d.err)
			}
		}
		if err := fn(row); err != nil {
			return err
		}
		if rowN%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
	}
	return nil
}

type rbDecoder struct {
	b   []byte
	err error
}

var errShort = errors.New("truncated RowBinary")

func (d *rbDecoder) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || len(d.b) < n {
		d.err = errShort
		d.b = nil
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *rbDecoder) uvarint() int {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 || v > uint64(len(d.b)) { // a length can never exceed what is left
		d.err = errShort
		d.b = nil
		return 0
	}
	d.b = d.b[n:]
	return int(v)
}

func (d *rbDecoder) str() string { return string(d.take(d.uvarint())) }

func (d *rbDecoder) value(t string) any {
	if inner, ok := strings.CutPrefix(t, "LowCardinality("); ok {
		return d.value(strings.TrimSuffix(inner, ")")) // written as the type it wraps
	}
	if inner, ok := strings.CutPrefix(t, "Nullable("); ok {
		// A byte, 1 for NULL (nothing follows), else 0 and the value.
		if b := d.take(1); b == nil || b[0] != 0 {
			return nil
		}
		return d.value(strings.TrimSuffix(inner, ")"))
	}
	switch t {
	case "String":
		return d.str()
	case "Bool":
		b := d.take(1)
		return len(b) == 1 && b[0] != 0
	case "UInt8":
		if b := d.take(1); b != nil {
			return int64(b[0])
		}
	case "Int8":
		if b := d.take(1); b != nil {
			return int64(int8(b[0]))
		}
	case "UInt16":
		if b := d.take(2); b != nil {
			return int64(binary.LittleEndian.Uint16(b))
		}
	case "Int16":
		if b := d.take(2); b != nil {
			return int64(int16(binary.LittleEndian.Uint16(b)))
		}
	case "UInt32":
		if b := d.take(4); b != nil {
			return int64(binary.LittleEndian.Uint32(b))
		}
	case "Int32":
		if b := d.take(4); b != nil {
			return int64(int32(binary.LittleEndian.Uint32(b)))
		}
	case "UInt64":
		if b := d.take(8); b != nil {
			v := binary.LittleEndian.Uint64(b)
			if v > 1<<63-1 {
				return v
			}
			return int64(v)
		}
	case "Int64":
		if b := d.take(8); b != nil {
			return int64(binary.LittleEndian.Uint64(b))
		}
	default:
		if inner, ok := strings.CutPrefix(t, "Array("); ok {
			inner = strings.TrimSuffix(inner, ")")
			n := d.uvarint()
			if n > len(d.b) && d.err == nil {
				d.err = errShort
				return nil
			}
			arr := make([]any, 0, n)
			for i := 0; i < n && d.err == nil; i++ {
				arr = append(arr, d.value(inner))
			}
			return arr
		}
		if d.err == nil {
			d.err = fmt.Errorf("type %s is not supported by Each (convert it in the query)", t)
		}
	}
	return nil
}
