package main

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// reportAPI is one report of GET /v1/reports/NAME as schema/README.md documents it: the
// parameters it takes (besides site and wait, which every report takes) and those it needs.
// TestReportTableMatchesSchemaDocs checks every name against the report's section there.
type reportAPI struct {
	params   []string
	required []string
	oneOf    []string // exactly one of these is required (list or updates)
}

// reports is the table of the ten query types. "sql" takes no parameters: its statement is
// rawSql. Kept by hand from schema/README.md ("## Reports: …"); the generator module does not
// import statepipe's own module (report.Reports), which needs cgo and chDB.
var reports = map[string]reportAPI{
	"compliance": {params: []string{"list", "updates", "collection", "source"}},
	"machines":   {params: []string{"state", "update", "list", "updates", "collection", "deployment", "topic", "error", "after", "limit"}},
	"deployment": {params: []string{"deployment", "state"}, required: []string{"deployment"}},
	"errors":     {params: []string{"topic", "deployment", "collection"}},
	"scan":       {params: []string{"collection", "days"}},
	"computer":   {params: []string{"client", "list", "updates", "deployment"}, required: []string{"client"}, oneOf: []string{"list", "updates", "deployment"}},
	"update":     {params: []string{"update", "collection"}, required: []string{"update"}},
	"trend":      {params: []string{"list", "updates", "collection", "from", "to", "step"}, oneOf: []string{"list", "updates"}},
	"backlog":    {},
	"sql":        {},
}

// commonParams are taken by every report.
var commonParams = []string{"site", "wait"}

// queryTypes lists the query types, sorted.
func queryTypes() []string {
	names := make([]string, 0, len(reports))
	for n := range reports {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// checkQuery judges a target as the API would judge its parameters' names and presence
// (values are variables here, so they are judged where they are substituted).
func checkQuery(queryType string, params map[string]string, rawSQL string) error {
	api, ok := reports[queryType]
	if !ok {
		return fmt.Errorf("cannot use query type %q: not one of %s", queryType, strings.Join(queryTypes(), ", "))
	}
	if queryType == "sql" {
		if strings.TrimSpace(rawSQL) == "" {
			return fmt.Errorf("cannot use query type sql without rawSql")
		}
		if len(params) != 0 {
			return fmt.Errorf("cannot give query type sql params (%v): the statement is rawSql", params)
		}
		return nil
	}
	if rawSQL != "" {
		return fmt.Errorf("cannot give report %s a rawSql (%q): only sql takes one", queryType, rawSQL)
	}
	for name := range params {
		if !slices.Contains(api.params, name) && !slices.Contains(commonParams, name) {
			return fmt.Errorf("cannot give report %s parameter %s (it takes: %s)", queryType, name, strings.Join(append(slices.Clone(api.params), commonParams...), ", "))
		}
	}
	for _, name := range api.required {
		if params[name] == "" {
			return fmt.Errorf("cannot ask report %s without parameter %s", queryType, name)
		}
	}
	if len(api.oneOf) > 0 {
		n := 0
		for _, name := range api.oneOf {
			if params[name] != "" {
				n++
			}
		}
		if n != 1 {
			return fmt.Errorf("cannot ask report %s without exactly one of %s (%v)", queryType, strings.Join(api.oneOf, ", "), params)
		}
	}
	return nil
}
