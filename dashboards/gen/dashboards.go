package main

import (
	"strconv"

	"github.com/grafana/grafana-foundation-sdk/go/bargauge"
	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/table"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

// The panels read the frames the plugin's backend answers (dashboards/plugin/FRAMES.md):
// field names are unique across the frames of one answer, so a stat or bar gauge picks its
// field by name, and a table its frame by the names of the frame's fields (reportTable).

// dashboards returns the provisioned dashboards, in the order they are written.
func dashboards() []*dashboard.DashboardBuilder {
	return []*dashboard.DashboardBuilder{compliance(), deployment(), errorsDashboard(), scan(), operations()}
}

// base is what every dashboard shares: uid, title, tags, UTC, a time range and refresh.
func base(uid, title, description, from string) *dashboard.DashboardBuilder {
	return dashboard.NewDashboardBuilder(title).
		Uid(uid).
		Description(description).
		Tags([]string{"statepipe"}).
		Timezone("utc").
		Time(from, "now").
		Refresh("1m").
		Tooltip(dashboard.DashboardCursorSyncCrosshair).
		Link(dashboard.NewDashboardLinkBuilder("statepipe").Type(dashboard.DashboardLinkTypeDashboards).
			Icon("external link").Tooltip("statepipe's dashboards").
			Tags([]string{"statepipe"}).AsDropdown(true).IncludeVars(true).KeepTime(true))
}

// --- template variables ---------------------------------------------------------------

// resourceVar is a query variable on the statepipe datasource listing one of the plugin's
// resources (sites, lists, collections, deployments): [{value, text}].
func resourceVar(name, label, resource string) *dashboard.QueryVariableBuilder {
	return dashboard.NewQueryVariableBuilder(name).
		Label(label).
		Datasource(statepipeDS()).
		Query(dashboard.StringOrMap{Map: map[string]any{"resource": resource}}).
		Definition(resource).
		Refresh(dashboard.VariableRefreshOnDashboardLoad).
		Sort(dashboard.VariableSortAlphabeticalAsc)
}

// withEmpty adds a first option whose value is empty: the backend drops an empty parameter,
// so the report takes its default (every client, the datasource's site …).
func withEmpty(v *dashboard.QueryVariableBuilder, text string) *dashboard.QueryVariableBuilder {
	opt := option(text, "")
	return v.StaticOptions([]dashboard.VariableOption{opt}).
		StaticOptionsOrder(dashboard.VariableModelStaticOptionsOrderBefore).
		Current(opt)
}

func option(text, value string) dashboard.VariableOption {
	return dashboard.VariableOption{Text: dashboard.StringOrArrayOfString{String: cog.ToPtr(text)},
		Value: dashboard.StringOrArrayOfString{String: cog.ToPtr(value)}}
}

func siteVar() *dashboard.QueryVariableBuilder {
	return withEmpty(resourceVar("site", "Site", "sites").
		Description("A site of the hierarchy: its clients and those of the sites below it (empty: the datasource's site)"),
		"datasource's site")
}

func listVar() *dashboard.QueryVariableBuilder {
	return resourceVar("list", "Update list", "lists").Description("An imported update list")
}

func collectionVar() *dashboard.QueryVariableBuilder {
	return withEmpty(resourceVar("collection", "Collection", "collections").
		Description("Count the members of this collection (empty: every client)"), "every client")
}

func deploymentVar() *dashboard.QueryVariableBuilder {
	return resourceVar("deployment", "Deployment", "deployments").Description("A deployment")
}

// customVar is a fixed list of options, the first one current.
func customVar(name, label, description string, opts []dashboard.VariableOption, current int) *dashboard.CustomVariableBuilder {
	values := ""
	for i, o := range opts {
		if i > 0 {
			values += ","
		}
		if *o.Text.String == *o.Value.String {
			values += *o.Value.String
		} else {
			values += *o.Text.String + " : " + *o.Value.String
		}
	}
	return dashboard.NewCustomVariableBuilder(name).Label(label).Description(description).
		Values(dashboard.StringOrMap{String: cog.ToPtr(values)}).
		Options(opts).Current(opts[current])
}

// --- panel helpers --------------------------------------------------------------------

func thresholds(steps ...dashboard.Threshold) *dashboard.ThresholdsConfigBuilder {
	return dashboard.NewThresholdsConfigBuilder().Mode(dashboard.ThresholdsModeAbsolute).Steps(steps)
}

func step(value *float64, color string) dashboard.Threshold {
	return dashboard.Threshold{Value: value, Color: color}
}

// complianceThresholds: red under 80 %, orange under 95 %, green from 95 %.
func complianceThresholds() *dashboard.ThresholdsConfigBuilder {
	return thresholds(step(nil, "red"), step(cog.ToPtr(80.0), "orange"), step(cog.ToPtr(95.0), "green"))
}

func neutral() *dashboard.ThresholdsConfigBuilder {
	return thresholds(step(nil, "green"))
}

// field picks fields by name for a stat or bar gauge ("/^name$/"); values shows every row.
func field(name string, values bool) *common.ReduceDataOptionsBuilder {
	return common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"}).Fields("/^" + name + "$/").Values(values)
}

func prop(id string, value any) dashboard.DynamicConfigValue {
	return dashboard.DynamicConfigValue{Id: id, Value: value}
}

// gaugeCell shows a percent column as a bar in a table.
func gaugeCell() []dashboard.DynamicConfigValue {
	return []dashboard.DynamicConfigValue{
		prop("unit", "percent"), prop("min", 0), prop("max", 100),
		prop("custom.cellOptions", map[string]any{"type": "gauge", "mode": "basic"}),
		prop("thresholds", map[string]any{"mode": "absolute", "steps": []map[string]any{
			{"value": nil, "color": "red"}, {"value": 80, "color": "orange"}, {"value": 95, "color": "green"}}}),
	}
}

func statPanel(title, description string) *stat.PanelBuilder {
	return stat.NewPanelBuilder().Title(title).Description(description).Datasource(statepipeDS()).
		Height(6).Span(6).GraphMode(common.BigValueGraphModeNone).ColorMode(common.BigValueColorModeValue).
		Orientation(common.VizOrientationAuto).
		Thresholds(neutral())
}

func tablePanel(title, description string) *table.PanelBuilder {
	return table.NewPanelBuilder().Title(title).Description(description).Datasource(statepipeDS()).
		Height(9).Span(12).FrameIndex(0).Filterable(true).Thresholds(neutral()).
		Footer(common.NewTableFooterOptionsBuilder().Show(false).Reducer([]string{"sum"}).CountRows(false))
}

// reportTable shows one frame of a report's answer: the fields named, in the frame's order.
// Field names are unique across an answer's frames and Grafana drops the frames left without
// fields, so the table shows that frame whatever others the answer holds (some are absent
// in some answers: FRAMES.md).
func reportTable(title, description string, fields ...string) *table.PanelBuilder {
	return tablePanel(title, description).WithTransformation(dashboard.DataTransformerConfig{Id: "filterFieldsByName",
		Options: map[string]any{"include": map[string]any{"names": fields}}})
}

func barGauge(title, description string) *bargauge.PanelBuilder {
	return bargauge.NewPanelBuilder().Title(title).Description(description).Datasource(statepipeDS()).
		Height(9).Span(12).Orientation(common.VizOrientationHorizontal).
		DisplayMode(common.BarGaugeDisplayModeBasic).ShowUnfilled(true).Min(0).Thresholds(neutral())
}

func promTimeseries(title, description, unit string, targets ...*prometheus.DataqueryBuilder) *timeseries.PanelBuilder {
	p := timeseries.NewPanelBuilder().Title(title).Description(description).Datasource(prometheusDS()).
		Height(8).Span(12).Unit(unit).Min(0).FillOpacity(10).Thresholds(neutral()).Tooltip(tooltip()).
		Legend(common.NewVizLegendOptionsBuilder().ShowLegend(true).DisplayMode(common.LegendDisplayModeList).
			Placement(common.LegendPlacementBottom))
	for _, t := range targets {
		p.WithTarget(t)
	}
	return p
}

func tooltip() *common.VizTooltipOptionsBuilder {
	return common.NewVizTooltipOptionsBuilder().Mode(common.TooltipDisplayModeMulti).Sort(common.SortOrderDescending)
}

// prom is a range query on the provisioned Prometheus datasource.
func prom(refID, expr, legend string) *prometheus.DataqueryBuilder {
	return prometheus.NewDataqueryBuilder().RefId(refID).Datasource(prometheusDS()).Expr(expr).
		LegendFormat(legend).Range().EditorMode(prometheus.QueryEditorModeCode)
}

// --- Estate compliance ----------------------------------------------------------------

func compliance() *dashboard.DashboardBuilder {
	scope := map[string]string{"list": "$list", "collection": "$collection", "site": "$site"}
	return base("statepipe-compliance", "Estate compliance",
		"Compliance of the estate with an update list: overall, by update list, by collection, by site of the hierarchy, and over time.", "now-7d").
		WithVariable(siteVar()).
		WithVariable(listVar()).
		WithVariable(collectionVar()).
		WithPanel(statPanel("Overall compliance",
			"Computers compliant with every update of $list (Installed or Not required), of the computers in scope: the compliance report's computers line.").
			WithTarget(Report("A", "compliance", scope)).
			ReduceOptions(field("computers_compliant_pct", false)).
			Unit("percent").Min(0).Max(100).Decimals(2).Thresholds(complianceThresholds())).
		WithPanel(statPanel("Computers compliant", "Computers in scope compliant with the whole list.").
			WithTarget(Report("A", "compliance", scope)).ReduceOptions(field("computers_compliant", false))).
		WithPanel(statPanel("Computers non-compliant", "Computers in scope that still require an update of the list.").
			WithTarget(Report("A", "compliance", scope)).ReduceOptions(field("computers_non_compliant", false)).
			Thresholds(thresholds(step(nil, "green"), step(cog.ToPtr(1.0), "red")))).
		WithPanel(statPanel("Computers unknown", "Computers in scope whose state for an update of the list is not known (no state, no scan after the update's first synchronisation).").
			WithTarget(Report("A", "compliance", scope)).ReduceOptions(field("computers_unknown", false)).
			Thresholds(thresholds(step(nil, "green"), step(cog.ToPtr(1.0), "orange")))).
		WithPanel(reportTable("Updates of the list", "Per update of $list: machines Installed, Required, Not required and Unknown (folding rule 3), and the share compliant.", "update_id", "title", "installed", "required", "not_required", "unknown", "total", "compliant_pct").
			WithTarget(Report("A", "compliance", scope)).
			OverrideByName("compliant_pct", gaugeCell()).
			Span(24)).
		WithPanel(timeseries.NewPanelBuilder().Title("Compliance trend").
			Description("Compliance with $list over the dashboard's time range, from the message history (trend report: the states accepted by each point). The history stays at each client's site, so this counts $site's own clients only (empty: the datasource's site). Set the range's end to a deployment's deadline (its Schedule on the Deployment dashboard) to read the trend against it; the dashed line is the 95 % goal.").
			Datasource(statepipeDS()).Height(9).Span(24).Tooltip(tooltip()).
			WithTarget(Report("A", "trend", scope)).
			WithTransformation(dashboard.DataTransformerConfig{Id: "filterFieldsByName",
				Options: map[string]any{"include": map[string]any{"names": []string{"time", "compliant_pct"}}}}).
			Unit("percent").Min(0).Max(100).Decimals(2).FillOpacity(10).
			Thresholds(thresholds(step(nil, "transparent"), step(cog.ToPtr(95.0), "green"))).
			ThresholdsStyle(common.NewGraphThresholdsStyleConfigBuilder().Mode(common.GraphThresholdsStyleModeDashed))).
		WithPanel(tablePanel("Compliance by update list",
			"Computers by compliance with each update list (every update of it Installed or Not required), over the datasource's site and every site below it, in $collection. The empty list is the whole catalog.").
			WithTarget(SQL("A", sqlByList)).OverrideByName("compliant_pct", gaugeCell()).Span(12).Height(10)).
		WithPanel(tablePanel("Compliance by collection and site",
			"Computers by compliance with $list per collection (the empty one: every client), over every site of the hierarchy (all sites) and per site (each site counts its own clients).").
			WithTarget(SQL("A", sqlByCollectionAndSite)).OverrideByName("compliant_pct", gaugeCell()).Span(12).Height(10))
}

// A dashboard holds at most two SQL targets: a site runs --sql.max-concurrent (2) analyst
// queries at once and answers one more 503, and a dashboard's panels query together.
// The SQL panels name every column with AS (the tests check the fields panels read against
// those names). The views of SQL panels (schema/README.md "Hierarchy tables and views"): v_tree_agg_lists
// holds, per site of the tree (this one and those below), the computers by compliance with
// each update list (status 1 compliant, 2 non-compliant, 0 unknown), per scope (” the site,
// else a collection).
const (
	sqlByList = `SELECT a.list AS list, if(a.list = '', 'every catalog update', any(l.name)) AS list_name,
  sumIf(a.clients, a.status = 1) AS compliant, sumIf(a.clients, a.status = 2) AS non_compliant,
  sumIf(a.clients, a.status = 0) AS unknown, sum(a.clients) AS computers,
  if(computers = 0, 0, round(100 * compliant / computers, 2)) AS compliant_pct
FROM v_tree_agg_lists AS a LEFT JOIN v_update_lists AS l ON l.id = a.list
WHERE a.scope = '$collection'
GROUP BY a.list ORDER BY compliant_pct, list`

	sqlByCollectionAndSite = `SELECT a.scope AS collection, if(a.scope = '', 'every client', any(c.name)) AS collection_name,
  if(a.origin_site = '', 'all sites', a.origin_site) AS site,
  sumIf(a.clients, a.status = 1) AS compliant, sumIf(a.clients, a.status = 2) AS non_compliant,
  sumIf(a.clients, a.status = 0) AS unknown, sum(a.clients) AS computers,
  if(computers = 0, 0, round(100 * compliant / computers, 2)) AS compliant_pct
FROM v_tree_agg_lists AS a LEFT JOIN v_collections AS c ON c.id = a.scope
WHERE a.list = '$list'
GROUP BY GROUPING SETS ((a.scope, a.origin_site), (a.scope))
ORDER BY collection, a.origin_site != '', site`
)

// --- Deployment -----------------------------------------------------------------------

// enforcementStates are the deployment enforcement (301) states, ConfigMgr's "States 1".
var enforcementStates = []string{"Enforcement state unknown", "Installing update(s)", "Waiting for restart",
	"Waiting for another installation", "Successfully installed", "Pending system restart",
	"Failed to install update(s)", "Downloading update(s)", "Downloaded update(s)",
	"Failed to download update(s)", "Waiting for maintenance window"}

func stateVar() *dashboard.CustomVariableBuilder {
	opts := make([]dashboard.VariableOption, len(enforcementStates))
	for i, name := range enforcementStates {
		opts[i] = option(strconv.Itoa(i)+" "+name, strconv.Itoa(i))
	}
	return customVar("state", "Enforcement state", "A deployment enforcement (301) state: the machines panel lists the targeted machines in it", opts, 6)
}

func deployment() *dashboard.DashboardBuilder {
	dep := map[string]string{"deployment": "$deployment", "site": "$site"}
	return base("statepipe-deployment", "Deployment",
		"One deployment: ConfigMgr's \"States 1\" (its target collection's clients by enforcement state), the progress of its phases, and the machines in a chosen state.", "now-7d").
		WithVariable(siteVar()).
		WithVariable(deploymentVar()).
		WithVariable(stateVar()).
		WithPanel(barGauge("States 1 – enforcement states",
			"The clients of $deployment's target collection by their live deployment enforcement (301) state; a targeted client with none counts as 0 Enforcement state unknown.").
			WithTarget(Report("A", "deployment", dep)).
			ReduceOptions(field("clients", true)).
			Span(10).Height(10)).
		WithPanel(barGauge("States 1 – share of targeted clients", "Each enforcement state's clients over the targeted clients.").
			WithTarget(Report("A", "deployment", dep)).
			ReduceOptions(field("pct", true)).
			Unit("percent").Max(100).Decimals(1).Span(8).Height(10)).
		WithPanel(statPanel("Targeted clients", "Clients of the deployment's target collection (in a hierarchy: those the sites heard from, the rest in state 0).").
			WithTarget(Report("A", "deployment", dep)).ReduceOptions(field("deployment_total", false)).Span(6).Height(10)).
		WithPanel(barGauge("States 2 – evaluation states",
			"The same clients by their live deployment evaluation (302) state; none counts as 0 Unknown.").
			WithTarget(Report("A", "deployment", dep)).
			ReduceOptions(field("evaluation_clients", true)).
			Span(12).Height(7)).
		WithPanel(barGauge("States 2 – compliance states",
			"The same clients by their live deployment compliance (300) state; none counts as 0 Unknown.").
			WithTarget(Report("A", "deployment", dep)).
			ReduceOptions(field("compliance_clients", true)).
			Span(12).Height(7)).
		WithPanel(tablePanel("States 5 – enforcement per update",
			"Per update of $deployment, its targeted clients by their live update enforcement (402) state, a column per state (none: 0 Enforcement state unknown). Drill down with the machines report (deployment, update, state).").
			WithTarget(Report("A", "deployment", dep)).
			WithTransformation(dashboard.DataTransformerConfig{Id: "filterFieldsByName",
				Options: map[string]any{"include": map[string]any{"pattern": "^(update_id|title|[0-9]+ .*)$"}}}).
			Span(24).Height(8)).
		WithPanel(tablePanel("Schedule", "The deployment's start and deadline, and the days left to it (negative: past).").
			WithTarget(SQL("A", sqlSchedule)).
			OverrideByName("start", []dashboard.DynamicConfigValue{prop("unit", "dateTimeAsIso")}).
			OverrideByName("deadline", []dashboard.DynamicConfigValue{prop("unit", "dateTimeAsIso")}).
			Span(24).Height(4)).
		WithPanel(tablePanel("Progress per phase",
			"Each phase of $deployment: its members, those compliant with the deployment's updates (over this site and the sites below it), against its criterion, and its release. Empty for a deployment without phases.").
			WithTarget(SQL("A", sqlPhases)).
			OverrideByName("success_pct", gaugeCell()).
			OverrideByName("criterion_pct", []dashboard.DynamicConfigValue{prop("unit", "percent")}).
			OverrideByName("released_at", []dashboard.DynamicConfigValue{prop("unit", "dateTimeAsIso")}).
			Span(24)).
		WithPanel(reportTable("Machines in the chosen state",
			"The targeted machines of $deployment in enforcement state $state (the first 1,000, sorted; in a hierarchy the answering site's own).", "machine").
			WithTarget(Report("A", "machines", map[string]string{"deployment": "$deployment", "state": "$state", "site": "$site", "limit": "1000"}))).
		WithPanel(statPanel("Machines in the chosen state (all pages)", "How many targeted machines are in enforcement state $state.").
			WithTarget(Report("A", "machines", map[string]string{"deployment": "$deployment", "state": "$state", "site": "$site", "limit": "1000"})).
			ReduceOptions(field("machines_total", false)).Span(12).Height(9))
}

// sqlSchedule is the deployment's dates (v_deployments).
const sqlSchedule = `SELECT id AS deployment, name AS name, collection AS collection, start AS start,
  deadline AS deadline, dateDiff('day', now(), deadline) AS days_left, mandatory AS mandatory
FROM v_deployments
WHERE id = '$deployment'`

// sqlPhases joins each phase (v_deployment_phases) with the compliant machines of its
// generated collection for the deployment's generated list (schema/README.md, "Phased
// deployments"): the success the release rule compares against its criterion.
const sqlPhases = `SELECT p.phase AS phase, p.name AS name, p.members AS members, c.compliant AS compliant,
  if(p.members = 0, 0, floor(10000 * c.compliant / p.members) / 100) AS success_pct,
  p.success_pct AS criterion_pct, if(p.released = 1, 'released', 'waiting') AS state,
  p.released_at AS released_at, p.reason AS reason
FROM v_deployment_phases AS p
LEFT JOIN (SELECT scope, sum(clients) AS compliant FROM v_tree_agg_lists
           WHERE list = concat('$deployment', '~updates') AND status = 1 GROUP BY scope) AS c
  ON c.scope = p.phase_collection
WHERE p.deployment = '$deployment'
ORDER BY p.phase`

// --- Errors ---------------------------------------------------------------------------

func errorsDashboard() *dashboard.DashboardBuilder {
	return base("statepipe-errors", "Errors",
		"HRESULTs of live enforcement states (update 402, deployment 301), stack-ranked by the machines carrying them.", "now-7d").
		WithVariable(siteVar()).
		WithPanel(barGauge("Top HRESULTs by machines", "Distinct machines per error code, most first.").
			WithTarget(Report("A", "errors", map[string]string{"site": "$site"})).
			ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"}).Fields("/^machines$/").Values(true).Limit(10)).
			// a bar's name is its row's strings: keep the code and its description
			WithTransformation(dashboard.DataTransformerConfig{Id: "organize", Options: map[string]any{
				"excludeByName": map[string]any{"updates": true, "deployments": true}}}).
			Span(24).Height(8)).
		WithPanel(reportTable("HRESULTs with descriptions",
			"Per error code (hex) its description, the machines whose live enforcement state carries it, and the updates and deployments where it is (at most 10 each).", "hex", "description", "machines", "updates", "deployments").
			WithTarget(Report("A", "errors", map[string]string{"site": "$site"})).
			Span(24).Height(12)).
		WithPanel(reportTable("Scan errors",
			"Per error code (hex) of a live scan (501) state: its description, the machines whose scan of some update source carries it, and those sources (at most 10). ConfigMgr's Troubleshooting 1.", "hex", "description", "machines", "sources").
			WithTarget(Report("A", "errors", map[string]string{"topic": "scan", "site": "$site"})).
			Span(24).Height(10))
}

// --- Scan health ----------------------------------------------------------------------

func daysVar() *dashboard.CustomVariableBuilder {
	var opts []dashboard.VariableOption
	for _, d := range []string{"1", "3", "7", "14", "30", "90"} {
		opts = append(opts, option(d, d))
	}
	return customVar("days", "Not scanned in (days)", "Stale: no successful scan (501 state 3 or 6) in this many days", opts, 2).
		AllowCustomValue(true)
}

func scan() *dashboard.DashboardBuilder {
	p := map[string]string{"collection": "$collection", "days": "$days", "site": "$site"}
	return base("statepipe-scan", "Scan health",
		"Clients by the state of their latest update scan (501), and the clients with no successful scan in N days.", "now-7d").
		WithVariable(siteVar()).
		WithVariable(collectionVar()).
		WithVariable(daysVar()).
		WithPanel(barGauge("Last scan state", "Clients in scope by the state of their latest scan (greatest serial across update sources); none: 0 Unknown. Absent in a hierarchy counting several update sources: see per update source.").
			WithTarget(Report("A", "scan", p)).ReduceOptions(field("clients", true)).Span(12)).
		WithPanel(statPanel("Not scanned in $days days", "Clients in scope whose latest successful scan is older than $days days, or that never scanned successfully.").
			WithTarget(Report("A", "scan", p)).ReduceOptions(field("stale_clients", false)).
			Thresholds(thresholds(step(nil, "green"), step(cog.ToPtr(1.0), "orange"))).Height(9)).
		WithPanel(statPanel("Clients in scope", "Clients counted: the collection's members, or every client heard from.").
			WithTarget(Report("A", "scan", p)).ReduceOptions(field("scan_total", false)).Height(9)).
		WithPanel(reportTable("Clients not scanned in $days days", "The stale clients (at most 1,000, sorted; in a hierarchy the answering site's own).", "client").
			WithTarget(Report("A", "scan", p))).
		WithPanel(reportTable("Scan state per update source", "Clients in scope per update source (the 501 topic id) by their state for it.", "source", "source_state", "source_state_name", "source_clients").
			WithTarget(Report("A", "scan", p))).
		WithPanel(reportTable("Last scan state by site", "In a site hierarchy, per site: its clients in scope by the state of their latest scan (state -1: the site has several update sources, see per update source), its clients and its stale clients. ConfigMgr's Scan 2. Empty at a standalone site.", "site", "site_state", "site_state_name", "site_clients", "site_total", "site_stale_clients").
			WithTarget(Report("A", "scan", p)).Span(24))
}

// --- Operations -----------------------------------------------------------------------

// metricSite filters the Prometheus panels by the metricsite variable (All: every site).
const metricSite = `site=~"$metricsite"`

func operations() *dashboard.DashboardBuilder {
	backlog := map[string]string{"site": "$site"}
	return base("statepipe-operations", "Operations",
		"Backlog and freshness per site and link, pacing, dead letters: now from the backlog report, over time from Prometheus.", "now-6h").
		Refresh("30s").
		WithVariable(siteVar()).
		WithVariable(dashboard.NewQueryVariableBuilder("metricsite").Label("Sites (metrics)").
			Description("Sites whose Prometheus series the time series show").
			Datasource(prometheusDS()).
			Query(dashboard.StringOrMap{String: cog.ToPtr("label_values(statepipe_projector_lag_records, site)")}).
			Definition("label_values(statepipe_projector_lag_records, site)").
			Refresh(dashboard.VariableRefreshOnTimeRangeChanged).Sort(dashboard.VariableSortAlphabeticalAsc).
			Multi(true).IncludeAll(true).AllValue(".*").Current(option("All", "$__all"))).
		WithPanel(reportTable("Backlog and pacing per site (now)",
			"Per site of the tree: reports accepted and not folded (records, age of the oldest), and its pacing controller: mode, decision and why, admitted enrolment rate, report interval, pressure and the limiting signal.", "site", "parent", "lag_records", "lag_seconds", "pacing_mode", "pacing_decision", "pacing_reason", "pacing_enroll_rate", "pacing_report_interval_seconds", "pacing_pressure", "pacing_limiting", "pacing_lag_seconds", "pacing_target_seconds", "pacing_at").
			WithTarget(Report("A", "backlog", backlog)).Span(24).Height(8)).
		WithPanel(reportTable("Links (now)",
			"Per link up to the site answering: freshness (now − the site's watermark as it reached here), reports not yet sent up, and its state (active, degraded, failed).", "link_site", "link", "freshness_seconds", "backlog_records", "link_state").
			WithTarget(Report("A", "backlog", backlog)).
			OverrideByName("link_state", []dashboard.DynamicConfigValue{
				prop("custom.cellOptions", map[string]any{"type": "color-text"}),
				prop("mappings", []map[string]any{{"type": "value", "options": map[string]any{
					"active":   map[string]any{"color": "green", "index": 0},
					"degraded": map[string]any{"color": "orange", "index": 1},
					"failed":   map[string]any{"color": "red", "index": 2}}}}),
			}).Span(24).Height(6)).
		WithPanel(promTimeseries("Backlog (records)", "Records of state.<site> and ref.<site> the projector group has not committed, per site.", "short",
			prom("A", `sum by (site) (statepipe_projector_lag_records{`+metricSite+`})`, "{{site}}"))).
		WithPanel(promTimeseries("Lag against target", "Age of the oldest accepted, unfolded report per site, and the pacing target.", "s",
			prom("A", `max by (site) (statepipe_pacing_lag_seconds{`+metricSite+`})`, "{{site}} lag"),
			prom("B", `max by (site) (statepipe_pacing_target_seconds{`+metricSite+`})`, "{{site}} target"))).
		WithPanel(promTimeseries("Link freshness", "Per link up: now − the watermark of the last send the parent's Kafka acknowledged.", "s",
			prom("A", `max by (site, parent) (statepipe_replicator_freshness_seconds{`+metricSite+`})`, "{{site}}->{{parent}}"))).
		WithPanel(promTimeseries("Link backlog (records)", "Per link up: reports accepted at the site and not yet in an acknowledged send.", "short",
			prom("A", `max by (site, parent) (statepipe_replicator_backlog_records{`+metricSite+`})`, "{{site}}->{{parent}}"))).
		WithPanel(promTimeseries("Pacing: admitted enrolment rate", "New enrolments a second the ingest nodes of each site admit (0 while paused).", "short",
			prom("A", `sum by (site) (statepipe_pacing_enroll_rate{`+metricSite+`})`, "{{site}}"))).
		WithPanel(promTimeseries("Pacing: decisions", "Controller steps a second by decision (increase, hold, decrease, pause, manual, off).", "short",
			prom("A", `sum by (site, kind) (rate(statepipe_pacing_decisions_total{`+metricSite+`}[$__rate_interval]))`, "{{site}} {{kind}}"))).
		WithPanel(promTimeseries("Pacing: pressure", "The worst signal over its target per site (1 = at target), and whether new clients are paused.", "short",
			prom("A", `max by (site) (statepipe_pacing_pressure{`+metricSite+`})`, "{{site}} pressure"),
			prom("B", `max by (site) (statepipe_pacing_paused{`+metricSite+`})`, "{{site}} paused"))).
		WithPanel(promTimeseries("Dead letters", "Records sent to the dead-letter topic, per site and reason: each is counted nowhere (statepipe dlq list).", "short",
			prom("A", `sum by (site, reason) (increase(statepipe_projector_dead_letters_total{`+metricSite+`}[$__rate_interval]))`, "{{site}} {{reason}}"))).
		WithPanel(promTimeseries("Visible delay (p99)", "Ingest acceptance to committed in the store, 99th percentile per site.", "s",
			prom("A", `histogram_quantile(0.99, sum by (site, le) (rate(statepipe_projector_visible_delay_seconds_bucket{`+metricSite+`}[$__rate_interval])))`, "{{site}}"))).
		WithPanel(promTimeseries("Ingest shedding", "Report requests answered 503 overloaded, a second per site.", "short",
			prom("A", `sum by (site) (rate(statepipe_ingest_rejected_total{reason="overloaded",`+metricSite+`}[$__rate_interval]))`, "{{site}}")))
}
