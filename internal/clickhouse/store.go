package clickhouse

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/statepipe/statepipe/schema"
)

// Store implements schema.Store on a ClickHouse server over the native protocol. It is safe
// for concurrent use: the driver keeps a pool of connections (DSN max_open_conns).
type Store struct {
	conn    driver.Conn
	addr    string // hosts and database, for errors (never the password)
	opts    *ch.Options
	cluster string // Config.Cluster: the cluster the DDL runs on; "" for a single server

	// Analyst SQL runs on pools of its own, one per site database (its current database, so
	// that unqualified names resolve there), opened when first needed.
	sqlPools map[string]driver.Conn // guarded by sqlMu

	sql      schema.SQLLimits
	sqlTag   string // this store's analyst query ids: statepipe-sql-<tag>-<n>
	sqlSeq   atomic.Uint64
	sqlMu    sync.Mutex
	sqlBusy  int
	sqlShut  bool
	sqlStop  context.CancelFunc // cancels every running analyst query (Close)
	sqlCtx   context.Context
	sqlDrain chan struct{} // closed when the last running analyst query returned after Close
}

var (
	_ schema.Store     = (*Store)(nil)
	_ schema.Clustered = (*Store)(nil)
)

// Cluster is the ClickHouse cluster the store's database lives on (Config.Cluster), "" for a
// single server: schema.Migrate writes cluster DDL for it.
func (st *Store) Cluster() string { return st.cluster }

// New connects to the server cfg.DSN names and pings it.
func New(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.DSN == "" {
		return nil, errNoDSN
	}
	if err := cfg.SQL.Validate(); err != nil {
		return nil, err
	}
	opts, err := ch.ParseDSN(cfg.DSN)
	if err != nil {
		return nil, fmt.Errorf("cannot parse clickhouse dsn: %w", err)
	}
	addr := strings.Join(opts.Addr, ",") + "/" + opts.Auth.Database
	// The views and reports are written for join_use_nulls = 0 (an unmatched LEFT JOIN column
	// is its type's default); pin it whatever the server profile says. The reports' largest
	// queries (report.MaxReportIDs ids of up to 128 bytes, twice) pass the default 256 KiB of
	// max_query_size.
	if opts.Settings == nil {
		opts.Settings = ch.Settings{}
	}
	opts.Settings["join_use_nulls"] = 0
	if _, ok := opts.Settings["max_query_size"]; !ok {
		opts.Settings["max_query_size"] = 4 << 20
	}
	clusterSettings(opts.Settings, cfg.Cluster)
	conn, err := ch.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("cannot open clickhouse (%s): %w", addr, err)
	}
	if err := conn.Ping(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("cannot ping clickhouse (%s): %w", addr, err), conn.Close())
	}
	var tag [4]byte
	_, _ = rand.Read(tag[:])
	sqlCtx, sqlStop := context.WithCancel(context.Background())
	return &Store{conn: conn, addr: addr, opts: opts, cluster: cfg.Cluster, sql: cfg.SQL.OrDefault(), sqlTag: hex.EncodeToString(tag[:]),
		sqlCtx: sqlCtx, sqlStop: sqlStop, sqlPools: map[string]driver.Conn{}}, nil
}

// closeWait is how long Close waits for cancelled analyst queries to return.
const closeWait = 5 * time.Second

