package report

import (
	"fmt"

	"github.com/statepipe/statepipe/schema"
)

// cells reads the cells of a query's result by type without ever panicking. The adapters
// normalise values (schema.Result: integers as int64, strings as string, arrays as []any), so
// a missing row or cell, or one of another type, means the store broke that contract or the
// query changed: the report fails with an error naming what it was reading (a 503), never a
// panic. The first problem is kept in err; later reads return zero values.
type cells struct {
	what string // what the query reads, for the error
	err  error
}

func (c *cells) fail(format string, args ...any) {
	if c.err == nil {
		c.err = fmt.Errorf("cannot read %s: %s", c.what, fmt.Sprintf(format, args...))
	}
}

// first returns the first row of res, or nil (and an error) when it has none.
func (c *cells) first(res *schema.Result) []any {
	if res == nil || len(res.Rows) == 0 {
		c.fail("the store answered no row")
		return nil
	}
	return res.Rows[0]
}

func (c *cells) cell(r []any, i int) (any, bool) {
	if i >= len(r) {
		if r != nil {
			c.fail("row of %d values has no column %d", len(r), i)
		}
		return nil, false
	}
	return r[i], true
}

// str reads a String cell.
func (c *cells) str(r []any, i int) string {
	v, ok := c.cell(r, i)
	if !ok {
		return ""
	}
	s, ok := v.(string)
	if !ok {
		c.fail("column %d is %T, want a string", i, v)
	}
	return s
}

// int reads an integer cell (a UInt64 above MaxInt64 saturates).
func (c *cells) int(r []any, i int) int64 {
	v, ok := c.cell(r, i)
	if !ok {
		return 0
	}
	switch n := v.(type) {
	case int64:
		return n
	case uint64:
		if n > 1<<63-1 {
			return 1<<63 - 1
		}
		return int64(n)
	}
	c.fail("column %d is %T, want an integer", i, v)
	return 0
}

// strs reads an Array(String) cell.
func (c *cells) strs(r []any, i int) []string {
	v, ok := c.cell(r, i)
	if !ok {
		return nil
	}
	arr, ok := v.([]any)
	if !ok {
		c.fail("column %d is %T, want an array", i, v)
		return nil
	}
	out := make([]string, 0, len(arr))
	for j, e := range arr {
		s, ok := e.(string)
		if !ok {
			c.fail("element %d of column %d is %T, want a string", j, i, e)
			return nil
		}
		out = append(out, s)
	}
	return out
}

// any reads a cell as it is (nil for NULL or a missing cell).
func (c *cells) any(r []any, i int) any {
	v, _ := c.cell(r, i)
	return v
}
