package report

import (
	"fmt"

	"github.com/statepipe/statepipe/schema"
)

// Result rows are decoded with schema's checked decoding (Result.Scan): the adapters
// normalise values (integers as int64, strings as string, arrays as []any), so a missing row,
// a row of another length or a value of another type means the store broke that contract or
// the query changed, and the report fails with an error naming what it was reading (a 503),
// never a panic.

// scanRow decodes row i of res into dst; what names the query's subject for the error.
func scanRow(res *schema.Result, i int, what string, dst ...any) error {
	if res == nil || i >= len(res.Rows) {
		return fmt.Errorf("cannot read %s: the store answered no row", what)
	}
	if err := res.Scan(i, dst...); err != nil {
		return fmt.Errorf("cannot read %s: %w", what, err)
	}
	return nil
}

// count runs a query answering one integer.
func count(res *schema.Result, err error, what string) (int64, error) {
	if err != nil {
		return 0, err
	}
	var n int64
	return n, scanRow(res, 0, what, &n)
}

// stringColumn returns column i of every row as strings.
func stringColumn(res *schema.Result, i int, what string) ([]string, error) {
	out := make([]string, len(res.Rows))
	for j, r := range res.Rows {
		if i >= len(r) {
			return nil, fmt.Errorf("cannot read %s: row %d has %d values, no column %d", what, j, len(r), i)
		}
		if err := schema.Scan(r[i:i+1], &out[j]); err != nil {
			return nil, fmt.Errorf("cannot read %s: row %d: %w", what, j, err)
		}
	}
	return out, nil
}
