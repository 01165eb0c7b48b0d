package plugin

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

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
		if len(args) < 2 {
			return "", fmt.Errorf("$__timeGroup takes 2 arguments (column, interval), got %q", strings.Join(args, ", "))
		}
		col := strings.TrimSpace(args[0])
		iv := strings.Trim(strings.TrimSpace(args[1]), `'"`)
		var d time.Duration
		if iv == "$__interval" || iv == "auto" {
			d = q.Interval
		} else {
			var err error
			if d, err = gtime.ParseDuration(iv); err != nil {
				return "", fmt.Errorf("$__timeGroup: interval %q: %v", iv, err)
			}
		}
		secs := int64(d / time.Second)
		if secs < 1 {
			secs = 1
		}
		return fmt.Sprintf("toStartOfInterval(%s, INTERVAL %d second, 'UTC')", col, secs), nil
	},
}

// ExpandMacros expands the time macros of rawSQL against the query's time range.
func ExpandMacros(q backend.DataQuery, rawSQL string) (string, error) {
	sq := &sqlutil.Query{RawSQL: rawSQL, RefID: q.RefID, Interval: q.Interval, TimeRange: q.TimeRange, MaxDataPoints: q.MaxDataPoints}
	return sqlutil.Interpolate(sq, Macros)
}

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

// baseType strips Nullable(…) and LowCardinality(…).
func baseType(t string) string { return schema.ValueType(t) }

// converter returns how to read a column's JSON values, and a sample of the Go type.
func converter(chType string) (func(json.RawMessage) (any, error), any) {
	t := baseType(chType)
	switch {
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
		if i := strings.Index(t, "'"); i >= 0 {
			if j := strings.LastIndex(t, "'"); j > i {
				if l, err := time.LoadLocation(t[i+1 : j]); err == nil {
					loc = l
				}
			}
		}
		return func(r json.RawMessage) (any, error) {
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
