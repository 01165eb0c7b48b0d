// Package plugin is the backend of the statepipe Grafana datasource: it answers Grafana's
// queries (every report of GET /v1/reports/NAME, and analyst SQL with the SDK's time macros)
// as data frames, backs "Save & test" (CheckHealth) and lists sites, update lists,
// collections and deployments for template variables (resources).
//
// It talks only to statepipe's HTTP API with the datasource's reader token, never to
// ClickHouse, so authentication and read-only enforcement stay in statepipe. It must not
// write: every request it sends is a report, a read-only SQL statement or the backlog.
package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/backend/instancemgmt"
)

// ID is the plugin id of src/plugin.json.
const ID = "statepipe-reports-datasource"

// Settings are the datasource's jsonData, with the token from secureJsonData.
type Settings struct {
	URL   string `json:"url"`
	Site  string `json:"site"` // empty: the site URL serves
	Token string `json:"-"`    // secureJsonData.token: the reader token, sent as Authorization: Bearer
}

// LoadSettings reads a datasource instance's settings.
func LoadSettings(s backend.DataSourceInstanceSettings) (Settings, error) {
	var st Settings
	if len(s.JSONData) > 0 {
		if err := json.Unmarshal(s.JSONData, &st); err != nil {
			return st, fmt.Errorf("cannot read the datasource's settings (jsonData): %w", err)
		}
	}
	if st.URL == "" {
		st.URL = s.URL // the URL field of Grafana's own datasource form, if the editor used it
	}
	st.Token = s.DecryptedSecureJSONData["token"]
	st.Site = strings.TrimSpace(st.Site)
	return st, nil
}

// Datasource is one configured statepipe datasource.
type Datasource struct {
	settings Settings
	client   *client // nil when the URL is malformed: urlErr says why
	urlErr   error
	field    string // what urlErr is about: "url", or "settings" when jsonData is unreadable
}

// settingsError is what is wrong with a datasource that has no client, and which setting.
func (d *Datasource) settingsError() *queryError {
	return &queryError{Field: d.field, Message: d.urlErr.Error()}
}

var (
	_ backend.QueryDataHandler      = (*Datasource)(nil)
	_ backend.CheckHealthHandler    = (*Datasource)(nil)
	_ backend.CallResourceHandler   = (*Datasource)(nil)
	_ instancemgmt.InstanceDisposer = (*Datasource)(nil)
)

// NewDatasource builds a datasource from its settings. A malformed URL does not fail the
// instance: every query and "Save & test" then say what is wrong with it.
func NewDatasource(_ context.Context, s backend.DataSourceInstanceSettings) (instancemgmt.Instance, error) {
	st, err := LoadSettings(s)
	if err != nil {
		// Failing the instance would leave Grafana a generic "plugin health check failed"
		// (provisioning YAML's `site: 100` is a number): say it in every answer instead.
		return &Datasource{settings: st, urlErr: fmt.Errorf("%w: url and site are strings (quote them in provisioning YAML)", err), field: "settings"}, nil
	}
	return New(st), nil
}

// New builds a datasource from settings.
func New(st Settings) *Datasource {
	d := &Datasource{settings: st}
	base, err := parseBaseURL(st.URL)
	if err != nil {
		d.urlErr, d.field = err, "url"
		return d
	}
	d.client = &client{base: base, token: st.Token, http: newHTTPClient()}
	return d
}

// Dispose closes idle connections when Grafana replaces the instance (settings changed).
func (d *Datasource) Dispose() {
	if d.client != nil {
		d.client.http.CloseIdleConnections()
	}
}

// QueryData answers each query independently: one query's error never fails another.
func (d *Datasource) QueryData(ctx context.Context, req *backend.QueryDataRequest) (*backend.QueryDataResponse, error) {
	resp := backend.NewQueryDataResponse()
	for _, q := range req.Queries {
		resp.Responses[q.RefID] = d.query(ctx, q)
	}
	return resp, nil
}

// errorResponse turns an error into a query's DataResponse with its status and source:
// statepipe's refusals and an unreachable site are downstream, and so is a query that is
// wrong (the user's); anything else is the plugin's.
func errorResponse(err error) backend.DataResponse {
	var ae *apiError
	var te *transportError
	var nj *notJSONError
	var qe *queryError
	switch {
	case errors.As(err, &qe):
		return backend.ErrDataResponseWithSource(backend.StatusBadRequest, backend.ErrorSourceDownstream, err.Error())
	case errors.As(err, &ae):
		return backend.ErrDataResponseWithSource(ae.status(), backend.ErrorSourceDownstream, err.Error())
	case errors.As(err, &te):
		st := backend.StatusBadGateway
		if te.timeout() {
			st = backend.StatusTimeout
		}
		return backend.ErrDataResponseWithSource(st, backend.ErrorSourceDownstream, err.Error())
	case errors.As(err, &nj):
		return backend.ErrDataResponseWithSource(backend.StatusBadGateway, backend.ErrorSourceDownstream, err.Error())
	}
	return backend.ErrDataResponseWithSource(backend.StatusInternal, backend.ErrorSourcePlugin, err.Error())
}

// queryError is a query that cannot be sent as it is: it names the field to change.
type queryError struct {
	Field   string // queryType, params.NAME, rawSql, url
	Message string
}

func (e *queryError) Error() string { return e.Field + ": " + e.Message }

// httpStatusOf is the HTTP status a resource answers for err.
func httpStatusOf(err error) int {
	var ae *apiError
	var qe *queryError
	var te *transportError
	switch {
	case errors.As(err, &qe):
		return http.StatusBadRequest
	case errors.As(err, &ae) && ae.Code != "" && ae.Status < 500:
		return ae.Status
	case errors.As(err, &te) && te.timeout():
		return http.StatusGatewayTimeout
	}
	return http.StatusBadGateway
}
