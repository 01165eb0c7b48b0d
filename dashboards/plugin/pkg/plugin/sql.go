package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // DateTime('Europe/Berlin') columns, wherever Grafana runs

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/backend/gtime"
	"github.com/grafana/grafana-plugin-sdk-go/data"
	"github.com/grafana/grafana-plugin-sdk-go/data/sqlutil"

	"github.com/statepipe/statepipe/schema"
)

// chTime is a time as a ClickHouse DateTime in UTC, to the second.
func chTime(t time.Time) string {
	return fmt.Sprintf("toDateTime('%s', 'UTC')", t.UTC().Format(time.DateTime))
}

// column is a macro's first argument, trimmed; an empty one is an error.
func macroColumn(name string, args []string, want int) (string, error) {
	if len(args) != want || strings.TrimSpace(args[0]) == "" {
		return "", fmt.Errorf("$__%s takes %d argument(s), got %q", name, want, strings.Join(args, ", "))
	}
	return strings.TrimSpace(args[0]), nil
}

// noArgs is true for $__m() and $__m.
func noArgs(args []string) bool {
	return len(args) == 0 || (len(args) == 1 && strings.TrimSpace(args[0]) == "")
}

// Macros are the SDK's time macros for ClickHouse, in UTC to the second:
// $__timeFilter(col), $__timeFrom(), $__timeTo(), $__timeGroup(col, interval). $__timeFrom(col)
// and $__timeTo(col) are also taken as the SDK writes them: col >= from, col <= to.
var Macros = sqlutil.Macros{
	"timeFilter": func(q *sqlutil.Query, args []string) (string, error) {
		col, err := macroColumn("timeFilter", args, 1)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("%s >= %s AND %s <= %s", col, chTime(q.TimeRange.From), col, chTime(q.TimeRange.To)), nil
	},
	"timeFrom": func(q *sqlutil.Query, args []string) (string, error) {
		if noArgs(args) {
			return chTime(q.TimeRange.From), nil
		}
		col, err := macroColumn("timeFrom", args, 1)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("%s >= %s", col, chTime(q.TimeRange.From)), nil
	},
	"timeTo": func(q *sqlutil.Query, args []string) (string, error) {
		if noArgs(args) {
			return chTime(q.TimeRange.To), nil
		}
		col, err := macroColumn("timeTo", args, 1)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("%s <= %s", col, chTime(q.TimeRange.To)), nil
	},
	"timeGroup": func(q *sqlutil.Query, args []string) (string, error) {
		if len(args) != 2 || strings.TrimSpace(args[0]) == "" || strings.TrimSpace(args[1]) == "" {
			return "", fmt.Errorf("$__timeGroup takes 2 arguments (column, interval), got %q", strings.Join(args, ", "))
		}
		col := strings.TrimSpace(args[0])
		iv := strings.Trim(strings.TrimSpace(args[1]), `'"`)
		var d time.Duration
		if iv == "$__interval" || iv == "auto" {
			d = max(q.Interval, time.Second)
		} else {
			var err error
			if d, err = groupInterval(iv); err != nil {
				return "", fmt.Errorf("$__timeGroup: interval %q: %v", iv, err)
			}
		}
		return fmt.Sprintf("toStartOfInterval(%s, INTERVAL %d second, 'UTC')", col, int64(d/time.Second)), nil
	},
}

// groupInterval reads $__timeGroup's interval (5m, 1h, 1d, 1w, 1M, 1y, Go durations): at least
// a second (the grouping is to the second), and not so long that it overflows (gtime wraps
// 1000y around silently).
func groupInterval(iv string) (time.Duration, error) {
	d, err := gtime.ParseDuration(iv)
	if err != nil {
		return 0, err
	}
	units := map[byte]float64{'d': 86400, 'w': 7 * 86400, 'M': 365.25 * 86400 / 12, 'y': 365.25 * 86400}
	if n := len(iv); n > 1 && units[iv[n-1]] != 0 {
		if num, err := strconv.ParseFloat(iv[:n-1], 64); err == nil && math.Abs(num*units[iv[n-1]]-d.Seconds()) > 1 {
			return 0, errors.New("too long: at most about 290 years")
		}
	}
	if d < time.Second {
		return 0, errors.New("must be at least 1s: the grouping is to the second")
	}
	return d, nil
}

// ExpandMacros expands the time macros of rawSQL against the query's time range. Macros are
// expanded in the statement's code only: the text of string literals, quoted identifiers,
// heredocs and comments is kept as it is ('$__timeFrom()' stays a string), and a macro's
// arguments may hold literals with commas or parentheses ($__timeFilter(parseDateTime(x, '%Y,%m'))).
func ExpandMacros(q backend.DataQuery, rawSQL string) (string, error) {
	masked, restore := maskLiterals(rawSQL)
	sq := &sqlutil.Query{RawSQL: masked, RefID: q.RefID, Interval: q.Interval, TimeRange: q.TimeRange, MaxDataPoints: q.MaxDataPoints}
	out, err := sqlutil.Interpolate(sq, Macros)
	if err != nil {
		return rawSQL, errors.New(restore(err.Error()))
	}
	return restore(out), nil
}

