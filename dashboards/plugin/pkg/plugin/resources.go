package plugin

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/grafana/grafana-plugin-sdk-go/backend"

	"github.com/statepipe/statepipe/report"
)

// Option is one entry of a resource list, for a template variable.
type Option struct {
	Value string `json:"value"`
	Text  string `json:"text"`
}

// refViews are the reference-data resources and the views listing them.
var refViews = map[string]string{
	"lists":       "v_update_lists",
	"collections": "v_collections",
	"deployments": "v_deployments",
}

// CallResource answers GET sites, lists, collections and deployments with
// [{"value", "text"}], sorted by value; ?site=CODE asks that site of the hierarchy.
func (d *Datasource) CallResource(ctx context.Context, req *backend.CallResourceRequest, sender backend.CallResourceResponseSender) error {
	name := strings.Trim(req.Path, "/")
	if req.Method != "" && req.Method != http.MethodGet {
		return sendJSON(sender, http.StatusMethodNotAllowed, errBody("method", "resources are read with GET"))
	}
	if name != "sites" && refViews[name] == "" {
		return sendJSON(sender, http.StatusNotFound, errBody("path", fmt.Sprintf("no resource %q: want sites, lists, collections or deployments", name)))
	}
	if d.client == nil {
		return sendJSON(sender, http.StatusBadRequest, errBody(d.field, d.urlErr.Error()))
	}
	vals := url.Values{}
	if u, err := url.Parse(req.URL); err == nil {
		if s := strings.TrimSpace(u.Query().Get("site")); s != "" {
			vals.Set("site", s)
		}
	}
	if vals.Get("site") == "" && d.settings.Site != "" {
		vals.Set("site", d.settings.Site)
	}
	if err := checkSite(vals.Get("site")); err != nil {
		return sendJSON(sender, http.StatusBadRequest, errBody("site", err.Error()))
	}
	opts, err := d.options(ctx, name, vals)
	if err != nil {
		return sendJSON(sender, httpStatusOf(err), errBody(name, err.Error()))
	}
	return sendJSON(sender, http.StatusOK, opts)
}

// options lists a resource.
func (d *Datasource) options(ctx context.Context, name string, vals url.Values) ([]Option, error) {
	opts := []Option{}
	if name == "sites" {
		r, _, err := getReport[report.Backlog](ctx, d.client, "backlog", vals)
		if err != nil {
			return nil, err
		}
		for _, s := range r.Sites {
			text := s.Site
			if s.Parent != "" {
				text += " (below " + s.Parent + ")"
			}
			opts = append(opts, Option{Value: s.Site, Text: text})
		}
	} else {
		ans, _, err := d.client.sql(ctx, "SELECT id, name FROM "+refViews[name]+" ORDER BY id", vals)
		if err != nil {
			return nil, err
		}
		for _, row := range ans.Rows {
			var id, label string
			if len(row) < 2 || json.Unmarshal(row[0], &id) != nil || json.Unmarshal(row[1], &label) != nil {
				return nil, fmt.Errorf("cannot read the %s of the SQL answer: want rows of two strings (id, name)", name)
			}
			text := id
			if label != "" && label != id {
				text = label + " (" + id + ")"
			}
			opts = append(opts, Option{Value: id, Text: text})
		}
	}
	slices.SortFunc(opts, func(a, b Option) int { return strings.Compare(a.Value, b.Value) })
	return opts, nil
}

func errBody(field, msg string) map[string]any {
	return map[string]any{"error": map[string]string{"field": field, "message": msg}}
}

func sendJSON(sender backend.CallResourceResponseSender, status int, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return sender.Send(&backend.CallResourceResponse{Status: status,
		Headers: map[string][]string{"Content-Type": {"application/json"}}, Body: body})
}
