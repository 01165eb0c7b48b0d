package report

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Definition is one named report: its parameters, how it runs and how it prints. The HTTP API
// (GET /v1/reports/NAME), the CLI (`statepipe report NAME`, its flags and help) and the tables
// people read are all derived from Reports: adding a report is a file (its computation and its
// table) and an entry there.
type Definition struct {
	Name    string
	Summary string  // one line, for help
	Params  []Param // in the order they are judged and listed
	// Run computes the report from its parameters, already judged against Params (a
	// required one is present, each within its bounds).
	Run func(ctx context.Context, env Env, a Args) (any, error)
	// Table prints the report's JSON answer for people: a header naming what it is about,
	// then a table.
	Table func(w io.Writer, answer []byte) error
}

// Env is what a report runs against: a site's store.
type Env struct {
	Store    Querier
	Database string // the site's database
	Site     string
	// ExpiredCleanup is how long an expired update stays in reports (0: 7 days).
	ExpiredCleanup time.Duration
	// Tree is the part of a site hierarchy the answer covers; nil for a standalone site.
	Tree *Tree
	// Watermark returns the site's own watermark and records not folded; nil: unknown.
	Watermark func() (time.Time, int64)
	// Uplink returns the site's link to its parent as its replicator sees it; nil: none.
	Uplink func() Uplink
	// Pacing returns the site's pacing controller; nil: none in this process.
	Pacing func() *Pacing
}

// Kind is the kind of value a parameter takes; it decides how the value is judged.
type Kind int

const (
	KindID       Kind = iota // one id: at most MaxParamBytes
	KindIDs                  // comma-separated ids: at most MaxReportIDs, each at most MaxParamBytes
	KindInt                  // an integer from Param.Min to Param.Max
	KindTime                 // an RFC 3339 time between 1970 and 2261
	KindDuration             // a duration of at least 1ms (15m, 1h, 24h)
	KindWord                 // a short word (at most 64 bytes)
)

// String names the kind as help shows it.
func (k Kind) String() string {
	switch k {
	case KindID:
		return "ID"
	case KindIDs:
		return "ID,ID,…"
	case KindInt:
		return "N"
	case KindTime:
		return "RFC3339"
	case KindDuration:
		return "DURATION"
	case KindWord:
		return "WORD"
	}
	return "?"
}

// Param is one query parameter of a report (?name=value), and the flag --name of
// `statepipe report`. Every value is bounded and checked before a query runs: text that is not
// valid UTF-8, holds control characters or is longer than its kind allows, a number or time
// out of range, a missing required parameter, a parameter the report does not take — each is
// a 400 naming the parameter.
type Param struct {
	Name     string
	Kind     Kind
	Required bool
	Help     string // what it is, e.g. "update list id"
	Min, Max int    // KindInt: the range
	Default  int    // KindInt: the value when absent (0: none); help shows it
}

// Common parameters every report takes besides its own (the API judges them first).
var commonParams = []Param{{Name: "site", Kind: KindID, Help: "site code: in a site hierarchy, narrow to this site and the sites below it (default: the site the URL serves)"},
	{Name: "wait", Kind: KindWord, Help: "true: answer once every site counted (whose link is not failed) has folded everything it accepted before the request, at most 30 s"}}

// CommonParams returns the parameters every report takes besides its own.
func CommonParams() []Param { return append([]Param(nil), commonParams...) }

