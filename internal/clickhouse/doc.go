// Package clickhouse is the server adapter of the storage contract: it implements
// schema.Store over a ClickHouse server (or cluster) with github.com/ClickHouse/clickhouse-go/v2's
// native protocol. Statements go through Exec and Query; inserts use the driver's batch API
// (PrepareBatch, Append of schema.Rows.Values, Send), so a batch is one INSERT that the server
// has acknowledged when Insert returns.
//
// Query scans each column into a value of the driver's scan type and normalises it to the
// value types schema.Result documents, so results agree with the embedded adapter
// (internal/chdb) value for value: integers as int64 (uint64 only above MaxInt64), floats as
// float64, Bool as bool, arrays as []any, dates, times, UUIDs, enums and strings as strings in
// ClickHouse's text format. internal/storetest holds the contract tests both adapters run.
//
// QueryReadOnly runs analyst SQL: vetted by schema.VetSQL, on a pool of connections whose
// database is the site's, sent with the store's SQL limits, the scope of system.tables and
// system.columns and readonly = 1 as settings of the query, its answer counted as it
// arrives, at most SQL.MaxConcurrent at once, cancelled with its context or by Close.
//
// On a ClickHouse cluster (Config.Cluster, --clickhouse.cluster) the store answers Cluster,
// so that schema.Migrate writes cluster DDL (schema.OnCluster), and its connections carry
// the settings that layout needs (clusterSettings: synchronous inserts into Distributed
// tables, joins of sharded tables per shard, one replica per shard while it is up).
//
// It must not know about components: it imports only schema of the project. The DDL comes
// from schema (schema.Migrate), not from here.
package clickhouse
