package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/variants"
	"github.com/grafana/grafana-foundation-sdk/go/common"
)

// PluginID is the statepipe datasource plugin's id: the "type" of its datasource references.
const PluginID = "statepipe-reports-datasource"

// Provisioned datasource uids (provisioning/datasources/statepipe.yaml).
const (
	StatepipeUID  = "statepipe"
	PrometheusUID = "prometheus"
)

func statepipeDS() common.DataSourceRef {
	return common.DataSourceRef{Type: cog.ToPtr(PluginID), Uid: cog.ToPtr(StatepipeUID)}
}

func prometheusDS() common.DataSourceRef {
	return common.DataSourceRef{Type: cog.ToPtr("prometheus"), Uid: cog.ToPtr(PrometheusUID)}
}

// Query is one target of the statepipe datasource: the plugin's query model (shared with the
// plugin's backend and frontend). QueryType names a report of GET /v1/reports/NAME, or "sql";
// Params are the report's query parameters exactly as the API names them (empty values are
// dropped by the backend); RawSQL is the statement of a "sql" query, with the time macros.
type Query struct {
	RefID      string                `json:"refId"`
	Hide       *bool                 `json:"hide,omitempty"`
	Datasource *common.DataSourceRef `json:"datasource,omitempty"`
	QueryType  string                `json:"queryType"`
	Params     map[string]string     `json:"params,omitempty"`
	RawSQL     string                `json:"rawSql,omitempty"`
}

var _ variants.Dataquery = Query{}

// queryFields are Query's JSON names, exactly.
var queryFields = []string{"refId", "hide", "datasource", "queryType", "params", "rawSql"}

// ImplementsDataqueryVariant marks Query as a dataquery for the foundation SDK.
func (Query) ImplementsDataqueryVariant() {}

// DataqueryType is the plugin id, as the SDK's runtime keys its variants.
func (Query) DataqueryType() string { return PluginID }

// Equals compares two queries field by field.
func (q Query) Equals(other variants.Dataquery) bool {
	o, ok := other.(Query)
	if !ok {
		if p, isPtr := other.(*Query); isPtr && p != nil {
			o, ok = *p, true
		}
	}
	if !ok {
		return false
	}
	sameDS := (q.Datasource == nil) == (o.Datasource == nil)
	if sameDS && q.Datasource != nil {
		sameDS = ptrEq(q.Datasource.Type, o.Datasource.Type) && ptrEq(q.Datasource.Uid, o.Datasource.Uid)
	}
	return q.RefID == o.RefID && ptrEq(q.Hide, o.Hide) && sameDS && q.QueryType == o.QueryType &&
		maps.Equal(q.Params, o.Params) && q.RawSQL == o.RawSQL
}

func ptrEq[T comparable](a, b *T) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// Validate checks the query against the API's table of reports (api.go): a known query type,
// its parameters only, the required ones present, and a statement for sql alone.
func (q Query) Validate() error {
	return checkQuery(q.QueryType, q.Params, q.RawSQL)
}

// queryVariant lets the SDK's runtime decode statepipe targets, strictly (unknown fields
// refused) where it decodes strictly.
func queryVariant() variants.DataqueryConfig {
	decode := func(strict bool) func([]byte) (variants.Dataquery, error) {
		return func(raw []byte) (variants.Dataquery, error) {
			var q Query
			dec := json.NewDecoder(bytes.NewReader(raw))
			if strict {
				dec.DisallowUnknownFields()
				// encoding/json matches names regardless of case; the plugin does not.
				var fields map[string]json.RawMessage
				if err := json.Unmarshal(raw, &fields); err != nil {
					return nil, fmt.Errorf("cannot decode statepipe query (%s): %w", raw, err)
				}
				for name := range fields {
					if !slices.Contains(queryFields, name) {
						return nil, fmt.Errorf("cannot decode statepipe query (%s): unknown field %q (fields: %v)", raw, name, queryFields)
					}
				}
			}
			if err := dec.Decode(&q); err != nil {
				return nil, fmt.Errorf("cannot decode statepipe query (%s): %w", raw, err)
			}
			return q, nil
		}
	}
	return variants.DataqueryConfig{Identifier: PluginID, DataqueryUnmarshaler: decode(false), StrictDataqueryUnmarshaler: decode(true)}
}

// QueryBuilder builds a statepipe target.
type QueryBuilder struct{ q Query }

var _ cog.Builder[variants.Dataquery] = (*QueryBuilder)(nil)

// Report starts a target asking report name with params (values may be "$variables").
func Report(refID, name string, params map[string]string) *QueryBuilder {
	return &QueryBuilder{q: Query{RefID: refID, Datasource: cog.ToPtr(statepipeDS()), QueryType: name, Params: params}}
}

// SQL starts a target running a read-only statement on POST /v1/sql.
func SQL(refID, stmt string) *QueryBuilder {
	return &QueryBuilder{q: Query{RefID: refID, Datasource: cog.ToPtr(statepipeDS()), QueryType: "sql", RawSQL: stmt}}
}

// Build checks the target against the API (a dashboard is never written with a query the
// API refuses).
func (b *QueryBuilder) Build() (variants.Dataquery, error) {
	if err := b.q.Validate(); err != nil {
		// The SDK's panel builders collect cog.BuildErrors (and assert that type).
		return nil, cog.MakeBuildErrors("targets."+b.q.RefID, err)
	}
	return b.q, nil
}
