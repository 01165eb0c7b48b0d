// Package chdb is the embedded ClickHouse adapter: it loads chDB's libchdb.so at run time
// (purego's dlopen, never linked at build time, so a binary without the library still starts
// in server mode) and implements schema.Store over the library's connection API.
//
// Inserts spool the batch in ClickHouse's RowBinary format and read it with INSERT … FROM
// INFILE; queries come back as JSONCompact (Each: RowBinaryWithNamesAndTypes) and are
// normalised to the value types schema.Result documents. chDB allows one data path per
// process, so Session is a process-wide singleton shared by every site hosted in the process
// (each has its own database). A chDB connection runs its statements one at a time, so
// statements, inserts and reports share the session's primary connection while analyst SQL
// (QueryReadOnly, readonly.go) runs on connections of its own, each scoped to one site's
// database, with limits, readonly = 1 and a control connection that kills a query whose
// caller went away; its answer streams block by block (chdb_stream_query_n) and is counted as
// it arrives, so it is never held whole. Go's fault handlers are put back after every
// chdb_connect (signals.go).
//
// It must not know about components: it imports only schema.
package chdb
