package plugin

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/data"

	"github.com/statepipe/statepipe/report"
	"github.com/statepipe/statepipe/schema"
)

// A report's frames are described in FRAMES.md; keep it true when they change.

type frameMapper func(ctx context.Context, c *client, vals url.Values) (data.Frames, error)

var reportFrames = map[string]frameMapper{
	"compliance":  complianceFrames,
	"machines":    machinesFrames,
	"deployment":  deploymentFrames,
	"deployments": deploymentsFrames,
	"errors":      errorsFrames,
	"scan":        scanFrames,
	"computer":    computerFrames,
	"update":      updateFrames,
	"trend":       trendFrames,
	"backlog":     backlogFrames,
}

// getReport asks GET /v1/reports/NAME and decodes the answer into a T.
func getReport[T any](ctx context.Context, c *client, name string, vals url.Values) (*T, string, error) {
	var out T
	shown, err := c.do(ctx, http.MethodGet, "/v1/reports/"+url.PathEscape(name), vals, nil, &out)
	if err != nil {
		return nil, shown, err
	}
	return &out, shown, nil
}

// custom is the frames' meta.custom: the answer's site and time, and the sites counted.
type custom struct {
	Site  string              `json:"site"`
	AsOf  time.Time           `json:"as_of"`
	Sites []report.SiteStatus `json:"sites,omitempty"`
}

// withMeta sets every frame's meta: the request sent and the answer's site and time.
func withMeta(frames data.Frames, shown string, c custom) data.Frames {
	for _, f := range frames {
		f.Meta = &data.FrameMeta{ExecutedQueryString: shown, Custom: c}
	}
	return frames
}

// Field constructors: every field's display name is its name (FRAMES.md).

func named(f *data.Field, unit string) *data.Field {
	f.Config = &data.FieldConfig{DisplayNameFromDS: f.Name, Unit: unit}
	return f
}

func countField(name string, v []int64) *data.Field { return named(data.NewField(name, nil, v), "") }

func pctField(name string, v []float64) *data.Field {
	f := named(data.NewField(name, nil, v), "percent")
	lo, hi := data.ConfFloat64(0), data.ConfFloat64(100)
	f.Config.Min, f.Config.Max = &lo, &hi
	return f
}

func secondsField(name string, v any) *data.Field { return named(data.NewField(name, nil, v), "s") }

func textField(name string, v []string) *data.Field { return named(data.NewField(name, nil, v), "") }

func anyField(name string, v any) *data.Field { return named(data.NewField(name, nil, v), "") }

