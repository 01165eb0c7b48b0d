package plugin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"

	"github.com/statepipe/statepipe/report"
)

// healthTimeout bounds "Save & test": a site that does not answer within it is unreachable.
const healthTimeout = 10 * time.Second

// CheckHealth backs "Save & test": it asks the site's backlog report (a reader's endpoint,
// cheap, answered by every site) and says, distinctly, whether the URL is wrong, the token
// is refused, the site unreachable — or which site answered and how fresh it is.
func (d *Datasource) CheckHealth(ctx context.Context, _ *backend.CheckHealthRequest) (*backend.CheckHealthResult, error) {
	fail := func(format string, a ...any) (*backend.CheckHealthResult, error) {
		return &backend.CheckHealthResult{Status: backend.HealthStatusError, Message: fmt.Sprintf(format, a...)}, nil
	}
	if d.client == nil {
		if d.field == "settings" {
			return fail("Wrong settings: %v", d.urlErr)
		}
		return fail("Wrong URL: %v", d.urlErr)
	}
	ctx, cancel := context.WithTimeout(ctx, healthTimeout)
	defer cancel()
	start := time.Now()
	vals := map[string][]string{}
	if d.settings.Site != "" {
		vals["site"] = []string{d.settings.Site}
	}
	base := d.client.base.String()
	r, _, err := getReport[report.Backlog](ctx, d.client, "backlog", vals)
	var ae *apiError
	var te *transportError
	var nj *notJSONError
	switch {
	case errors.As(err, &te) && te.timeout():
		return fail("Unreachable: statepipe at %s did not answer within %s (%v). Is the site running, and is the URL's host and port right?",
			base, time.Since(start).Round(100*time.Millisecond), te.Err)
	case errors.As(err, &te) && strings.Contains(te.Err.Error(), "server gave HTTP response to HTTPS client"):
		return fail("Wrong URL: %s is https, and the site answers plain HTTP there: use http:// (or give the site TLS).", base)
	case errors.As(err, &te):
		return fail("Unreachable: cannot connect to statepipe at %s: %v. Is the site running (statepipe run --listen), and is the URL's host and port right?", base, te.Err)
	case errors.As(err, &ae) && ae.Code != "" && (ae.Status == http.StatusUnauthorized || ae.Status == http.StatusForbidden) && d.settings.Token == "":
		return fail("Wrong token: statepipe at %s needs one and none is set (%d %s: %s). Set Token to the site's reader token (statepipe run --reader-token, or $STATEPIPE_READER_TOKEN).", base, ae.Status, ae.Code, ae.Message)
	case errors.As(err, &ae) && ae.Code != "" && (ae.Status == http.StatusUnauthorized || ae.Status == http.StatusForbidden):
		return fail("Wrong token: statepipe at %s refused it (%d %s: %s). Set Token to the site's reader token (statepipe run --reader-token, or $STATEPIPE_READER_TOKEN).", base, ae.Status, ae.Code, ae.Message)
	case errors.As(err, &ae) && ae.Code != "" && ae.Field == "site":
		return fail("Wrong site: statepipe at %s does not serve site %q (%s). Leave Site empty for the site the URL serves, or name one it routes to.", base, d.settings.Site, ae.Message)
	case errors.As(err, &ae) && ae.Code != "":
		return fail("statepipe at %s answered %d %s: %s", base, ae.Status, ae.Code, ae.Message)
	case errors.As(err, &ae):
		return fail("Wrong URL: %s answered HTTP %d to GET /v1/reports/backlog, which a statepipe site answers with JSON: it is not a statepipe site (%s). Give the site's HTTP address, e.g. http://statepipe:8081.", base, ae.Status, ae.Message)
	case errors.As(err, &nj):
		return fail("Wrong URL: %s answered GET /v1/reports/backlog with something that is not statepipe's JSON: it is not a statepipe site (%v).", base, nj.Err)
	case err != nil:
		return fail("Cannot check statepipe at %s: %v", base, err)
	}
	if r.Site == "" || r.Sites == nil {
		return fail("Wrong URL: %s answered GET /v1/reports/backlog with JSON that is not statepipe's backlog report (no site): it is not a statepipe site.", base)
	}
	return &backend.CheckHealthResult{Status: backend.HealthStatusOk, Message: healthOK(base, r)}, nil
}

// healthOK names the site answering and how fresh each site's data is.
func healthOK(base string, r *report.Backlog) string {
	var parts []string
	for _, s := range r.Sites {
		p := fmt.Sprintf("%s: %d reports waiting to fold (%.1f s)", s.Site, s.LagRecords, s.LagSeconds)
		for _, l := range s.Links {
			if l.FreshnessSeconds != nil {
				p += fmt.Sprintf(", link %s %s, data %.1f s old", l.Link, l.State, *l.FreshnessSeconds)
			} else {
				p += fmt.Sprintf(", link %s %s, no data yet", l.Link, l.State)
			}
		}
		parts = append(parts, p)
	}
	return fmt.Sprintf("OK: statepipe site %s at %s answers (%d site(s)). Freshness — %s.", r.Site, base, len(r.Sites), strings.Join(parts, "; "))
}
