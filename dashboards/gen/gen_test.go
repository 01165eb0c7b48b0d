package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"gopkg.in/yaml.v3"
)

// committed is the generator's committed output, relative to this package.
const committed = "../grafana"

// wantDashboards are the provisioned dashboards (the README lists them): uid → title.
var wantDashboards = map[string]string{
	"statepipe-compliance": "Estate compliance",
	"statepipe-deployment": "Deployment",
	"statepipe-errors":     "Errors",
	"statepipe-scan":       "Scan health",
	"statepipe-operations": "Operations",
}

// realErr turns the SDK's typed-nil or empty cog.BuildErrors into nil: its decoders and
// Validate return a cog.BuildErrors in an error interface even on success.
func realErr(err error) error {
	var be cog.BuildErrors
	if errors.As(err, &be) && len(be) == 0 {
		return nil
	}
	return err
}

// strict decodes a dashboard as the SDK does strictly (unknown fields and wrong types
// refused, panels' options and statepipe targets included) and validates it.
func strict(raw []byte) error {
	register()
	var d dashboard.Dashboard
	if err := realErr(d.UnmarshalJSONStrict(raw)); err != nil {
		return fmt.Errorf("strict decode: %w", err)
	}
	if err := realErr(d.Validate()); err != nil {
		return fmt.Errorf("validate: %w", err)
	}
	return nil
}

type loaded struct {
	uid string
	raw []byte
	doc map[string]any
}

func loadCommitted(t *testing.T) []loaded {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(committed, "dashboards", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	var out []loaded
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var doc map[string]any
		if err := json.Unmarshal(raw, &doc); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		out = append(out, loaded{uid: strings.TrimSuffix(filepath.Base(p), ".json"), raw: raw, doc: doc})
	}
	if len(out) == 0 {
		t.Fatalf("no dashboards under %s/dashboards: run go run . first", committed)
	}
	return out
}

// mutate returns a copy of doc changed by f.
func mutate(t *testing.T, doc map[string]any, f func(d map[string]any)) map[string]any {
	t.Helper()
	raw, _ := json.Marshal(doc)
	var c map[string]any
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	f(c)
	return c
}