// maskLiterals replaces each string literal, quoted identifier, heredoc and comment of a
// ClickHouse statement holding $, a comma or a parenthesis by a placeholder holding no $, comma or parenthesis (NUL, its index,
// NUL), and returns a function putting them back. A statement holding NUL is left as it is.
func maskLiterals(sql string) (string, func(string) string) {
	if strings.ContainsRune(sql, 0) {
		return sql, func(s string) string { return s }
	}
	var parts []string
	var b strings.Builder
	mask := func(lit string) {
		if !strings.ContainsAny(lit, "$(),") { // nothing a macro could take: '1h' stays an interval
			b.WriteString(lit)
			return
		}
		fmt.Fprintf(&b, "\x00%d\x00", len(parts))
		parts = append(parts, lit)
	}
	for i := 0; i < len(sql); {
		c := sql[i]
		switch {
		case c == '\'' || c == '"' || c == '`':
			j := i + 1
			for j < len(sql) {
				if sql[j] == '\\' {
					j += 2
					continue
				}
				if sql[j] == c {
					if j+1 < len(sql) && sql[j+1] == c { // '' inside '…'
						j += 2
						continue
					}
					break
				}
				j++
			}
			j = min(j+1, len(sql))
			mask(sql[i:j])
			i = j
		case c == '-' && strings.HasPrefix(sql[i:], "--"), c == '#' && (strings.HasPrefix(sql[i:], "# ") || strings.HasPrefix(sql[i:], "#!")):
			j := strings.IndexByte(sql[i:], '\n')
			if j < 0 {
				j = len(sql) - i
			}
			mask(sql[i : i+j])
			i += j
		case c == '/' && strings.HasPrefix(sql[i:], "/*"):
			j := strings.Index(sql[i+2:], "*/")
			end := len(sql)
			if j >= 0 {
				end = i + 2 + j + 2
			}
			mask(sql[i:end])
			i = end
		case c == '$':
			if m := heredocTag.FindString(sql[i:]); m != "" {
				end := len(sql)
				if j := strings.Index(sql[i+len(m):], m); j >= 0 {
					end = i + len(m) + j + len(m)
				}
				mask(sql[i:end])
				i = end
				continue
			}
			b.WriteByte(c)
			i++
		default:
			b.WriteByte(c)
			i++
		}
	}
	if len(parts) == 0 {
		return sql, func(s string) string { return s }
	}
	return b.String(), func(s string) string {
		// in an error message a placeholder may be quoted (%q): \x000\x00
		return placeholder.ReplaceAllStringFunc(s, func(m string) string {
			n, err := strconv.Atoi(placeholder.FindStringSubmatch(m)[1])
			if err != nil || n >= len(parts) {
				return m
			}
			return parts[n]
		})
	}
}

var (
	heredocTag  = regexp.MustCompile(`^\$[A-Za-z0-9_]*\$`) // ClickHouse's $$…$$ and $tag$…$tag$
	placeholder = regexp.MustCompile(`(?:\x00|\\x00)([0-9]+)(?:\x00|\\x00)`)
)

// sqlAnswer is the answer of POST /v1/sql: integers are kept exact.
type sqlAnswer struct {
	Columns []schema.Column     `json:"columns"`
	Rows    [][]json.RawMessage `json:"rows"`
}

func (c *client) sql(ctx context.Context, query string, vals url.Values) (*sqlAnswer, string, error) {
	var ans sqlAnswer
	shown, err := c.do(ctx, http.MethodPost, "/v1/sql", vals, []byte(query), &ans)
	return &ans, shown, err
}

func (d *Datasource) sqlQuery(ctx context.Context, q backend.DataQuery, rawSQL string, vals url.Values) (data.Frames, error) {
	query, err := ExpandMacros(q, rawSQL)
	if err != nil {
		return nil, &queryError{Field: "rawSql", Message: err.Error()}
	}
	ans, shown, err := d.client.sql(ctx, query, vals)
	if err != nil {
		return nil, err
	}
	f, err := sqlFrame(ans)
	if err != nil {
		return nil, err
	}
	f.Meta = &data.FrameMeta{ExecutedQueryString: shown + "\n" + query, PreferredVisualization: data.VisTypeTable}
	return data.Frames{f}, nil
}