// Reports returns the named reports, in the order help lists them.
func Reports() []Definition {
	scope := Param{Name: "collection", Kind: KindID, Help: "collection id: count its members (default: every client of the site)"}
	list := Param{Name: "list", Kind: KindID, Help: "update list id"}
	updates := Param{Name: "updates", Kind: KindIDs, Help: "comma-separated update ids, instead of list (each must be in the catalog or reported by a client)"}
	return []Definition{
		{
			Name:    "compliance",
			Summary: "per update of a list (or ids, or the catalog; of a vendor, a month or year of release): installed, required, not required, unknown; per computer: compliant or not",
			Params: []Param{
				{Name: "list", Kind: KindID, Help: "update list id (default: every catalog update)"}, updates, scope,
				{Name: "source", Kind: KindWord, Help: "aggregates (default: the projector's counts) or scan (recount the live states)"},
				{Name: "not_deployed", Kind: KindWord, Help: "true: only the updates no deployment holds and some client in scope requires (ConfigMgr's Management 2)"},
				{Name: "vendor", Kind: KindID, Help: "only the updates of this catalog vendor (exactly as imported, e.g. Microsoft)"},
				{Name: "released", Kind: KindWord, Help: "only the updates the vendor released in this month (2026-11) or year (2026), UTC"},
				{Name: "by", Kind: KindWord, Help: "vendor, month or year: also sum the per-update counts per vendor, or per month or year of release (ConfigMgr's Compliance 4)"},
			},
			Run: func(ctx context.Context, env Env, a Args) (any, error) {
				p := ComplianceParams{List: a.ID("list"), Updates: a.IDs("updates"), Scope: Scope{Collection: a.ID("collection"), Tree: env.Tree}, ExpiredCleanup: env.ExpiredCleanup,
					Vendor: a.ID("vendor")}
				if r := a.Word("released"); r != "" {
					var err error
					if p.Released, err = ParseReleasedPeriod(r); err != nil {
						return nil, err
					}
				}
				switch by := a.Word("by"); by {
				case "", GroupVendor, GroupMonth, GroupYear:
					p.By = by
				default:
					return nil, &ParamError{Field: "by", Message: fmt.Sprintf("by %q: want vendor, month or year", by)}
				}
				switch nd := a.Word("not_deployed"); nd {
				case "", "false":
				case "true":
					p.NotDeployed = true
				default:
					return nil, &ParamError{Field: "not_deployed", Message: fmt.Sprintf("not_deployed %q: want true or false", nd)}
				}
				switch src := a.Word("source"); src {
				case "", "aggregates":
				case "scan":
					p.Scan = true
				default:
					return nil, &ParamError{Field: "source", Message: fmt.Sprintf("source %q: want aggregates (default) or scan", src)}
				}
				if p.List != "" && len(p.Updates) > 0 {
					return nil, &ParamError{Field: "updates", Message: "give list or updates, not both"}
				}
				return ComplianceReport(ctx, env.Store, env.Database, env.Site, p)
			},
			Table: table(printCompliance),
		},
		{
			Name:    "machines",
			Summary: "drill-down: the machines of one cell of compliance, update, deployment, errors or scan (paged)",
			Params: []Param{
				{Name: "state", Kind: KindWord, Help: "the cell: installed, required, not_required or unknown (with update); compliant, non_compliant or unknown (with list or updates); a state number (with deployment, or a scan state 0-6 with topic scan); none with error"},
				{Name: "update", Kind: KindID, Help: "update id: its machines in state; with deployment, the deployment's targeted machines in this update's enforcement (402) state"},
				list, updates,
				{Name: "deployment", Kind: KindID, Help: "deployment id: its targeted machines in enforcement state (a number)"},
				{Name: "topic", Kind: KindWord, Help: "with deployment: enforcement (301, the default), evaluation (302) or compliance (300); scan: with state, the machines whose latest scan is in it, with error, those whose scan carries it"},
				{Name: "error", Kind: KindWord, Help: "an HRESULT (0x80070643, or its decimal): the machines whose live update or deployment enforcement state carries it (with deployment: over its updates and itself; with topic scan: their scans)"},
				scope,
				{Name: "after", Kind: KindID, Help: "the page after this client id (the previous answer's next)"},
				{Name: "limit", Kind: KindInt, Min: 1, Max: MaxMachinesPage, Default: DefaultMachinesPage, Help: fmt.Sprintf("machines per page (1–%d)", MaxMachinesPage)},
			},
			Run: func(ctx context.Context, env Env, a Args) (any, error) {
				limit, _ := a.Int("limit")
				return MachinesReport(ctx, env.Store, env.Database, env.Site, MachinesParams{
					State: a.Word("state"), Update: a.ID("update"), List: a.ID("list"), Updates: a.IDs("updates"),
					Deployment: a.ID("deployment"), Topic: a.Word("topic"), Error: a.Word("error"), Scope: Scope{Collection: a.ID("collection"), Tree: env.Tree},
					After: a.ID("after"), Limit: limit, ExpiredCleanup: env.ExpiredCleanup})
			},
			Table: table(printMachines),
		},
		{
			Name:    "deployment",
			Summary: "the clients a deployment targets, by enforcement, evaluation and compliance state, and per update by enforcement state",
			Params: []Param{
				{Name: "deployment", Kind: KindID, Required: true, Help: "deployment id"},
				{Name: "state", Kind: KindInt, Min: 0, Max: 1 << 20, Help: "also list the machines in this enforcement state (see machines for pages; in a hierarchy, this site's own, and over sites below use machines)"},
			},
			Run: func(ctx context.Context, env Env, a Args) (any, error) {
				p := DeploymentParams{Deployment: a.ID("deployment"), Tree: env.Tree}
				if n, ok := a.Int("state"); ok {
					p.State = &n
				}
				return DeploymentReport(ctx, env.Store, env.Database, env.Site, p)
			},
			Table: table(printDeployment),
		},
		{
			Name:    "deployments",
			Summary: "the deployments of an update list, an update, a collection or a machine (or all), with their updates, target and schedule",
			Params: []Param{
				{Name: "deployment", Kind: KindID, Help: "this deployment only, its updates listed with their titles"},
				{Name: "list", Kind: KindID, Help: "update list id: the deployments holding any of its updates"},
				{Name: "update", Kind: KindID, Help: "update id: the deployments holding it"},
				{Name: "collection", Kind: KindID, Help: "collection id: the deployments targeting it"},
				{Name: "client", Kind: KindID, Help: "client id: the deployments whose target collection holds it"},
			},
			Run: func(ctx context.Context, env Env, a Args) (any, error) {
				return DeploymentsReport(ctx, env.Store, env.Database, env.Site, DeploymentsParams{Deployment: a.ID("deployment"),
					List: a.ID("list"), Update: a.ID("update"), Collection: a.ID("collection"), Client: a.ID("client")})
			},
			Table: table(printDeployments),
		},
		{
			Name:    "errors",
			Summary: "HRESULTs of live enforcement (or scan) states, stack-ranked by machines, with their updates and deployments (or update sources)",
			Params: []Param{{Name: "topic", Kind: KindWord, Help: "enforcement (default: update 402 and deployment 301 enforcement) or scan (501: scan errors per update source)"},
				{Name: "deployment", Kind: KindID, Help: "deployment id: its collection, its updates and itself only (enforcement)"}, scope},
			Run: func(ctx context.Context, env Env, a Args) (any, error) {
				return ErrorsReport(ctx, env.Store, env.Database, env.Site, ErrorsParams{Topic: a.Word("topic"), Deployment: a.ID("deployment"),
					Scope: Scope{Collection: a.ID("collection"), Tree: env.Tree}})
			},
			Table: table(printErrors),
		},
		{
			Name:    "scan",
			Summary: "clients by the state of their latest scan, and those without a recent successful one",
			Params: []Param{scope,
				{Name: "days", Kind: KindInt, Min: 1, Max: 36500, Default: DefaultStaleDays, Help: "stale: no successful scan in this many days"}},
			Run: func(ctx context.Context, env Env, a Args) (any, error) {
				days, _ := a.Int("days")
				return ScanReport(ctx, env.Store, env.Database, env.Site, ScanParams{Scope: Scope{Collection: a.ID("collection"), Tree: env.Tree}, Days: days})
			},
			Table: table(printScan),
		},
		{
			Name:    "computer",
			Summary: "one machine against an update list, ids or a deployment: each update's state and enforcement; with a deployment, its 301/302/300 states for it",
			Params: []Param{{Name: "client", Kind: KindID, Required: true, Help: "client id"}, list, updates,
				{Name: "deployment", Kind: KindID, Help: "deployment id, instead of list or updates: its updates, and whether it targets the machine with the machine's enforcement, evaluation and compliance states for it"}},
			Run: func(ctx context.Context, env Env, a Args) (any, error) {
				return ComputerReport(ctx, env.Store, env.Database, env.Site, ComputerParams{Client: a.ID("client"), List: a.ID("list"),
					Updates: a.IDs("updates"), Deployment: a.ID("deployment"), ExpiredCleanup: env.ExpiredCleanup, Tree: env.Tree})
			},
			Table: table(printComputer),
		},
		{
			Name:    "update",
			Summary: "one update across the site or a collection: compliance and enforcement states",
			Params:  []Param{{Name: "update", Kind: KindID, Required: true, Help: "update id"}, scope},
			Run: func(ctx context.Context, env Env, a Args) (any, error) {
				return UpdateReport(ctx, env.Store, env.Database, env.Site, UpdateParams{Update: a.ID("update"), Scope: Scope{Collection: a.ID("collection"), Tree: env.Tree}})
			},
			Table: table(printUpdate),
		},
		{
			Name:    "backlog",
			Summary: "per site: records accepted and not folded; per link up here: freshness, backlog and state",
			Run: func(ctx context.Context, env Env, a Args) (any, error) {
				return BacklogReport(env.Site, env.Tree, env.Watermark, env.Uplink, env.Pacing), nil
			},
			Table: table(printBacklog),
		},
		{
			Name:    "trend",
			Summary: "compliance with an update list (or ids) over time, from the message history",
			Params: []Param{list, updates, scope,
				{Name: "from", Kind: KindTime, Help: "first point (default: to − 7 days)"},
				{Name: "to", Kind: KindTime, Help: "last point (default: now)"},
				{Name: "step", Kind: KindDuration, Help: "between points (default: by range, at most 32 points: 1h for a day, 24h for 7 or 30 days, whole weeks beyond)"}},
			Run: func(ctx context.Context, env Env, a Args) (any, error) {
				return TrendReport(ctx, env.Store, env.Database, env.Site, TrendParams{List: a.ID("list"), Updates: a.IDs("updates"),
					Scope: Scope{Collection: a.ID("collection")}, From: a.Time("from"), To: a.Time("to"), Step: a.Duration("step"),
					ExpiredCleanup: env.ExpiredCleanup, Tree: env.Tree})
			},
			Table: table(printTrend),
		},
	}
}

