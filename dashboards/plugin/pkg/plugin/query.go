package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/data"

	"github.com/statepipe/statepipe/report"
)

// QueryTypes are the query types the datasource answers, in the order editors list them:
// every report of GET /v1/reports/NAME, and sql.
var QueryTypes = []string{"compliance", "machines", "deployment", "deployments", "errors", "scan", "computer", "update", "trend", "backlog", "sql"}

// QueryModel is the JSON of one query beside Grafana's refId, datasource and hide.
type QueryModel struct {
	QueryType string `json:"queryType"`
	// Params are the report's query parameters as GET /v1/reports/NAME names them; empty
	// values are dropped. Numbers and booleans are taken as their text.
	Params map[string]any `json:"params,omitempty"`
	RawSQL string         `json:"rawSql,omitempty"` // sql only
}

// parseQuery reads a query's model and judges its type and parameters.
func parseQuery(q backend.DataQuery) (QueryModel, url.Values, error) {
	var m QueryModel
	if len(q.JSON) > 0 {
		if err := json.Unmarshal(q.JSON, &m); err != nil {
			return m, nil, &queryError{Field: "query", Message: fmt.Sprintf("cannot read the query's JSON: %v", err)}
		}
	}
	if m.QueryType == "" {
		m.QueryType = q.QueryType
	}
	if m.QueryType == "" {
		return m, nil, &queryError{Field: "queryType", Message: "missing: choose one of " + strings.Join(QueryTypes, ", ")}
	}
	if !slices.Contains(QueryTypes, m.QueryType) {
		return m, nil, &queryError{Field: "queryType", Message: fmt.Sprintf("%q is not a query type of statepipe: want one of %s", m.QueryType, strings.Join(QueryTypes, ", "))}
	}
	vals := url.Values{}
	for name, v := range m.Params {
		var s string
		switch x := v.(type) {
		case nil:
		case string:
			s = x
		case bool:
			s = strconv.FormatBool(x)
		case float64:
			s = strconv.FormatFloat(x, 'f', -1, 64)
		default:
			return m, nil, &queryError{Field: "params." + name, Message: fmt.Sprintf("must be a string, not %T", v)}
		}
		if s = strings.TrimSpace(s); s != "" {
			vals.Set(name, s)
		}
	}
	if err := checkSite(vals.Get("site")); err != nil {
		return m, nil, &queryError{Field: "params.site", Message: err.Error()}
	}
	if m.QueryType == "sql" {
		if len(vals) > 0 {
			for name := range vals {
				if name != "site" {
					return m, nil, &queryError{Field: "params." + name, Message: "sql takes no parameter but site: write it into rawSql"}
				}
			}
		}
		if strings.TrimSpace(m.RawSQL) == "" {
			return m, nil, &queryError{Field: "rawSql", Message: "empty: write one SELECT"}
		}
	}
	return m, vals, nil
}

// query answers one query.
func (d *Datasource) query(ctx context.Context, q backend.DataQuery) backend.DataResponse {
	m, vals, err := parseQuery(q)
	if err != nil {
		return errorResponse(err)
	}
	if d.client == nil {
		return errorResponse(d.settingsError())
	}
	if vals.Get("site") == "" && d.settings.Site != "" {
		vals.Set("site", d.settings.Site)
	}
	var frames data.Frames
	if m.QueryType == "sql" {
		frames, err = d.sqlQuery(ctx, q, m.RawSQL, vals)
	} else {
		frames, err = d.reportQuery(ctx, q, m.QueryType, vals)
	}
	if err != nil {
		return errorResponse(err)
	}
	for _, f := range frames {
		f.RefID = q.RefID
	}
	return backend.DataResponse{Frames: frames}
}

// reportQuery asks GET /v1/reports/NAME and maps the answer to frames.
func (d *Datasource) reportQuery(ctx context.Context, q backend.DataQuery, name string, vals url.Values) (data.Frames, error) {
	def, ok := report.Lookup(name)
	if !ok {
		return nil, &queryError{Field: "queryType", Message: fmt.Sprintf("%q is not a report of this plugin's statepipe", name)}
	}
	if name == "trend" && !q.TimeRange.From.IsZero() && !q.TimeRange.To.IsZero() {
		if vals.Get("from") == "" {
			vals.Set("from", q.TimeRange.From.UTC().Truncate(time.Second).Format(time.RFC3339))
		}
		if vals.Get("to") == "" {
			vals.Set("to", q.TimeRange.To.UTC().Truncate(time.Second).Format(time.RFC3339))
		}
	}
	// The parameters are judged here as statepipe judges them (one table of reports), so a
	// misspelt or missing one is named before anything is sent.
	if _, err := def.ParseQuery(vals); err != nil {
		var pe *report.ParamError
		if errors.As(err, &pe) {
			return nil, &queryError{Field: "params." + pe.Field, Message: pe.Message}
		}
		return nil, &queryError{Field: "params", Message: err.Error()}
	}
	mapper := reportFrames[name]
	if mapper == nil {
		return nil, fmt.Errorf("BUG: no frames for report %s", name)
	}
	return mapper(ctx, d.client, vals)
}

// checkSite judges a site code before it is sent: the site judges it too, but one of a
// megabyte would be refused by its HTTP server (431, not statepipe's JSON) before it could
// name the parameter.
func checkSite(site string) error {
	if len(site) > report.MaxParamBytes {
		return fmt.Errorf("%d bytes: a site code has at most %d", len(site), report.MaxParamBytes)
	}
	return nil
}
