// Package schema is statepipe's contract with the world and between its own parts: the
// report and state-message types and their numbering (ConfigMgr's, DESIGN §3), the msgpack and
// JSON wire codec, validation with errors that name the offending field, the ClickHouse DDL
// (numbered files embedded from ddl/) with its idempotent migrator and the cluster form of
// every statement (OnCluster: replicated, sharded by client), and the storage contract
// (Rows, Result) that both ClickHouse adapters implement.
//
// It imports nothing of the project. It must not know about Kafka, HTTP or a particular
// ClickHouse transport: adapters apply its DDL and encode its rows, not the other way round.
package schema