// Lookup returns the named report.
func Lookup(name string) (Definition, bool) {
	for _, d := range Reports() {
		if d.Name == name {
			return d, true
		}
	}
	return Definition{}, false
}

// ReportNames lists the reports GET /v1/reports/NAME serves.
func ReportNames() []string {
	var names []string
	for _, d := range Reports() {
		names = append(names, d.Name)
	}
	return names
}

// Bounds of report parameters. Every parameter is judged before any query runs, and a bad
// one is answered 400 naming it.
const (
	// MaxParamBytes bounds an id (a list, collection, deployment, client or update id, and
	// each id of updates=): what ingest and the reference imports accept
	// (schema.DefaultLimits.MaxIDBytes).
	MaxParamBytes = 128
	// MaxReportIDs bounds the ids of updates=. Larger sets are update lists: import one
	// (statepipe lists apply) and pass list=. 20,000 ids once made a query the engine refused
	// ("Max query size exceeded", answered 503).
	MaxReportIDs = 1000
)

// Bounds of trend's from and to: the times its queries can express.
var (
	minReportTime = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)
	maxReportTime = time.Date(2261, 12, 31, 23, 59, 59, 0, time.UTC)
)

// Args are a report's parameters, judged against its Params: each getter returns the value
// given, or the zero value when it was not.
type Args struct{ values map[string]any }

