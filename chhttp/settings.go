package chhttp

import (
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/statepipe/statepipe/schema"
)

// Request parameters of ClickHouse's HTTP interface that are not settings: read here or
// ignored (they shape the exchange, never the answer: compress and decompress frame the
// bodies in ClickHouse's compressed blocks, compress.go). session_id is ignored: every query
// stands alone, and a session could only hold settings, which cannot change.
var requestParams = map[string]bool{
	"query": true, "database": true, "default_format": true, "user": true, "password": true,
	"query_id": true, "session_id": true, "session_timeout": true, "session_check": true,
	"quota_key": true, "compress": true, "decompress": true, "buffer_size": true,
	"wait_end_of_query": true, "client_protocol_version": true, "role": true, "stacktrace": true,
}

// harmlessSettings are settings accepted and ignored: they ask for progress headers, for
// cancelling a query when its client goes away (always so here), for compression (gzip is
// honoured), or they are about input, which a read-only interface takes none of.
var harmlessSettings = map[string]bool{
	"send_progress_in_http_headers": true, "http_headers_progress_interval_ms": true,
	"cancel_http_readonly_queries_on_client_close": true, "enable_http_compression": true,
	"http_zlib_compression_level": true, "http_response_buffer_size": true, "http_wait_end_of_query": true,
	"date_time_input_format": true, "log_comment": true, "cast_string_to_dynamic_use_inference": true,
}

// siteSettings returns the settings an analyst query runs with on the embedded engine, by
// name, as text: the analyst connection's format settings and schema.SQLLimits.EngineSettings.
func siteSettings(database string, limits schema.SQLLimits) []schema.SQLSetting {
	s := []schema.SQLSetting{{Name: "output_format_json_quote_64bit_integers", Value: int64(0)},
		{Name: "join_use_nulls", Value: int64(0)}, {Name: "max_query_size", Value: int64(4 << 20)}}
	return append(s, limits.EngineSettings(database)...)
}

// settingText is a setting's value as system.settings shows it.
func settingText(v any) string {
	switch x := v.(type) {
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case string:
		return x
	case schema.SQLRaw:
		return string(x)
	}
	return fmt.Sprint(v)
}

// sameValue: a URL value the same as the site's ("30" and "30.0" are).
func sameValue(given, site string) bool {
	if given == site {
		return true
	}
	a, errA := strconv.ParseFloat(given, 64)
	b, errB := strconv.ParseFloat(site, 64)
	return errA == nil && errB == nil && a == b
}

// checkParams applies the settings policy to a request's URL parameters: request parameters
// and harmless settings pass, a setting with the site's value passes, query parameters
// (param_*) are not supported, and any other setting is refused as ClickHouse refuses a
// setting change on a readonly = 1 connection.
func (h *Handler) checkParams(q url.Values) *chError {
	names := make([]string, 0, len(q))
	for name := range q {
		names = append(names, name)
	}
	sort.Strings(names)
	site := map[string]string{}
	for _, s := range h.settings {
		site[s.Name] = settingText(s.Value)
	}
	for _, name := range names {
		value := q.Get(name)
		switch {
		case requestParams[name] || harmlessSettings[name] || strings.HasPrefix(name, "input_format_"):
		case strings.HasPrefix(name, "param_"):
			return &chError{code: codeNotImplemented, msg: fmt.Sprintf("query parameters (%s) are not supported by statepipe's ClickHouse interface: write the values into the statement, or bind them in the client", clip(name))}
		default:
			if v, ok := site[name]; ok && sameValue(value, v) {
				continue
			}
			return &chError{code: codeReadonly, msg: fmt.Sprintf("Cannot modify '%s' setting in readonly mode: statepipe's ClickHouse interface runs every query with the site's settings (its limits are --sql.*)", clip(name))}
		}
	}
	return nil
}

// systemSettings is how a statement names system.settings.
var systemSettings = regexp.MustCompile(`(?i)\bsystem\s*\.\s*settings\b`)

// withSettingsTable answers reads of system.settings — which clients read when they connect,
// to learn which settings they may send — with the site's settings, each readonly: the
// statement reads them from a values() table in its place, and is then vetted as any other
// (the guard refuses system.settings itself).
func (h *Handler) withSettingsTable(query string) string {
	if !systemSettings.MatchString(query) {
		return query
	}
	return systemSettings.ReplaceAllLiteralString(query, h.settingsTable)
}

// settingsTable renders the site's settings as a values() subquery with system.settings'
// main columns.
func settingsTable(settings []schema.SQLSetting) string {
	var b strings.Builder
	b.WriteString("(SELECT * FROM values('name String, value String, changed UInt8, description String, readonly UInt8, type String, default String'")
	for _, s := range settings {
		fmt.Fprintf(&b, ", (%s, %s, 1, %s, 1, 'String', '')", schema.QuoteSQL(s.Name), schema.QuoteSQL(settingText(s.Value)),
			schema.QuoteSQL("statepipe: the site's setting for analyst SQL; cannot be changed"))
	}
	b.WriteString("))")
	return b.String()
}
