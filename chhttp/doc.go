// Package chhttp serves the subset of ClickHouse's HTTP interface that standard ClickHouse
// clients use (clickhouse-connect, @clickhouse/client, JDBC, Grafana's datasource), read-only,
// over a site's analyst SQL: GET and POST with the query in the `query` parameter or the body,
// `default_format` and FORMAT clauses answered in the engine's own formats, credentials
// mapped to the site's reader and admin tokens, query settings as URL parameters accepted or
// refused, ClickHouse's response headers and error format, `/ping`.
//
// It owns the protocol: parameters, headers, the settings policy, authentication and the
// mapping of statepipe's refusals to ClickHouse's error codes. It must not decide what a
// statement may do: every statement goes to the store's analyst SQL (Store, the same guard,
// connections and limits as POST /v1/sql), which vets it. It never changes a setting of the
// engine: a URL setting is accepted only when it changes nothing about the answer.
package chhttp
