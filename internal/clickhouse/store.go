package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/statepipe/statepipe/schema"
)

// Store implements schema.Store on a ClickHouse server over the native protocol. It is safe
// for concurrent use: the driver keeps a pool of connections (DSN max_open_conns).
type Store struct {
	conn driver.Conn
	addr string // hosts and database, for errors (never the password)
}

var _ schema.Store = (*Store)(nil)

// New connects to the server cfg.DSN names and pings it.
func New(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.DSN == "" {
		return nil, errNoDSN
	}
	opts, err := ch.ParseDSN(cfg.DSN)
	if err != nil {
		return nil, fmt.Errorf("cannot parse clickhouse dsn: %w", err)
	}
	addr := strings.Join(opts.Addr, ",") + "/" + opts.Auth.Database
	// The views and reports are written for join_use_nulls = 0 (an unmatched LEFT JOIN column
	// is its type's default); pin it whatever the server profile says.
	if opts.Settings == nil {
		opts.Settings = ch.Settings{}
	}
	opts.Settings["join_use_nulls"] = 0
	conn, err := ch.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("cannot open clickhouse (%s): %w", addr, err)
	}
	if err := conn.Ping(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("cannot ping clickhouse (%s): %w", addr, err), conn.Close())
	}
	return &Store{conn: conn, addr: addr}, nil
}

// Close closes the driver's connections.
func (st *Store) Close() error {
	if err := st.conn.Close(); err != nil {
		return fmt.Errorf("cannot close clickhouse (%s): %w", st.addr, err)
	}
	return nil
}

// Exec runs a statement that returns no rows.
func (st *Store) Exec(ctx context.Context, query string) error {
	return st.conn.Exec(ctx, query)
}

// Insert sends rows as one batch: PrepareBatch, Append of every row's Values, Send. It returns
// after the server acknowledged the whole insert.
func (st *Store) Insert(ctx context.Context, rows schema.Rows) error {
	n := rows.Len()
	if n == 0 {
		return nil
	}
	table := rows.Table()
	batch, err := st.conn.PrepareBatch(ctx, "INSERT INTO "+table+" ("+strings.Join(rows.Columns(), ", ")+")")
	if err != nil {
		return fmt.Errorf("cannot prepare insert of %d rows into %s: %w", n, table, err)
	}
	for i := 0; i < n; i++ {
		if err := batch.Append(rows.Values(i)...); err != nil {
			return fmt.Errorf("cannot append row %d of %d to insert into %s: %w", i, n, table, errors.Join(err, abort(batch)))
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("cannot insert %d rows into %s: %w", n, table, err)
	}
	return nil
}

// abort releases a batch that will not be sent.
func abort(b driver.Batch) error {
	if err := b.Abort(); err != nil && !errors.Is(err, ch.ErrBatchAlreadySent) {
		return fmt.Errorf("cannot abort insert: %w", err)
	}
	return nil
}

// Query runs a read statement and returns its rows normalised as schema.Result documents.
func (st *Store) Query(ctx context.Context, query string) (*schema.Result, error) {
	rows, err := st.conn.Query(ctx, query)
	if err != nil {
		return nil, err
	}
	res, err := readRows(rows)
	if cerr := rows.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("cannot close result: %w", cerr)
	}
	if err != nil {
		return nil, err
	}
	return res, nil
}

// QueryReadOnly runs one user-supplied statement with the readonly=1 setting, so the server
// refuses anything that writes, changes DDL or changes settings: what `statepipe sql` runs
// against a server. The native protocol carries one statement per query, so a second
// statement after ';' is a syntax error, not a way around it.
//
// With readonly=1 the server also refuses changes of other settings, and clickhouse-go sends
// DSN parameters it does not interpret itself (max_execution_time=…) as settings with every
// query, which can make read-only queries fail; keep such settings in the user's profile on
// the server instead of the DSN.
func (st *Store) QueryReadOnly(ctx context.Context, query string) (*schema.Result, error) {
	return st.Query(ch.Context(ctx, ch.WithSettings(ch.Settings{"readonly": 1})), query)
}

var anyType = reflect.TypeOf((*any)(nil)).Elem()

func readRows(rows driver.Rows) (*schema.Result, error) {
	res := &schema.Result{Columns: []schema.Column{}, Rows: [][]any{}}
	err := eachRow(rows, func(cols []schema.Column) { res.Columns = cols }, func(row []any) error {
		res.Rows = append(res.Rows, slices.Clone(row))
		return nil
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// eachRow scans every row into values of the driver's scan types, normalises them and passes
// them to fn (the slice is reused between rows).
func eachRow(rows driver.Rows, header func([]schema.Column), fn func(row []any) error) error {
	types := rows.ColumnTypes()
	cols := make([]schema.Column, len(types))
	norms := make([]*normalizer, len(types))
	dest := make([]any, len(types))
	for i, ct := range types {
		cols[i] = schema.Column{Name: ct.Name(), Type: ct.DatabaseTypeName()}
		norms[i] = newNormalizer(ct.DatabaseTypeName())
		t := ct.ScanType()
		if t == nil {
			t = anyType
		}
		dest[i] = reflect.New(t).Interface()
	}
	header(cols)
	vals := make([]any, len(dest))
	for n := 0; rows.Next(); n++ {
		if err := rows.Scan(dest...); err != nil {
			return fmt.Errorf("cannot scan row %d: %w", n, err)
		}
		for i, d := range dest {
			vals[i] = norms[i].normalize(reflect.ValueOf(d).Elem().Interface())
		}
		if err := fn(vals); err != nil {
			return err
		}
	}
	return rows.Err()
}

// Each runs a read statement and passes every row to fn as it arrives, without holding the
// result (the slice is reused between rows; values are normalised as in Query).
func (st *Store) Each(ctx context.Context, query string, fn func(row []any) error) error {
	rows, err := st.conn.Query(ctx, query)
	if err != nil {
		return err
	}
	err = eachRow(rows, func([]schema.Column) {}, fn)
	if cerr := rows.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("cannot close result: %w", cerr)
	}
	return err
}