func encode(t *testing.T, doc map[string]any) []byte {
	t.Helper()
	raw, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// panels lists every panel, those of rows included.
func panels(doc map[string]any) []map[string]any {
	var out []map[string]any
	var walk func(list []any)
	walk = func(list []any) {
		for _, p := range list {
			pm, ok := p.(map[string]any)
			if !ok {
				continue
			}
			out = append(out, pm)
			if sub, ok := pm["panels"].([]any); ok {
				walk(sub)
			}
		}
	}
	list, _ := doc["panels"].([]any)
	walk(list)
	return out
}

func targets(p map[string]any) []map[string]any {
	var out []map[string]any
	list, _ := p["targets"].([]any)
	for _, t := range list {
		if tm, ok := t.(map[string]any); ok {
			out = append(out, tm)
		}
	}
	return out
}

func variables(doc map[string]any) []map[string]any {
	var out []map[string]any
	tpl, _ := doc["templating"].(map[string]any)
	list, _ := tpl["list"].([]any)
	for _, v := range list {
		if vm, ok := v.(map[string]any); ok {
			out = append(out, vm)
		}
	}
	return out
}

func str(m map[string]any, key string) string {
	s, _ := m[key].(string)
	return s
}

func dsOf(m map[string]any) (typ, uid string, ok bool) {
	ds, ok := m["datasource"].(map[string]any)
	if !ok {
		return "", "", false
	}
	return str(ds, "type"), str(ds, "uid"), true
}

// --- the provisioned dashboards ---------------------------------------------------

func TestCommittedDashboardsAreTheContractsFive(t *testing.T) {
	got := map[string]string{}
	for _, d := range loadCommitted(t) {
		if str(d.doc, "uid") != d.uid {
			t.Errorf("%s.json holds uid %q", d.uid, str(d.doc, "uid"))
		}
		got[d.uid] = str(d.doc, "title")
	}
	if fmt.Sprint(got) != fmt.Sprint(wantDashboards) {
		t.Errorf("dashboards (uid: title) = %v, want %v", got, wantDashboards)
	}
	for uid, title := range map[string]string{"statepipe-compliance": "Overall compliance", "statepipe-deployment": "States 1 – enforcement states"} {
		found := false
		for _, d := range loadCommitted(t) {
			for _, p := range panels(d.doc) {
				found = found || d.uid == uid && str(p, "title") == title
			}
		}
		if !found {
			t.Errorf("%s has no panel titled exactly %q", uid, title)
		}
	}
}

// --- strict decoding and validation ---------------------------------------------------

func TestDashboardsDecodeStrictlyAndValidate(t *testing.T) {
	for _, d := range loadCommitted(t) {
		if err := strict(d.raw); err != nil {
			t.Errorf("%s: %v", d.uid, err)
		}
	}
}

// The check above can fail: a misspelt panel option, a statepipe target's unknown field, a
// wrong type and a bad time range are each refused.
func TestStrictDecodeRefusesMistakes(t *testing.T) {
	d := loadCommitted(t)[0]
	for name, f := range map[string]func(map[string]any){
		"unknown panel field": func(m map[string]any) { panels(m)[0]["titel"] = "x" },
		"misspelt option": func(m map[string]any) {
			for _, p := range panels(m) {
				if o, ok := p["options"].(map[string]any); ok {
					o["reduceOptionz"] = map[string]any{}
				}
			}
		},
		"unknown target field": func(m map[string]any) {
			for _, p := range panels(m) {
				for _, tg := range targets(p) {
					tg["querytype"] = tg["queryType"] // a case the plugin does not read
					delete(tg, "queryType")
				}
			}
		},
		"misspelt target field": func(m map[string]any) {
			for _, p := range panels(m) {
				for _, tg := range targets(p) {
					tg["param"] = tg["params"]
				}
			}
		},
		"wrong type":      func(m map[string]any) { panels(m)[0]["gridPos"] = "wide" },
		"bad time range":  func(m map[string]any) { m["time"] = map[string]any{"from": 7} },
		"unknown top key": func(m map[string]any) { m["panel"] = []any{} },
	} {
		if err := strict(encode(t, mutate(t, d.doc, f))); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// --- datasources: every uid a provisioned one -----------------------------------------

type provisionedDS struct {
	Name           string            `yaml:"name"`
	UID            string            `yaml:"uid"`
	Type           string            `yaml:"type"`
	Access         string            `yaml:"access"`
	IsDefault      bool              `yaml:"isDefault"`
	Editable       bool              `yaml:"editable"`
	URL            string            `yaml:"url"`
	JSONData       map[string]any    `yaml:"jsonData"`
	SecureJSONData map[string]string `yaml:"secureJsonData"`
}

func provisioned(t *testing.T) map[string]provisionedDS {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(committed, "provisioning", "datasources", "statepipe.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		APIVersion  int             `yaml:"apiVersion"`
		Datasources []provisionedDS `yaml:"datasources"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		t.Fatal(err)
	}
	if f.APIVersion != 1 {
		t.Errorf("datasources apiVersion %d, want 1", f.APIVersion)
	}
	out := map[string]provisionedDS{}
	for _, ds := range f.Datasources {
		out[ds.UID] = ds
	}
	return out
}

func TestProvisioningFiles(t *testing.T) {
	ds := provisioned(t)
	sp, prom := ds[StatepipeUID], ds[PrometheusUID]
	if sp.Type != PluginID || sp.JSONData["url"] != "http://statepipe:8081" || sp.SecureJSONData["token"] != "${STATEPIPE_READER_TOKEN}" {
		t.Errorf("statepipe datasource = %+v", sp)
	}
	if prom.Type != "prometheus" || prom.URL != "http://prometheus:9090" {
		t.Errorf("prometheus datasource = %+v", prom)
	}
	if len(ds) != 2 {
		t.Errorf("datasources %v, want statepipe and prometheus", ds)
	}
	raw, err := os.ReadFile(filepath.Join(committed, "provisioning", "dashboards", "statepipe.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		APIVersion int `yaml:"apiVersion"`
		Providers  []struct {
			Name, Folder, FolderUID, Type string
			OrgID                         int  `yaml:"orgId"`
			DisableDeletion               bool `yaml:"disableDeletion"`
			AllowUIUpdates                bool `yaml:"allowUiUpdates"`
			UpdateIntervalSeconds         int  `yaml:"updateIntervalSeconds"`
			Options                       struct {
				Path                      string `yaml:"path"`
				FoldersFromFilesStructure bool   `yaml:"foldersFromFilesStructure"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	if err := yaml.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	if f.APIVersion != 1 || len(f.Providers) != 1 || f.Providers[0].Type != "file" || f.Providers[0].Options.Path != DashboardsPath {
		t.Errorf("dashboard provider = %+v", f)
	}
}

// checkDatasources: every panel, target and variable names a provisioned datasource (uid
// and type), and a panel's targets use the panel's datasource.
func checkDatasources(doc map[string]any, ds map[string]provisionedDS) []error {
	var errs []error
	check := func(where string, m map[string]any) (string, bool) {
		typ, uid, ok := dsOf(m)
		if !ok {
			errs = append(errs, fmt.Errorf("%s: no datasource", where))
			return "", false
		}
		p, found := ds[uid]
		if !found {
			errs = append(errs, fmt.Errorf("%s: datasource uid %q is not provisioned", where, uid))
			return "", false
		}
		if p.Type != typ {
			errs = append(errs, fmt.Errorf("%s: datasource %q has type %q, provisioned as %q", where, uid, typ, p.Type))
		}
		return uid, true
	}
	for _, p := range panels(doc) {
		if str(p, "type") == "row" {
			continue
		}
		where := fmt.Sprintf("panel %q", str(p, "title"))
		puid, _ := check(where, p)
		tgs := targets(p)
		if len(tgs) == 0 {
			errs = append(errs, fmt.Errorf("%s: no targets", where))
		}
		for _, tg := range tgs {
			if uid, ok := check(where+" target "+str(tg, "refId"), tg); ok && uid != puid {
				errs = append(errs, fmt.Errorf("%s target %s: datasource %q, the panel's is %q", where, str(tg, "refId"), uid, puid))
			}
		}
	}
	for _, v := range variables(doc) {
		if str(v, "type") == "query" {
			check("variable "+str(v, "name"), v)
		}
	}
	return errs
}

func TestDatasourceUIDsAreProvisioned(t *testing.T) {
	ds := provisioned(t)
	for _, d := range loadCommitted(t) {
		for _, err := range checkDatasources(d.doc, ds) {
			t.Errorf("%s: %v", d.uid, err)
		}
	}
	bad := mutate(t, loadCommitted(t)[0].doc, func(m map[string]any) {
		targets(panels(m)[0])[0]["datasource"] = map[string]any{"type": PluginID, "uid": "statepipe-old"}
	})
	if len(checkDatasources(bad, ds)) == 0 {
		t.Error("a target on an unprovisioned datasource uid passed")
	}
}

// --- statepipe targets: query types and parameters of the API -------------------------

func checkStatepipeTargets(doc map[string]any) []error {
	var errs []error
	for _, p := range panels(doc) {
		for _, tg := range targets(p) {
			if typ, _, _ := dsOf(tg); typ != PluginID {
				continue
			}
			params := map[string]string{}
			if raw, ok := tg["params"].(map[string]any); ok {
				for k, v := range raw {
					s, isStr := v.(string)
					if !isStr {
						errs = append(errs, fmt.Errorf("panel %q: params.%s is %T, not a string", str(p, "title"), k, v))
					}
					params[k] = s
				}
			}
			if err := checkQuery(str(tg, "queryType"), params, str(tg, "rawSql")); err != nil {
				errs = append(errs, fmt.Errorf("panel %q target %s: %w", str(p, "title"), str(tg, "refId"), err))
			}
		}
	}
	return errs
}

func TestStatepipeTargetsAreValidQueries(t *testing.T) {
	n := 0
	for _, d := range loadCommitted(t) {
		for _, err := range checkStatepipeTargets(d.doc) {
			t.Errorf("%s: %v", d.uid, err)
		}
		for _, p := range panels(d.doc) {
			for _, tg := range targets(p) {
				if typ, _, _ := dsOf(tg); typ == PluginID {
					n++
				}
			}
		}
	}
	if n == 0 {
		t.Error("no statepipe targets at all")
	}
	// Each kind of mistake is caught.
	for name, tg := range map[string]map[string]any{
		"unknown query type":    {"queryType": "compliancy"},
		"parameter not taken":   {"queryType": "scan", "params": map[string]any{"deployment": "$deployment"}},
		"required missing":      {"queryType": "deployment", "params": map[string]any{"site": "$site"}},
		"list and updates both": {"queryType": "trend", "params": map[string]any{"list": "$list", "updates": "KB1"}},
		"sql without a query":   {"queryType": "sql"},
		"rawSql on a report":    {"queryType": "backlog", "rawSql": "SELECT 1"},
		"a number":              {"queryType": "scan", "params": map[string]any{"days": 7}},
	} {
		tg["refId"] = "A"
		tg["datasource"] = map[string]any{"type": PluginID, "uid": StatepipeUID}
		doc := map[string]any{"panels": []any{map[string]any{"title": name, "targets": []any{tg}}}}
		if len(checkStatepipeTargets(doc)) == 0 {
			t.Errorf("%s: passed", name)
		}
	}
}

// The table of reports (api.go) against schema/README.md: every parameter it lets a target
// use is documented in that report's section.
func TestReportTableMatchesSchemaDocs(t *testing.T) {
	raw, err := os.ReadFile("../../schema/README.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	for _, name := range queryTypes() {
		if name == "sql" {
			if !strings.Contains(doc, "POST /v1/sql") {
				t.Error("schema/README.md does not document POST /v1/sql")
			}
			continue
		}
		head := "## Reports: `GET /v1/reports/" + name + "`"
		i := strings.Index(doc, head)
		if i < 0 {
			t.Errorf("schema/README.md has no section %q", head)
			continue
		}
		section := doc[i+len(head):]
		if j := strings.Index(section, "\n## "); j >= 0 {
			section = section[:j]
		}
		for _, p := range reports[name].params {
			if !strings.Contains(section, "`"+p+"`") && !strings.Contains(section, "`"+p+"=") {
				t.Errorf("report %s: parameter %s is not in its section of schema/README.md", name, p)
			}
		}
	}
}

// --- variables: every one referenced is defined ---------------------------------------

// varRef finds $name, ${name}, ${name:format} and [[name]]; names starting "__" are Grafana's.
var varRef = regexp.MustCompile(`\$\{([A-Za-z0-9_]+)(?::[^}]*)?\}|\$([A-Za-z0-9_]+)|\[\[([A-Za-z0-9_]+)(?::[^\]]*)?\]\]`)

func collectStrings(v any, out *[]string) {
	switch x := v.(type) {
	case string:
		*out = append(*out, x)
	case map[string]any:
		for _, e := range x {
			collectStrings(e, out)
		}
	case []any:
		for _, e := range x {
			collectStrings(e, out)
		}
	}
}

func checkVariables(doc map[string]any) []error {
	defined := map[string]bool{}
	for _, v := range variables(doc) {
		defined[str(v, "name")] = true
	}
	var all []string
	for k, v := range doc {
		if k != "templating" {
			collectStrings(v, &all)
		}
	}
	for _, v := range variables(doc) {
		collectStrings(v["query"], &all) // a variable's query may use others
	}
	var errs []error
	seen := map[string]bool{}
	for _, s := range all {
		for _, m := range varRef.FindAllStringSubmatch(s, -1) {
			name := m[1] + m[2] + m[3]
			if strings.HasPrefix(name, "__") || defined[name] || seen[name] {
				continue
			}
			seen[name] = true
			errs = append(errs, fmt.Errorf("$%s is used (%q) but not defined", name, s))
		}
	}
	return errs
}

func TestReferencedVariablesAreDefined(t *testing.T) {
	for _, d := range loadCommitted(t) {
		for _, err := range checkVariables(d.doc) {
			t.Errorf("%s: %v", d.uid, err)
		}
	}
	for _, ref := range []string{"$colection", "${colection}", "${colection:csv}", "[[colection]]"} {
		bad := mutate(t, loadCommitted(t)[0].doc, func(m map[string]any) {
			targets(panels(m)[0])[0]["params"] = map[string]any{"collection": ref}
		})
		if len(checkVariables(bad)) == 0 {
			t.Errorf("an undefined %s passed", ref)
		}
	}
}

// Every dashboard has the site, list, collection and deployment variables where they apply.
func TestDashboardVariables(t *testing.T) {
	want := map[string][]string{
		"statepipe-compliance": {"site", "list", "collection"},
		"statepipe-deployment": {"site", "deployment", "state"},
		"statepipe-errors":     {"site"},
		"statepipe-scan":       {"site", "collection", "days"},
		"statepipe-operations": {"site", "metricsite"},
	}
	for _, d := range loadCommitted(t) {
		var got []string
		for _, v := range variables(d.doc) {
			got = append(got, str(v, "name"))
			if str(v, "type") == "query" && str(v, "name") != "metricsite" {
				q, _ := v["query"].(map[string]any)
				res, _ := q["resource"].(string)
				if typ, _, _ := dsOf(v); typ != PluginID || !slices.Contains([]string{"sites", "lists", "collections", "deployments"}, res) {
					t.Errorf("%s: variable %s is not a statepipe resource query: %v", d.uid, str(v, "name"), v["query"])
				}
			}
		}
		if !slices.Equal(got, want[d.uid]) {
			t.Errorf("%s: variables %v, want %v", d.uid, got, want[d.uid])
		}
	}
}

// --- regeneration gives the committed bytes -------------------------------------------

func TestRegenerateGivesCommittedBytes(t *testing.T) {
	dir := t.TempDir()
	files, err := render()
	if err != nil {
		t.Fatal(err)
	}
	if err := write(dir, files); err != nil {
		t.Fatal(err)
	}
	list := func(root string) []string {
		var out []string
		_ = filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
			if err == nil && !e.IsDir() {
				rel, _ := filepath.Rel(root, p)
				out = append(out, filepath.ToSlash(rel))
			}
			return nil
		})
		sort.Strings(out)
		return out
	}
	got, want := list(dir), list(committed)
	if !slices.Equal(got, want) {
		t.Errorf("generated files %v, committed %v", got, want)
	}
	for _, name := range got {
		a, _ := os.ReadFile(filepath.Join(dir, name))
		b, _ := os.ReadFile(filepath.Join(committed, name))
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs from what the generator writes: run go run . in dashboards/gen", name)
		}
	}
	// And twice in one process gives the same bytes.
	again, err := render()
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range files {
		if !bytes.Equal(data, again[name]) {
			t.Errorf("%s: two renders differ", name)
		}
	}
}

// --- Prometheus expressions name statepipe's metrics ----------------------------------

// codeMetrics collects every "statepipe_…" string literal of statepipe's Go code (the
// repository around this module, this module excluded).
func codeMetrics(t *testing.T) map[string]bool {
	t.Helper()
	lit := regexp.MustCompile(`"(statepipe_[a-z0-9_]+)"`)
	hist := regexp.MustCompile(`HistogramOpts\{\s*Name:\s*"(statepipe_[a-z0-9_]+)"`)
	out := map[string]bool{}
	root, _ := filepath.Abs("../..")
	self, _ := filepath.Abs(".")
	err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.IsDir() {
			if p == self || e.Name() == "node_modules" || strings.HasPrefix(e.Name(), ".") && p != root {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		raw, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, m := range lit.FindAllStringSubmatch(string(raw), -1) {
			out[m[1]] = true
		}
		for _, m := range hist.FindAllStringSubmatch(string(raw), -1) {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				out[m[1]+suffix] = true
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !out["statepipe_projector_lag_records"] {
		t.Fatalf("found no statepipe metrics in the Go code under %s (%d names)", root, len(out))
	}
	return out
}

var metricName = regexp.MustCompile(`\bstatepipe_[A-Za-z0-9_]+`)

// checkExpr: every metric an expression names is one statepipe's code exports (a histogram's
// _bucket, _sum and _count series included: codeMetrics adds them), and it names at least one.
func checkExpr(expr string, metrics map[string]bool) error {
	names := metricName.FindAllString(expr, -1)
	if len(names) == 0 {
		return fmt.Errorf("%q names no statepipe metric", expr)
	}
	for _, n := range names {
		if !metrics[n] {
			return fmt.Errorf("%q names %s, which statepipe's code does not export", expr, n)
		}
	}
	return nil
}

func promExprs(doc map[string]any) []string {
	var out []string
	for _, p := range panels(doc) {
		for _, tg := range targets(p) {
			if typ, _, _ := dsOf(tg); typ == "prometheus" {
				out = append(out, str(tg, "expr"))
			}
		}
	}
	for _, v := range variables(doc) {
		if typ, _, _ := dsOf(v); typ == "prometheus" {
			out = append(out, str(v, "query"))
		}
	}
	return out
}

func TestPrometheusExpressionsNameRealMetrics(t *testing.T) {
	metrics := codeMetrics(t)
	n := 0
	for _, d := range loadCommitted(t) {
		for _, e := range promExprs(d.doc) {
			n++
			if err := checkExpr(e, metrics); err != nil {
				t.Errorf("%s: %v", d.uid, err)
			}
		}
	}
	if n == 0 {
		t.Error("no Prometheus expressions at all")
	}
	for _, e := range []string{"sum(statepipe_projector_lag_record)", "rate(statepipe_made_up_total[5m])", "up", "statepipe_pacing_pressure_bucket"} {
		if checkExpr(e, metrics) == nil {
			t.Errorf("%q passed", e)
		}
	}
}

// --- panels read fields the plugin answers (dashboards/plugin/FRAMES.md) -------------

// frameDoc is FRAMES.md per query type: its frames in order and every field name it names.
type frameDoc struct {
	frames []string
	fields map[string]bool
}

func readFrames(t *testing.T) map[string]frameDoc {
	t.Helper()
	raw, err := os.ReadFile("../plugin/FRAMES.md")
	if err != nil {
		t.Fatalf("the plugin's frames are documented in dashboards/plugin/FRAMES.md: %v", err)
	}
	out := map[string]frameDoc{}
	head := regexp.MustCompile("(?m)^## ([a-z]+) — ")
	item := regexp.MustCompile("(?m)^\\d+\\. `([a-z_]+)`")
	tick := regexp.MustCompile("`([A-Za-z_][A-Za-z0-9_]*)`")
	locs := head.FindAllStringSubmatchIndex(string(raw), -1)
	for i, l := range locs {
		end := len(raw)
		if i+1 < len(locs) {
			end = locs[i+1][0]
		}
		section := string(raw[l[1]:end])
		if j := strings.Index(section, "\n## "); j >= 0 {
			section = section[:j]
		}
		fd := frameDoc{fields: map[string]bool{}}
		for _, m := range item.FindAllStringSubmatch(section, -1) {
			fd.frames = append(fd.frames, m[1])
		}
		for _, m := range tick.FindAllStringSubmatch(section, -1) {
			fd.fields[m[1]] = true
		}
		out[string(raw[l[2]:l[3]])] = fd
	}
	return out
}

// hasFieldFilter: the panel keeps fields by name (and so only the frames that hold them).
func hasFieldFilter(p map[string]any) bool {
	trs, _ := p["transformations"].([]any)
	for _, tr := range trs {
		if m, ok := tr.(map[string]any); ok && str(m, "id") == "filterFieldsByName" {
			return true
		}
	}
	return false
}

// number reads a JSON number (decoded as float64, or set by a test as an int).
func number(v any) (int, bool) {
	switch x := v.(type) {
	case float64:
		return int(x), x == float64(int(x))
	case int:
		return x, true
	}
	return 0, false
}

// sqlColumns are the aliases of a statement's select list ("… AS name").
func sqlColumns(stmt string) map[string]bool {
	out := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?i)\bAS ([a-z_][a-z0-9_]*)`).FindAllStringSubmatch(stmt, -1) {
		out[m[1]] = true
	}
	return out
}

// checkFrames: a panel's field picks (reduceOptions.fields "/^name$/", overrides by name,
// filterFieldsByName) name fields of its target's answer, and a table's frameIndex is one of
// its frames.
func checkFrames(doc map[string]any, frames map[string]frameDoc) []error {
	var errs []error
	pick := regexp.MustCompile(`^/\^([A-Za-z0-9_]+)\$/$`)
	for _, p := range panels(doc) {
		tgs := targets(p)
		if len(tgs) != 1 {
			continue
		}
		if typ, _, _ := dsOf(tgs[0]); typ != PluginID {
			continue
		}
		qt := str(tgs[0], "queryType")
		fd, ok := frames[qt]
		if qt == "sql" {
			fd, ok = frameDoc{frames: []string{"sql"}, fields: sqlColumns(str(tgs[0], "rawSql"))}, true
		}
		if !ok {
			errs = append(errs, fmt.Errorf("panel %q: FRAMES.md has no section for %s", str(p, "title"), qt))
			continue
		}
		var names []string
		opts, _ := p["options"].(map[string]any)
		if ro, ok := opts["reduceOptions"].(map[string]any); ok {
			if m := pick.FindStringSubmatch(str(ro, "fields")); m != nil {
				names = append(names, m[1])
			} else {
				errs = append(errs, fmt.Errorf("panel %q picks fields %q, not one by name", str(p, "title"), str(ro, "fields")))
			}
		}
		if fc, ok := p["fieldConfig"].(map[string]any); ok {
			ovs, _ := fc["overrides"].([]any)
			for _, o := range ovs {
				if m, ok := o.(map[string]any)["matcher"].(map[string]any); ok && str(m, "id") == "byName" {
					names = append(names, str(m, "options"))
				}
			}
		}
		trs, _ := p["transformations"].([]any)
		for _, tr := range trs {
			o, _ := tr.(map[string]any)["options"].(map[string]any)
			inc, _ := o["include"].(map[string]any)
			ns, _ := inc["names"].([]any)
			for _, n := range ns {
				names = append(names, n.(string))
			}
			if pattern, _ := inc["pattern"].(string); pattern != "" {
				re, err := regexp.Compile(pattern)
				matched := 0
				for f := range fd.fields {
					if err == nil && re.MatchString(f) {
						matched++
					}
				}
				if err != nil || matched == 0 {
					errs = append(errs, fmt.Errorf("panel %q keeps fields matching %q, which no field of %s does (%v)", str(p, "title"), pattern, qt, err))
				}
			}
			ex, _ := o["excludeByName"].(map[string]any)
			for n := range ex {
				names = append(names, n)
			}
			fs, _ := o["filters"].([]any)
			for _, f := range fs {
				names = append(names, str(f.(map[string]any), "fieldName"))
			}
		}
		sort.Strings(names)
		for _, n := range names {
			if !fd.fields[n] {
				errs = append(errs, fmt.Errorf("panel %q reads field %s, which %s does not answer", str(p, "title"), n, qt))
			}
		}
		if str(p, "type") == "table" {
			// Frames are picked by their fields' names, never by position: some answers
			// lack frames others have (FRAMES.md), which would shift the positions.
			if n, isNum := number(opts["frameIndex"]); !isNum || n != 0 {
				errs = append(errs, fmt.Errorf("panel %q shows frame %v of %s by position", str(p, "title"), opts["frameIndex"], qt))
			}
			if len(fd.frames) > 1 && !hasFieldFilter(p) {
				errs = append(errs, fmt.Errorf("panel %q shows %s, which answers frames %v, without picking one by its fields (filterFieldsByName)", str(p, "title"), qt, fd.frames))
			}
		}
	}
	return errs
}

func TestPanelsReadFieldsThePluginAnswers(t *testing.T) {
	frames := readFrames(t)
	for _, qt := range queryTypes() {
		if len(frames[qt].frames) == 0 {
			t.Errorf("FRAMES.md lists no frames for %s", qt)
		}
	}
	for _, d := range loadCommitted(t) {
		for _, err := range checkFrames(d.doc, frames) {
			t.Errorf("%s: %v", d.uid, err)
		}
	}
	var compliance map[string]any
	for _, d := range loadCommitted(t) {
		if d.uid == "statepipe-compliance" {
			compliance = d.doc
		}
	}
	bad := mutate(t, compliance, func(m map[string]any) {
		panels(m)[0]["options"].(map[string]any)["reduceOptions"].(map[string]any)["fields"] = "/^compliant_percent$/"
	})
	if len(checkFrames(bad, frames)) == 0 {
		t.Error("a stat on a field the plugin does not answer passed")
	}
	bad = mutate(t, compliance, func(m map[string]any) {
		for _, p := range panels(m) {
			if str(p, "type") == "table" {
				p["options"].(map[string]any)["frameIndex"] = 1
			}
		}
	})
	if len(checkFrames(bad, frames)) == 0 {
		t.Error("a table picking its frame by position passed")
	}
	bad = mutate(t, compliance, func(m map[string]any) {
		for _, p := range panels(m) {
			delete(p, "transformations")
		}
	})
	if len(checkFrames(bad, frames)) == 0 {
		t.Error("a table of a several-frame answer without a field filter passed")
	}
	bad = mutate(t, compliance, func(m map[string]any) {
		for _, p := range panels(m) {
			if str(p, "type") == "table" && hasFieldFilter(p) {
				p["transformations"].([]any)[0].(map[string]any)["options"] = map[string]any{"include": map[string]any{"names": []any{"update"}}}
			}
		}
	})
	if len(checkFrames(bad, frames)) == 0 {
		t.Error("a table keeping a field the plugin does not answer passed")
	}
}

// promSubstitutions stand in for the variables Grafana substitutes in PromQL.
var promSubstitutions = strings.NewReplacer("$metricsite", ".*", "$__rate_interval", "1m", "$__interval", "1m")

// promtoolCheck writes exprs as recording rules and asks promtool to check them: PromQL
// syntax, parsed by Prometheus itself.
func promtoolCheck(t *testing.T, exprs []string) error {
	t.Helper()
	var b strings.Builder
	b.WriteString("groups:\n  - name: dashboards\n    rules:\n")
	for i, e := range exprs {
		q, _ := json.Marshal(promSubstitutions.Replace(e))
		fmt.Fprintf(&b, "      - record: dashboard:expr_%d\n        expr: %s\n", i, q)
	}
	path := filepath.Join(t.TempDir(), "rules.yml")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("promtool", "check", "rules", path).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	return nil
}

// Every Prometheus panel's expression parses (promtool check rules; skipped without promtool).
func TestPrometheusExpressionsParse(t *testing.T) {
	if _, err := exec.LookPath("promtool"); err != nil {
		t.Skip("promtool not installed (apt-get install prometheus): PromQL syntax not checked")
	}
	var exprs []string
	for _, d := range loadCommitted(t) {
		for _, p := range panels(d.doc) {
			for _, tg := range targets(p) {
				if typ, _, _ := dsOf(tg); typ == "prometheus" {
					exprs = append(exprs, str(tg, "expr"))
				}
			}
		}
	}
	if err := promtoolCheck(t, exprs); err != nil {
		t.Error(err)
	}
	if promtoolCheck(t, []string{`sum by (site (statepipe_projector_lag_records)`}) == nil {
		t.Error("an expression with unbalanced parentheses passed")
	}
}

// emptyStrings lists the paths of empty strings outside the variables (whose empty values
// are meant: the report's default): an option the SDK left at its zero value ("orientation":
// "", a tooltip mode "") that Grafana may not read as intended.
func emptyStrings(doc map[string]any) []string {
	var out []string
	var walk func(v any, path string)
	walk = func(v any, path string) {
		switch x := v.(type) {
		case string:
			if x == "" {
				out = append(out, path)
			}
		case map[string]any:
			for k, e := range x {
				walk(e, path+"."+k)
			}
		case []any:
			for i, e := range x {
				walk(e, fmt.Sprintf("%s[%d]", path, i))
			}
		}
	}
	for k, v := range doc {
		if k != "templating" {
			walk(v, k)
		}
	}
	sort.Strings(out)
	return out
}

func TestNoOptionLeftEmpty(t *testing.T) {
	for _, d := range loadCommitted(t) {
		if e := emptyStrings(d.doc); len(e) > 0 {
			t.Errorf("%s: empty strings at %v", d.uid, e)
		}
	}
	bad := mutate(t, loadCommitted(t)[0].doc, func(m map[string]any) { panels(m)[0]["options"].(map[string]any)["orientation"] = "" })
	if len(emptyStrings(bad)) == 0 {
		t.Error("an empty orientation passed")
	}
}

// README.md ends with the table of panels the generator prints (go run . -panels).
func TestReadmeListsEveryPanel(t *testing.T) {
	raw, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	want, err := panelsMarkdown()
	if err != nil {
		t.Fatal(err)
	}
	const head = "## Panels and the queries behind them\n\n"
	i := strings.Index(string(raw), head)
	if i < 0 {
		t.Fatalf("README.md has no %q", head)
	}
	if got := string(raw[i+len(head):]); got != want {
		t.Errorf("README.md's table of panels is not what go run . -panels prints:\n%s", want)
	}
	// Every panel is in it.
	for _, d := range loadCommitted(t) {
		for _, p := range panels(d.doc) {
			if !strings.Contains(want, "\n| "+str(p, "title")+" | "+str(p, "type")+" | ") {
				t.Errorf("the table of panels misses %q of %s", str(p, "title"), d.uid)
			}
		}
	}
}

// maxSQL is --sql.max-concurrent's default: a site runs that many analyst queries at once and
// answers one more 503, and a dashboard's panels query together.
const maxSQL = 2

func sqlTargets(doc map[string]any) int {
	n := 0
	for _, p := range panels(doc) {
		for _, tg := range targets(p) {
			if typ, _, _ := dsOf(tg); typ == PluginID && str(tg, "queryType") == "sql" {
				n++
			}
		}
	}
	return n
}

func TestAtMostTwoSQLTargetsPerDashboard(t *testing.T) {
	for _, d := range loadCommitted(t) {
		if n := sqlTargets(d.doc); n > maxSQL {
			t.Errorf("%s has %d sql targets: more than the %d a site runs at once (--sql.max-concurrent), so some would be answered 503 as the dashboard loads", d.uid, n, maxSQL)
		}
	}
	bad := mutate(t, loadCommitted(t)[0].doc, func(m map[string]any) {
		sql := map[string]any{"refId": "A", "datasource": map[string]any{"type": PluginID, "uid": StatepipeUID}, "queryType": "sql", "rawSql": "SELECT 1"}
		m["panels"] = append(m["panels"].([]any), map[string]any{"targets": []any{sql, sql, sql}})
	})
	if sqlTargets(bad) <= maxSQL {
		t.Error("three more sql targets were not counted")
	}
}