// Close cancels the running analyst queries (the driver sends the server a cancel), waits
// for them to return (at most closeWait) and closes the driver's connections.
func (st *Store) Close() error {
	st.sqlMu.Lock()
	var drain chan struct{}
	if !st.sqlShut {
		st.sqlShut = true
		if st.sqlBusy > 0 {
			drain = make(chan struct{})
			st.sqlDrain = drain
		}
	}
	st.sqlMu.Unlock()
	st.sqlStop()
	if drain != nil {
		select {
		case <-drain:
		case <-time.After(closeWait):
		}
	}
	st.sqlMu.Lock()
	var errs []error
	for db, pool := range st.sqlPools {
		if err := pool.Close(); err != nil {
			errs = append(errs, fmt.Errorf("cannot close clickhouse analyst connections (%s, database %s): %w", st.addr, db, err))
		}
	}
	clear(st.sqlPools)
	st.sqlMu.Unlock()
	if err := st.conn.Close(); err != nil {
		errs = append(errs, fmt.Errorf("cannot close clickhouse (%s): %w", st.addr, err))
	}
	return errors.Join(errs...)
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
	settings := ch.Settings{}
	for k, v := range schema.InsertSettings {
		settings[k] = v
	}
	batch, err := st.conn.PrepareBatch(ch.Context(ctx, ch.WithSettings(settings)), "INSERT INTO "+table+" ("+strings.Join(rows.Columns(), ", ")+")")
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

// QueryReadOnly runs one analyst statement of the site whose database is database: vetted by
// schema.VetSQL (one SELECT, nothing that writes, reads files, reaches out or reads another
// database; its probes only parse), then run in canonical form on a connection whose current
// database is database, with the store's SQL limits, the scope of system.tables and
// system.columns and readonly = 1 as settings of the query (schema.SQLLimits.EngineSettings),
// its answer counted as it arrives (schema.SQLResultError): the first row past a limit
// cancels the query, so no more than about the limit is held, plus the blocks the driver has
// read ahead (one, WithBlockBufferSize). At most SQL.MaxConcurrent run at once (one more is a
// *schema.SQLBusyError); each is cancelled when its context ends or the store closes (the
// driver sends the server a cancel).
//
// The settings travel with the query, readonly among them: the server checks the others
// against the settings in force before the query's, so they apply. A server profile that
// constrains them (or is itself readonly = 1) refuses the query, naming the setting; relax
// the profile of statepipe's user for these settings. DSN parameters the driver does not
// interpret are sent as settings with every query too.
func (st *Store) QueryReadOnly(ctx context.Context, database, query string) (*schema.Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := schema.CheckSQLDatabase(database); err != nil {
		return nil, err
	}
	if err := st.acquireSQL(); err != nil {
		return nil, err
	}
	defer st.releaseSQL()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(st.sqlCtx, cancel)()
	canonical, err := schema.VetSQL(ctx, st.Query, database, query)
	if err != nil {
		return nil, st.sqlError(ctx, err)
	}
	pool, err := st.sqlPool(database)
	if err != nil {
		return nil, err
	}
	settings := ch.Settings{}
	for _, s := range st.sql.EngineSettings(database) {
		settings[s.Name] = settingValue(s.Value)
	}
	id := "statepipe-sql-" + st.sqlTag + "-" + strconv.FormatUint(st.sqlSeq.Add(1), 10)
	rows, err := pool.Query(ch.Context(ctx, ch.WithSettings(settings), ch.WithQueryID(id), ch.WithBlockBufferSize(1)), canonical)
	if err != nil {
		return nil, st.sqlError(ctx, err)
	}
	res := &schema.Result{Columns: []schema.Column{}, Rows: [][]any{}}
	var size int64
	err = eachRow(rows, func(cols []schema.Column) { res.Columns = cols }, func(row []any) error {
		size += schema.RowBytes(row)
		if err := schema.SQLResultError(int64(len(res.Rows)+1), size, st.sql); err != nil {
			return err
		}
		res.Rows = append(res.Rows, slices.Clone(row))
		return nil
	})
	if err != nil {
		// Stop the query before Close, which would otherwise read (and drop) the rest of the
		// answer.
		cancel()
	}
	if cerr := rows.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("cannot close result: %w", cerr)
	}
	if err != nil {
		return nil, st.sqlError(ctx, err)
	}
	return res, nil
}

// sqlPool returns the analyst connections of database: a pool of the driver whose
// connections have it as their current database, opened when first needed and kept until
// Close. It holds at most SQL.MaxConcurrent connections.
func (st *Store) sqlPool(database string) (driver.Conn, error) {
	st.sqlMu.Lock()
	defer st.sqlMu.Unlock()
	if st.sqlShut {
		return nil, fmt.Errorf("cannot run sql: clickhouse store (%s) is closed: %w", st.addr, schema.ErrSQLUnavailable)
	}
	if pool, ok := st.sqlPools[database]; ok {
		return pool, nil
	}
	opts := *st.opts
	opts.Auth.Database = database
	opts.MaxOpenConns = st.sql.MaxConcurrent
	opts.MaxIdleConns = st.sql.MaxConcurrent
	pool, err := ch.Open(&opts)
	if err != nil {
		return nil, fmt.Errorf("cannot open clickhouse analyst connections (%s, database %s): %w", st.addr, database, err)
	}
	st.sqlPools[database] = pool
	return pool, nil
}

// settingValue passes whole numbers as integers (servers before settings travelled as
// strings take nothing else).
func settingValue(v any) any {
	switch x := v.(type) {
	case schema.SQLRaw:
		return string(x)
	case int64:
		return int(x)
	case float64:
		if x == float64(int64(x)) {
			return int(x)
		}
	}
	return v
}

func (st *Store) acquireSQL() error {
	st.sqlMu.Lock()
	defer st.sqlMu.Unlock()
	switch {
	case st.sqlShut:
		return fmt.Errorf("cannot run sql: clickhouse store (%s) is closed: %w", st.addr, schema.ErrSQLUnavailable)
	case st.sqlBusy >= st.sql.MaxConcurrent:
		return &schema.SQLBusyError{Running: st.sqlBusy}
	}
	st.sqlBusy++
	return nil
}

func (st *Store) releaseSQL() {
	st.sqlMu.Lock()
	defer st.sqlMu.Unlock()
	st.sqlBusy--
	if st.sqlBusy == 0 && st.sqlDrain != nil {
		close(st.sqlDrain)
		st.sqlDrain = nil
	}
}

// sqlError names what stopped an analyst query: the caller, the store closing, a limit.
func (st *Store) sqlError(ctx context.Context, err error) error {
	var fe *schema.FieldError
	switch {
	case errors.As(err, &fe):
		return err
	case st.sqlCtx.Err() != nil:
		return fmt.Errorf("cannot run sql: clickhouse store (%s) closed: %w: %w", st.addr, schema.ErrSQLUnavailable, err)
	case ctx.Err() != nil:
		return fmt.Errorf("cannot run sql: %w", ctx.Err())
	}
	return schema.SQLQueryError(err, st.sql)
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