func utcPtr(t *time.Time) *time.Time {
	if t == nil || t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

func pct(part, total int64) float64 {
	if total == 0 {
		return 0
	}
	return float64(part) / float64(total) * 100
}

// stateFrame is a frame of state counts (state, name, clients) under the given names.
func stateFrame(frame, state, name, clients string, states []report.StateCount) *data.Frame {
	var s, c []int64
	var n []string
	for _, x := range states {
		s, n, c = append(s, int64(x.State)), append(n, x.Name), append(c, x.Clients)
	}
	return data.NewFrame(frame, countField(state, nonNil(s)), textField(name, nonNil(n)), countField(clients, nonNil(c)))
}

// nonNil makes an empty column an empty slice: a frame of no rows still has typed fields.
func nonNil[T any](v []T) []T {
	if v == nil {
		return []T{}
	}
	return v
}

func machineFrame(frame, field string, ids []string) *data.Frame {
	return data.NewFrame(frame, textField(field, nonNil(append([]string(nil), ids...))))
}

func complianceFrames(ctx context.Context, c *client, vals url.Values) (data.Frames, error) {
	r, shown, err := getReport[report.Compliance](ctx, c, "compliance", vals)
	if err != nil {
		return nil, err
	}
	var ids, titles, vendors []string
	var inst, req, nreq, unk, tot []int64
	var pcts []float64
	var released []*time.Time
	for _, u := range r.Updates {
		ids, titles, vendors = append(ids, u.UpdateID), append(titles, u.Title), append(vendors, u.Vendor)
		inst, req, nreq, unk, tot = append(inst, u.Installed), append(req, u.Required), append(nreq, u.NotRequired), append(unk, u.Unknown), append(tot, u.Total)
		pcts, released = append(pcts, u.CompliantPct), append(released, utcPtr(u.Released))
	}
	updates := data.NewFrame("compliance_updates",
		textField("update_id", nonNil(ids)), textField("title", nonNil(titles)),
		countField("installed", nonNil(inst)), countField("required", nonNil(req)), countField("not_required", nonNil(nreq)),
		countField("unknown", nonNil(unk)), countField("total", nonNil(tot)), pctField("compliant_pct", nonNil(pcts)),
		textField("vendor", nonNil(vendors)), anyField("released", nonNil(released)))
	k := r.Computers
	computers := data.NewFrame("compliance_computers",
		countField("computers_compliant", []int64{k.Compliant}), countField("computers_non_compliant", []int64{k.NonCompliant}),
		countField("computers_unknown", []int64{k.Unknown}), countField("computers_total", []int64{k.Total}),
		pctField("computers_compliant_pct", []float64{k.CompliantPct}))
	frames := data.Frames{updates, computers}
	if r.By != "" { // by=vendor|month|year: a row per group
		g := data.NewFrame("compliance_groups", textField("group", []string{}), countField("group_updates", []int64{}),
			countField("group_installed", []int64{}), countField("group_required", []int64{}), countField("group_not_required", []int64{}),
			countField("group_unknown", []int64{}), countField("group_total", []int64{}), pctField("group_compliant_pct", []float64{}))
		for _, x := range r.Groups {
			g.AppendRow(x.Group, x.Updates, x.Installed, x.Required, x.NotRequired, x.Unknown, x.Total, x.CompliantPct)
		}
		frames = append(frames, g)
	}
	return withMeta(frames, shown, custom{r.Site, r.AsOf, r.Sites}), nil
}

func machinesFrames(ctx context.Context, c *client, vals url.Values) (data.Frames, error) {
	r, shown, err := getReport[report.Machines](ctx, c, "machines", vals)
	if err != nil {
		return nil, err
	}
	summary := data.NewFrame("machines_summary", countField("machines_total", []int64{r.Total}),
		textField("machines_state", []string{r.State}), textField("machines_state_name", []string{r.StateName}),
		textField("machines_next", []string{r.Next}))
	return withMeta(data.Frames{machineFrame("machines", "machine", r.Machines), summary}, shown, custom{r.Site, r.AsOf, r.Sites}), nil
}

func deploymentFrames(ctx context.Context, c *client, vals url.Values) (data.Frames, error) {
	r, shown, err := getReport[report.Deployment](ctx, c, "deployment", vals)
	if err != nil {
		return nil, err
	}
	states := stateFrame("deployment_states", "state", "name", "clients", r.States)
	var pcts []float64
	for _, s := range r.States {
		pcts = append(pcts, pct(s.Clients, r.Total))
	}
	states.Fields = append(states.Fields, pctField("pct", nonNil(pcts)))
	summary := data.NewFrame("deployment_summary", textField("deployment_id", []string{r.DeploymentID}),
		textField("deployment_name", []string{r.Name}), textField("collection", []string{r.Collection}),
		textField("collection_name", []string{r.CollectionName}), countField("deployment_total", []int64{r.Total}))
	frames := data.Frames{states, summary}
	if len(r.BySite) > 0 {
		bySite := data.NewFrame("deployment_by_site", textField("site", []string{}), countField("site_total", []int64{}))
		for _, s := range r.States {
			bySite.Fields = append(bySite.Fields, countField(s.Name, []int64{}))
		}
		for _, s := range r.BySite {
			row := []any{s.Site, s.Total}
			for _, st := range r.States {
				var n int64
				for _, x := range s.States {
					if x.State == st.State {
						n = x.Clients
					}
				}
				row = append(row, n)
			}
			bySite.AppendRow(row...)
		}
		frames = append(frames, bySite)
	}
	if r.State != nil {
		frames = append(frames, machineFrame("deployment_machines", "machine", r.Machines))
	}
	if r.Evaluation != nil {
		frames = append(frames, stateFrame("deployment_evaluation", "evaluation_state", "evaluation_name", "evaluation_clients", r.Evaluation),
			stateFrame("deployment_compliance", "compliance_state", "compliance_name", "compliance_clients", r.Compliance))
	}
	if r.Updates != nil {
		// States 5: a row per update, a column per enforcement state.
		upd := data.NewFrame("deployment_updates", textField("update_id", []string{}), textField("title", []string{}))
		names := schema.TopicUpdateEnforcement
		for i := range names.StateCount() { // "11 Failed to install": 402's names, apart from 301's
			upd.Fields = append(upd.Fields, countField(fmt.Sprintf("%d %s", i, names.StateName(i)), []int64{}))
		}
		for _, u := range r.Updates {
			row := []any{u.UpdateID, u.Title}
			for i := range names.StateCount() {
				var n int64
				for _, st := range u.States {
					if st.State == i {
						n = st.Clients
					}
				}
				row = append(row, n)
			}
			upd.AppendRow(row...)
		}
		frames = append(frames, upd)
	}
	return withMeta(frames, shown, custom{r.Site, r.AsOf, r.Sites}), nil
}

func deploymentsFrames(ctx context.Context, c *client, vals url.Values) (data.Frames, error) {
	r, shown, err := getReport[report.Deployments](ctx, c, "deployments", vals)
	if err != nil {
		return nil, err
	}
	f := data.NewFrame("deployments", textField("deployment_id", []string{}), textField("name", []string{}),
		textField("collection", []string{}), countField("members", []int64{}), countField("updates", []int64{}),
		anyField("start", []time.Time{}), anyField("deadline", []time.Time{}), anyField("mandatory", []bool{}),
		textField("origin_site", []string{}), textField("update_ids", []string{}))
	for _, d := range r.Deployments {
		f.AppendRow(d.DeploymentID, d.Name, d.Collection, d.Members, int64(len(d.Updates)), d.Start, d.Deadline, d.Mandatory,
			d.OriginSite, strings.Join(d.Updates, ","))
	}
	return withMeta(data.Frames{f}, shown, custom{Site: r.Site, AsOf: r.AsOf}), nil
}

func errorsFrames(ctx context.Context, c *client, vals url.Values) (data.Frames, error) {
	r, shown, err := getReport[report.Errors](ctx, c, "errors", vals)
	if err != nil {
		return nil, err
	}
	var codes, machines []int64
	var hex, desc, upd, dep, src []string
	joined := func(ids []string, more bool) string {
		if more {
			return strings.Join(ids, ",") + ",…"
		}
		return strings.Join(ids, ",")
	}
	for _, e := range r.Errors {
		codes, hex, desc, machines = append(codes, int64(e.Error)), append(hex, e.Hex), append(desc, e.Description), append(machines, e.Machines)
		upd, dep = append(upd, joined(e.Updates, e.MoreUpdates)), append(dep, joined(e.Deployments, e.MoreDeployments))
		src = append(src, joined(e.Sources, e.MoreSources))
	}
	f := data.NewFrame("errors", anyField("error", nonNil(codes)), textField("hex", nonNil(hex)), textField("description", nonNil(desc)),
		countField("machines", nonNil(machines)), textField("updates", nonNil(upd)), textField("deployments", nonNil(dep)),
		textField("sources", nonNil(src)))
	return withMeta(data.Frames{f}, shown, custom{r.Site, r.AsOf, r.Sites}), nil
}

func scanFrames(ctx context.Context, c *client, vals url.Values) (data.Frames, error) {
	r, shown, err := getReport[report.Scan](ctx, c, "scan", vals)
	if err != nil {
		return nil, err
	}
	var frames data.Frames
	if r.States != nil {
		frames = append(frames, stateFrame("scan_states", "state", "name", "clients", r.States))
	}
	frames = append(frames, data.NewFrame("scan_summary", countField("scan_total", []int64{r.Total}),
		countField("stale_days", []int64{int64(r.StaleDays)}), countField("stale_clients", []int64{r.StaleClients})))
	frames = append(frames, machineFrame("scan_stale", "client", r.Stale))
	var src, names []string
	var st, cl []int64
	for _, s := range r.Sources {
		for _, x := range s.States {
			src, st, names, cl = append(src, s.Source), append(st, int64(x.State)), append(names, x.Name), append(cl, x.Clients)
		}
	}
	frames = append(frames, data.NewFrame("scan_sources", textField("source", nonNil(src)), countField("source_state", nonNil(st)),
		textField("source_state_name", nonNil(names)), countField("source_clients", nonNil(cl))))
	if r.BySite != nil { // a site hierarchy: a row per site × state, and its total and stale
		var sites, snames []string
		var sst, scl, stot, sstale []int64
		for _, s := range r.BySite {
			for _, x := range s.States {
				sites, sst, snames, scl = append(sites, s.Site), append(sst, int64(x.State)), append(snames, x.Name), append(scl, x.Clients)
				stot, sstale = append(stot, s.Total), append(sstale, s.StaleClients)
			}
			if s.States == nil { // several update sources there: its states are per source
				sites, sst, snames, scl = append(sites, s.Site), append(sst, -1), append(snames, ""), append(scl, 0)
				stot, sstale = append(stot, s.Total), append(sstale, s.StaleClients)
			}
		}
		frames = append(frames, data.NewFrame("scan_sites", textField("site", nonNil(sites)), countField("site_state", nonNil(sst)),
			textField("site_state_name", nonNil(snames)), countField("site_clients", nonNil(scl)),
			countField("site_total", nonNil(stot)), countField("site_stale_clients", nonNil(sstale))))
	}
	return withMeta(frames, shown, custom{r.Site, r.AsOf, r.Sites}), nil
}

func computerFrames(ctx context.Context, c *client, vals url.Values) (data.Frames, error) {
	r, shown, err := getReport[report.Computer](ctx, c, "computer", vals)
	if err != nil {
		return nil, err
	}
	f := data.NewFrame("computer_updates", textField("update_id", []string{}), textField("title", []string{}),
		countField("state", []int64{}), textField("state_name", []string{}), anyField("serial", []uint64{}),
		anyField("time", []*time.Time{}), anyField("inferred", []bool{}), anyField("enforcement_state", []*int64{}),
		textField("enforcement_state_name", []string{}), anyField("error", []*int64{}), textField("hex", []string{}))
	for _, u := range r.Updates {
		var es, code *int64
		if u.EnforcementState != nil {
			v := int64(*u.EnforcementState)
			es = &v
		}
		if u.Error != nil {
			v := int64(*u.Error)
			code = &v
		}
		f.AppendRow(u.UpdateID, u.Title, int64(u.State), u.StateName, u.Serial, utcPtr(u.Time), u.Inferred, es, u.EnforcementName, code, u.Hex)
	}
	summary := data.NewFrame("computer_summary", textField("client", []string{r.Client}), textField("compliant", []string{r.Compliant}),
		anyField("last_scan_time", []*time.Time{utcPtr(r.LastScanTime)}))
	frames := data.Frames{f, summary}
	if d := r.Deployment; d != nil { // deployment=: the machine's 300/301/302 states for it
		states := data.NewFrame("computer_deployment", textField("deployment_id", []string{}), anyField("targeted", []bool{}),
			countField("topic_type", []int64{}), anyField("deployment_state", []*int64{}), textField("deployment_state_name", []string{}),
			anyField("deployment_serial", []uint64{}), anyField("deployment_time", []*time.Time{}), anyField("deployment_error", []*int64{}),
			textField("deployment_hex", []string{}))
		for _, x := range []struct {
			tt int64
			st *report.ComputerState
		}{{301, d.Enforcement}, {302, d.Evaluation}, {300, d.Compliance}} {
			if x.st == nil { // not targeted and nothing live: an empty row
				states.AppendRow(d.DeploymentID, d.Targeted, x.tt, (*int64)(nil), "", uint64(0), (*time.Time)(nil), (*int64)(nil), "")
				continue
			}
			st, code := int64(x.st.State), int64(x.st.Error)
			states.AppendRow(d.DeploymentID, d.Targeted, x.tt, &st, x.st.StateName, x.st.Serial, utcPtr(x.st.Time), &code, x.st.Hex)
		}
		frames = append(frames, states)
	}
	return withMeta(frames, shown, custom{r.Site, r.AsOf, r.Sites}), nil
}

func updateFrames(ctx context.Context, c *client, vals url.Values) (data.Frames, error) {
	r, shown, err := getReport[report.Update](ctx, c, "update", vals)
	if err != nil {
		return nil, err
	}
	summary := data.NewFrame("update_summary", textField("update_id", []string{r.UpdateID}), textField("article", []string{r.Article}),
		textField("title", []string{r.Title}), anyField("in_catalog", []bool{r.InCatalog}), anyField("expired", []bool{r.Expired}),
		countField("installed", []int64{r.Installed}), countField("required", []int64{r.Required}),
		countField("not_required", []int64{r.NotRequired}), countField("unknown", []int64{r.Unknown}),
		countField("total", []int64{r.Total}), pctField("compliant_pct", []float64{r.CompliantPct}))
	enf := stateFrame("update_enforcement", "state", "name", "clients", r.Enforcement)
	return withMeta(data.Frames{summary, enf}, shown, custom{r.Site, r.AsOf, r.Sites}), nil
}

func trendFrames(ctx context.Context, c *client, vals url.Values) (data.Frames, error) {
	r, shown, err := getReport[report.Trend](ctx, c, "trend", vals)
	if err != nil {
		return nil, err
	}
	var ts []time.Time
	var inst, req, nreq, unk, cl, tot []int64
	var pcts []float64
	for _, p := range r.Points {
		ts = append(ts, p.Time.UTC())
		inst, req, nreq, unk = append(inst, p.Installed), append(req, p.Required), append(nreq, p.NotRequired), append(unk, p.Unknown)
		cl, tot, pcts = append(cl, p.Clients), append(tot, p.Total), append(pcts, p.CompliantPct)
	}
	f := data.NewFrame("trend", anyField("time", nonNil(ts)),
		countField("installed", nonNil(inst)), countField("required", nonNil(req)), countField("not_required", nonNil(nreq)),
		countField("unknown", nonNil(unk)), countField("clients", nonNil(cl)), countField("total", nonNil(tot)),
		pctField("compliant_pct", nonNil(pcts)))
	withMeta(data.Frames{f}, shown, custom{r.Site, r.AsOf, r.Sites})
	f.Meta.Type = data.FrameTypeTimeSeriesWide
	f.Meta.TypeVersion = data.FrameTypeVersion{0, 1}
	return data.Frames{f}, nil
}

func backlogFrames(ctx context.Context, c *client, vals url.Values) (data.Frames, error) {
	r, shown, err := getReport[report.Backlog](ctx, c, "backlog", vals)
	if err != nil {
		return nil, err
	}
	sites := data.NewFrame("backlog_sites", textField("site", []string{}), textField("parent", []string{}),
		countField("lag_records", []int64{}), secondsField("lag_seconds", []float64{}),
		textField("pacing_mode", []string{}), textField("pacing_decision", []string{}), textField("pacing_reason", []string{}),
		anyField("pacing_enroll_rate", []float64{}), secondsField("pacing_report_interval_seconds", []float64{}),
		anyField("pacing_pressure", []float64{}), textField("pacing_limiting", []string{}),
		secondsField("pacing_lag_seconds", []float64{}), secondsField("pacing_target_seconds", []float64{}),
		anyField("pacing_at", []*time.Time{}))
	links := data.NewFrame("backlog_links", textField("link_site", []string{}), textField("link", []string{}),
		secondsField("freshness_seconds", []*float64{}), countField("backlog_records", []int64{}), textField("link_state", []string{}))
	for _, s := range r.Sites {
		p := report.Pacing{}
		if s.Pacing != nil {
			p = *s.Pacing
		}
		sites.AppendRow(s.Site, s.Parent, s.LagRecords, s.LagSeconds, p.Mode, p.Decision, p.Reason, p.EnrollRate,
			p.ReportInterval, p.Pressure, p.Limiting, p.LagSeconds, p.TargetSeconds, utcPtr(&p.At))
		for _, l := range s.Links {
			links.AppendRow(s.Site, l.Link, l.FreshnessSeconds, l.BacklogRecords, l.State)
		}
	}
	return withMeta(data.Frames{sites, links}, shown, custom{Site: r.Site, AsOf: r.AsOf}), nil
}
