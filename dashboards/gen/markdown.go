package main

import (
	"fmt"
	"sort"
	"strings"

	"github.com/grafana/grafana-foundation-sdk/go/bargauge"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
)

// panelsMarkdown is the table of every dashboard's panels and the queries behind them, as
// README.md holds it (`go run . -panels` prints it; a test checks README.md against it).
func panelsMarkdown() (string, error) {
	register()
	var b strings.Builder
	for i, db := range dashboards() {
		d, err := db.Build()
		if err != nil {
			return "", fmt.Errorf("cannot build dashboard: %w", err)
		}
		if i > 0 {
			b.WriteString("\n")
		}
		var vars []string
		for _, v := range d.Templating.List {
			vars = append(vars, "`$"+v.Name+"`")
		}
		fmt.Fprintf(&b, "**%s** (`%s`; variables %s)\n\n| panel | type | query |\n|---|---|---|\n", *d.Title, *d.Uid, strings.Join(vars, ", "))
		for _, pr := range d.Panels {
			p := pr.Panel
			if p == nil {
				continue
			}
			var qs []string
			for _, t := range p.Targets {
				qs = append(qs, describeTarget(t))
			}
			fmt.Fprintf(&b, "| %s | %s | %s%s |\n", *p.Title, p.Type, strings.Join(qs, "; "), describePick(p))
		}
	}
	return b.String(), nil
}

func describeTarget(t any) string {
	switch q := t.(type) {
	case Query:
		if q.QueryType == "sql" {
			return "`sql` `" + strings.ReplaceAll(strings.Join(strings.Fields(q.RawSQL), " "), "|", `\|`) + "`"
		}
		keys := make([]string, 0, len(q.Params))
		for k := range q.Params {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var ps []string
		for _, k := range keys {
			ps = append(ps, k+"="+q.Params[k])
		}
		return fmt.Sprintf("`%s` `%s`", q.QueryType, strings.Join(ps, "&"))
	case prometheus.Dataquery:
		return "Prometheus `" + strings.ReplaceAll(q.Expr, "|", `\|`) + "`"
	case *prometheus.Dataquery:
		return "Prometheus `" + strings.ReplaceAll(q.Expr, "|", `\|`) + "`"
	}
	return fmt.Sprintf("%T", t)
}

// describePick says which fields a panel shows: by name (stat, bar gauge) or kept by a
// field filter (tables of a report, the trend).
func describePick(p *dashboard.Panel) string {
	for _, tr := range p.Transformations {
		if tr.Id != "filterFieldsByName" {
			continue
		}
		inc, _ := tr.Options.(map[string]any)["include"].(map[string]any)
		names, _ := inc["names"].([]string)
		if pattern, _ := inc["pattern"].(string); pattern != "" {
			return " → fields matching `/" + strings.ReplaceAll(pattern, "|", `\|`) + "/`" // a table cell
		}
		var quoted []string
		for i, n := range names {
			if i == 4 {
				quoted = append(quoted, "…")
				break
			}
			quoted = append(quoted, "`"+n+"`")
		}
		return " → " + strings.Join(quoted, ", ")
	}
	var ro *common.ReduceDataOptions
	switch o := p.Options.(type) {
	case *stat.Options:
		ro = &o.ReduceOptions
	case *bargauge.Options:
		ro = &o.ReduceOptions
	}
	if ro == nil || ro.Fields == nil {
		return ""
	}
	s := " → `" + strings.TrimSuffix(strings.TrimPrefix(*ro.Fields, "/^"), "$/") + "`"
	if ro.Values != nil && *ro.Values {
		s += " (each row)"
	}
	return s
}