// ID returns a KindID parameter.
func (a Args) ID(name string) string { s, _ := a.values[name].(string); return s }

// Word returns a KindWord parameter.
func (a Args) Word(name string) string { return a.ID(name) }

// IDs returns a KindIDs parameter, without empty items.
func (a Args) IDs(name string) []string { ids, _ := a.values[name].([]string); return ids }

// Int returns a KindInt parameter (its Default when absent) and whether it has a value.
func (a Args) Int(name string) (int, bool) { n, ok := a.values[name].(int); return n, ok }

// Time returns a KindTime parameter (the zero time when absent).
func (a Args) Time(name string) time.Time { t, _ := a.values[name].(time.Time); return t }

// Duration returns a KindDuration parameter (0 when absent).
func (a Args) Duration(name string) time.Duration { d, _ := a.values[name].(time.Duration); return d }

// ParseQuery judges a request's query parameters against the report's: a parameter it does
// not take (nor one of CommonParams) is a *ParamError naming it — a misspelt or misplaced
// parameter (errors?collection=C) would otherwise be answered as if it were not there —,
// then ParseArgs judges the report's own.
func (d Definition) ParseQuery(qs url.Values) (Args, error) {
	for _, name := range slices.Sorted(maps.Keys(qs)) {
		if slices.ContainsFunc(d.Params, func(p Param) bool { return p.Name == name }) ||
			slices.ContainsFunc(commonParams, func(p Param) bool { return p.Name == name }) {
			continue
		}
		shown := name
		if len(shown) > 64 {
			shown = strings.ToValidUTF8(shown[:64], "") + "…"
		}
		shown = CellText(shown)
		var takes []string
		for _, p := range d.Params {
			takes = append(takes, p.Name)
		}
		return Args{}, &ParamError{Field: shown, Message: fmt.Sprintf("report %s takes no parameter %s (it takes: %s)", d.Name, shown, strings.Join(takes, ", "))}
	}
	return ParseArgs(d.Params, qs)
}

