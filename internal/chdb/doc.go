// Package chdb is the embedded ClickHouse adapter: it loads chDB's libchdb.so at run time
// (purego's dlopen, never linked at build time, so a binary without the library still starts
// in server mode) and implements schema.Store over the library's connection API.
//
// Inserts send the batch in ClickHouse's RowBinary format inline after the INSERT statement
// (chdb_query_n is binary-safe); queries come back as JSONCompact and are normalised to the
// value types schema.Result documents. chDB allows one connection per process, so Session is
// a process-wide singleton shared by every site hosted in the process (each has its own
// database).
//
// It must not know about components: it imports only schema.
package chdb
