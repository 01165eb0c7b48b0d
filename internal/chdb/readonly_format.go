package chdb

import (
	"context"

	"github.com/statepipe/statepipe/schema"
)

// QueryReadOnlyFormat runs one analyst statement as QueryReadOnly does — the same slots,
// connections, limits, readonly = 1 and kill on cancel — but answers in an output format of
// the engine's: the statement's trailing FORMAT clause, or defaultFormat
// (schema.VetSQLFormat). The answer is the engine's bytes, counted as they stream: its rows
// (the engine's count of each block) against --sql.max-result-rows and its bytes, in the
// format, against --sql.max-result-bytes; the first block past either stops the query. So no
// more than about MaxResultBytes of it is ever held.
//
// The engine writes each block as a document of its own. Blocks of a concatenable format
// (schema.SQLFormat) are joined; for any other format an answer of several blocks, once
// counted within the limits, is asked for again whole (chdb_query_n): one JSON document, one
// Parquet file. Errors are QueryReadOnly's, and a *schema.FieldError naming format for a
// format that is not allowed.
func (st *Store) QueryReadOnlyFormat(ctx context.Context, database, query, defaultFormat string) (*schema.SQLAnswer, error) {
	return st.sql.queryFormat(ctx, database, query, defaultFormat)
}

func (a *analysts) queryFormat(ctx context.Context, database, query, defaultFormat string) (*schema.SQLAnswer, error) {
	if err := a.enter(ctx, database); err != nil {
		return nil, err
	}
	defer a.release()
	canonical, format, err := schema.VetSQLFormat(ctx, a.probe, database, query, defaultFormat)
	if err != nil {
		return nil, err
	}
	ans := &schema.SQLAnswer{Format: format}
	err = a.run(ctx, database, canonical, func(c *conn, text []byte) error {
		chunks := 0
		err := c.streamRows(text, format.Name, func(chunk []byte, rows uint64, read readStats) error {
			chunks++
			ans.Rows += int64(rows)
			ans.ReadRows, ans.ReadBytes = ans.ReadRows+int64(read.rows), ans.ReadBytes+int64(read.bytes)
			if err := schema.SQLResultError(ans.Rows, int64(len(ans.Body)+len(chunk)), a.limits); err != nil {
				return err // stops the query
			}
			ans.Body = append(ans.Body, chunk...)
			return nil
		})
		if err != nil || chunks == 1 || format.Concatenable {
			return err
		}
		// Documents of their own (or none: a header alone): the answer again, whole, now that
		// its size is known.
		var read readStats
		ans.Body, read, err = c.queryStats(text, format.Name)
		ans.ReadRows, ans.ReadBytes = int64(read.rows), int64(read.bytes) // the statement that answered
		return err
	})
	if err != nil {
		return nil, err
	}
	return ans, nil
}