// ParseArgs judges query parameters against params, in order: the first problem is a
// *ParamError naming the parameter. Parameters params does not name are ignored here
// (Definition.ParseQuery refuses them).
func ParseArgs(params []Param, qs url.Values) (Args, error) {
	a := Args{values: map[string]any{}}
	pr := &paramReader{qs: qs}
	for _, p := range params {
		var v any
		switch p.Kind {
		case KindID:
			if s := pr.raw(p.Name, MaxParamBytes); s != "" {
				v = s
			}
		case KindWord:
			if s := pr.raw(p.Name, 64); s != "" {
				v = s
			}
		case KindIDs:
			if ids := pr.ids(p.Name); len(ids) > 0 {
				v = ids
			}
		case KindInt:
			if qs.Has(p.Name) {
				v = pr.int(p.Name, p.Min, p.Max)
			} else if p.Default != 0 {
				v = p.Default
			}
		case KindTime:
			if t := pr.time(p.Name); !t.IsZero() {
				v = t
			}
		case KindDuration:
			if d := pr.duration(p.Name); d != 0 {
				v = d
			}
		default:
			panic(fmt.Sprintf("BUG: parameter %s of kind %d", p.Name, p.Kind))
		}
		if pr.err != nil {
			return Args{}, pr.err
		}
		if v == nil && p.Required {
			return Args{}, &ParamError{Field: p.Name, Message: fmt.Sprintf("%s (%s) is required", p.Name, p.Help)}
		}
		if v != nil {
			a.values[p.Name] = v
		}
	}
	return a, nil
}

// paramReader reads a report's query parameters, keeping the first problem as a ParamError
// naming the parameter; reads after it return zero values.
type paramReader struct {
	qs  url.Values
	err error
}