// sqlFrame maps an answer's columns to typed fields (FRAMES.md).
func sqlFrame(ans *sqlAnswer) (*data.Frame, error) {
	f := data.NewFrame("sql")
	for i, col := range ans.Columns {
		conv, sample := converter(col.Type)
		nullable := strings.Contains(col.Type, "Nullable(")
		n := len(ans.Rows)
		field := data.NewFieldFromFieldType(fieldType(sample, nullable), n)
		field.Name = col.Name
		field.Config = &data.FieldConfig{DisplayNameFromDS: col.Name}
		for r, row := range ans.Rows {
			if i >= len(row) {
				return nil, fmt.Errorf("cannot read the SQL answer: row %d has %d values for %d columns", r, len(row), len(ans.Columns))
			}
			raw := row[i]
			if string(raw) == "null" {
				if !nullable && isFloat(col.Type) {
					// statepipe writes NaN and ±Inf, which JSON cannot hold, as null (avg of no
					// rows, 0/0): the field keeps its type and shows NaN.
					field.Set(r, math.NaN())
					continue
				}
				if !nullable {
					return nil, fmt.Errorf("cannot read the SQL answer: column %s (%s) holds null in row %d", col.Name, col.Type, r)
				}
				continue
			}
			v, err := conv(raw)
			if err != nil {
				return nil, fmt.Errorf("cannot read the SQL answer: column %s (%s), row %d: %v", col.Name, col.Type, r, err)
			}
			if nullable {
				field.Set(r, pointerTo(v))
			} else {
				field.Set(r, v)
			}
		}
		f.Fields = append(f.Fields, field)
	}
	return f, nil
}

func pointerTo(v any) any {
	switch x := v.(type) {
	case int64:
		return &x
	case uint64:
		return &x
	case float64:
		return &x
	case bool:
		return &x
	case time.Time:
		return &x
	case string:
		return &x
	}
	panic(fmt.Sprintf("BUG: no pointer type for %T", v))
}

func fieldType(sample any, nullable bool) data.FieldType {
	t := data.FieldTypeFor(sample)
	if nullable {
		return t.NullableType()
	}
	return t
}

// wideInt is true for ClickHouse's integers wider than 64 bits.
func wideInt(t string) bool {
	switch t {
	case "Int128", "Int256", "UInt128", "UInt256":
		return true
	}
	return false
}

// isFloat is true for a Float32 or Float64 column (in its wrappers).
func isFloat(chType string) bool { return strings.HasPrefix(baseType(chType), "Float") }

// baseType strips Nullable(…) and LowCardinality(…).
func baseType(t string) string { return schema.ValueType(t) }

// converter returns how to read a column's JSON values, and a sample of the Go type.
func converter(chType string) (func(json.RawMessage) (any, error), any) {
	t := baseType(chType)
	switch {
	case wideInt(t):
		// Int128, UInt256 …: statepipe writes those beyond 64 bits as text; a float64 holds
		// every one (exact up to 2^53), as Grafana's ClickHouse datasource reads them.
		return func(r json.RawMessage) (any, error) {
			text := string(r)
			var s string
			if json.Unmarshal(r, &s) == nil {
				text = s
			}
			f, _, err := big.ParseFloat(text, 10, 64, big.ToNearestEven)
			if err != nil {
				return nil, fmt.Errorf("cannot read %q as an integer", text)
			}
			v, _ := f.Float64()
			return v, nil
		}, float64(0)
	case strings.HasPrefix(t, "UInt"):
		return func(r json.RawMessage) (any, error) { return strconv.ParseUint(string(r), 10, 64) }, uint64(0)
	case strings.HasPrefix(t, "Int"):
		return func(r json.RawMessage) (any, error) { return strconv.ParseInt(string(r), 10, 64) }, int64(0)
	case strings.HasPrefix(t, "Float"), strings.HasPrefix(t, "Decimal"):
		return func(r json.RawMessage) (any, error) {
			var s string
			if json.Unmarshal(r, &s) == nil { // a Decimal may come as text
				return strconv.ParseFloat(s, 64)
			}
			v, err := strconv.ParseFloat(string(r), 64)
			if err == nil && (math.IsNaN(v) || math.IsInf(v, 0)) {
				return 0.0, nil
			}
			return v, err
		}, float64(0)
	case t == "Bool":
		return func(r json.RawMessage) (any, error) { return strconv.ParseBool(string(r)) }, false
	case strings.HasPrefix(t, "DateTime"), t == "Date", t == "Date32":
		loc := time.UTC
		var locErr error
		if i := strings.Index(t, "'"); i >= 0 {
			if j := strings.LastIndex(t, "'"); j > i {
				// the zone database is in the binary (time/tzdata): Grafana on Windows has none
				if loc, locErr = time.LoadLocation(t[i+1 : j]); locErr != nil {
					locErr = fmt.Errorf("unknown time zone %q: %v", t[i+1:j], locErr)
				}
			}
		}
		return func(r json.RawMessage) (any, error) {
			if locErr != nil { // read in UTC, every time would be shifted
				return nil, locErr
			}
			var s string
			if err := json.Unmarshal(r, &s); err != nil {
				return nil, err
			}
			for _, layout := range []string{"2006-01-02 15:04:05.999999999", time.DateOnly, time.RFC3339Nano} {
				if tm, err := time.ParseInLocation(layout, s, loc); err == nil {
					return tm.UTC(), nil
				}
			}
			return nil, fmt.Errorf("cannot read %q as a time", s)
		}, time.Time{}
	}
	return func(r json.RawMessage) (any, error) {
		var s string
		if json.Unmarshal(r, &s) == nil {
			return s, nil
		}
		return string(r), nil // arrays, tuples, maps: their JSON
	}, ""
}