func (p *paramReader) bad(name, msg string) {
	if p.err == nil {
		p.err = &ParamError{Field: name, Message: msg}
	}
}

// raw returns the parameter's value, refusing more than one value (which one counts would be
// a guess), invalid UTF-8 and control characters.
func (p *paramReader) raw(name string, maxBytes int) string {
	vs := p.qs[name]
	switch {
	case p.err != nil || len(vs) == 0:
		return ""
	case len(vs) > 1:
		p.bad(name, fmt.Sprintf("%s is given %d times; give it once", name, len(vs)))
		return ""
	}
	v := vs[0]
	if len(v) > maxBytes {
		p.bad(name, fmt.Sprintf("%s is %d bytes long; at most %d", name, len(v), maxBytes))
		return ""
	}
	if !utf8.ValidString(v) {
		p.bad(name, name+" is not valid UTF-8")
		return ""
	}
	for i, c := range v {
		if c < 0x20 || (c >= 0x7f && c < 0xa0) {
			p.bad(name, fmt.Sprintf("%s holds the control character U+%04X at byte %d", name, c, i))
			return ""
		}
	}
	return v
}

// ids reads comma-separated ids, dropping empty items: at most MaxReportIDs, each at most
// MaxParamBytes.
func (p *paramReader) ids(name string) []string {
	if v := p.qs.Get(name); len(v) > MaxReportIDs*(MaxParamBytes+1) {
		p.bad(name, fmt.Sprintf("%s is %d bytes long: more than %d ids of at most %d bytes; import an update list (statepipe lists apply) and pass list= instead", name, len(v), MaxReportIDs, MaxParamBytes))
		return nil
	}
	s := p.raw(name, MaxReportIDs*(MaxParamBytes+1))
	if s == "" {
		return nil
	}
	var ids []string
	for i, id := range strings.Split(s, ",") {
		id = strings.TrimSpace(id)
		switch {
		case id == "":
			continue
		case len(id) > MaxParamBytes:
			p.bad(name, fmt.Sprintf("id %d of %s is %d bytes long; at most %d", i+1, name, len(id), MaxParamBytes))
			return nil
		case len(ids) == MaxReportIDs:
			p.bad(name, fmt.Sprintf("%s holds more than %d ids; import an update list (statepipe lists apply) and pass list= instead", name, MaxReportIDs))
			return nil
		}
		ids = append(ids, id)
	}
	return ids
}

// int reads an integer in [lo, hi].
func (p *paramReader) int(name string, lo, hi int) int {
	s := p.raw(name, 64)
	if p.err != nil {
		return 0
	}
	n, err := strconv.Atoi(s)
	switch {
	case err != nil:
		p.bad(name, fmt.Sprintf("%s %q is not an integer", name, s))
	case n < lo || n > hi:
		p.bad(name, fmt.Sprintf("%s must be from %d to %d (got %d)", name, lo, hi, n))
	}
	return n
}

// time reads an RFC 3339 time between 1970 and 2261; absent gives the zero time (the
// report's default).
func (p *paramReader) time(name string) time.Time {
	s := p.raw(name, 64)
	if s == "" || p.err != nil {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339, s)
	switch {
	case err != nil:
		p.bad(name, fmt.Sprintf("%s %q is not an RFC 3339 time (e.g. 2026-11-25T21:00:00Z)", name, s))
	case t.Before(minReportTime) || t.After(maxReportTime):
		p.bad(name, fmt.Sprintf("%s %q is outside 1970 to 2261", name, s))
	}
	return t
}

// duration reads a duration of at least 1ms; absent gives 0 (the report's default).
func (p *paramReader) duration(name string) time.Duration {
	s := p.raw(name, 64)
	if s == "" || p.err != nil {
		return 0
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < time.Millisecond {
		p.bad(name, fmt.Sprintf("%s %q is not a duration of at least 1ms (e.g. 15m, 1h, 24h)", name, s))
	}
	return d
}
