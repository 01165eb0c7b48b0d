package replicator

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/statepipe/statepipe/schema"
)

// Topology is a site hierarchy read from a topology file (examples/topology.yaml, format in
// schema/README.md): each site's code and parent, and in server mode each site's Kafka
// brokers and report URL. A Topology is valid by construction (ParseTopology, LoadTopology,
// NewTopology) and read-only: exactly one root, every other site leads up to it, codes unique.
type Topology struct {
	sites    []Site              // as in the file
	index    map[string]int      // code → position in sites
	children map[string][]string // code → its children's codes, sorted
	root     string
	server   bool
}

// Site is one site of a topology. The field names are the file's: sigs.k8s.io/yaml reads YAML
// through the json tags.
type Site struct {
	// Code is the site code (schema.ValidSiteCode): it names the site's topics and database.
	Code string `json:"code"`
	// Parent is the code of the site above; empty for the root, and only for it.
	Parent string `json:"parent,omitempty"`
	// Kafka is the site's own Kafka (server mode): a child's replicator produces into its
	// parent's. Nil in embedded mode.
	Kafka *SiteKafka `json:"kafka,omitempty"`
	// URL is the base URL of the site's report API (server mode), http or https: where a
	// central report's drill-down to machines answers. Empty in embedded mode.
	URL string `json:"url,omitempty"`
}

// SiteKafka is a site's Kafka in server mode.
type SiteKafka struct {
	// Brokers are the bootstrap brokers, host:port each.
	Brokers []string `json:"brokers"`
}

// The fields a topology file may hold, per level; anything else is an unknown field.
var (
	topologyFields = []string{"sites"}
	siteFields     = []string{"code", "parent", "kafka", "url"}
	kafkaFields    = []string{"brokers"}
)

// LoadTopology reads a topology file strictly (see ParseTopology).
func LoadTopology(path string) (*Topology, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot load topology: %w", err)
	}
	t, err := ParseTopology(b)
	if err != nil {
		return nil, fmt.Errorf("cannot load topology (%s): %w", path, err)
	}
	return t, nil
}

// ParseTopology parses a topology file (YAML or JSON) strictly and validates it. A rejection
// of the content is a *schema.FieldError naming the field as a path, such as
// "sites[2].parnet" (unknown field) or "sites[1].kafka.brokers[0]", with the site's code in
// the reason when the file gives one; a file that is not YAML, or repeats a key, is a plain
// error with the line.
//
// It does not use yaml.UnmarshalStrict as bench scenarios do, though it reads YAML with the
// same library: UnmarshalStrict's "unknown field" does not say which site holds it. It checks
// each level's keys itself, then decodes each site with unknown fields disallowed.
func ParseTopology(data []byte) (*Topology, error) {
	j, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, fmt.Errorf("cannot parse topology: %w", err)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(j, &top); err != nil {
		return nil, &schema.FieldError{Field: "sites", Reason: "required: a topology is a map with a list of sites (sites: [{code: CEN}, …])"}
	}
	if err := knownFields("", top, topologyFields, ""); err != nil {
		return nil, err
	}
	var raw []json.RawMessage
	if s, ok := top["sites"]; !ok || string(s) == "null" {
		return nil, &schema.FieldError{Field: "sites", Reason: "required: at least one site"}
	}
	if err := json.Unmarshal(top["sites"], &raw); err != nil {
		return nil, &schema.FieldError{Field: "sites", Reason: "must be a list of sites ({code, parent}, …)"}
	}
	if len(raw) == 0 {
		return nil, &schema.FieldError{Field: "sites", Reason: "required: at least one site"}
	}
	sites := make([]Site, len(raw))
	for i, r := range raw {
		if sites[i], err = decodeSite(fmt.Sprintf("sites[%d]", i), r); err != nil {
			return nil, err
		}
	}
	return NewTopology(sites)
}

// decodeSite decodes one entry of sites: strictly, naming the field and the site.
func decodeSite(path string, raw json.RawMessage) (Site, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		return Site{}, &schema.FieldError{Field: path, Reason: "must be a map: {code, parent}, and in server mode kafka and url"}
	}
	var code string
	_ = json.Unmarshal(m["code"], &code) // for the messages only; a wrong type is reported below
	site := ofSite(code)
	if err := knownFields(path+".", m, siteFields, site); err != nil {
		return Site{}, err
	}
	if k, ok := m["kafka"]; ok {
		var km map[string]json.RawMessage
		if json.Unmarshal(k, &km) == nil { // not a map: a type error below
			if err := knownFields(path+".kafka.", km, kafkaFields, site); err != nil {
				return Site{}, err
			}
		}
	}
	var s Site
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields() // already checked above; kept as the safety net
	if err := dec.Decode(&s); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return Site{}, &schema.FieldError{Field: path + "." + te.Field, Reason: typeReason(te) + site}
		}
		return Site{}, &schema.FieldError{Field: path, Reason: err.Error() + site}
	}
	return s, nil
}

// knownFields refuses the first key of m (in sorted order) that is not one of known.
func knownFields(prefix string, m map[string]json.RawMessage, known []string, site string) error {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !slices.Contains(known, k) {
			return &schema.FieldError{Field: prefix + k, Reason: "unknown field" + site + " (known: " + strings.Join(known, ", ") + ")"}
		}
	}
	return nil
}

// typeReason says what a field should have been. YAML reads unquoted 123, NO, YES, ON and OFF
// as a number or a boolean; a site code like that needs quotes.
func typeReason(te *json.UnmarshalTypeError) string {
	want := te.Type.String()
	switch te.Type.Kind() {
	case reflect.String:
		want = "a string"
	case reflect.Slice:
		want = "a list"
	case reflect.Struct, reflect.Pointer:
		want = "a map"
	}
	r := "must be " + want + ", not " + te.Value
	if te.Type.Kind() == reflect.String && (te.Value == "number" || te.Value == "bool") {
		r += " (quote it: YAML reads unquoted 123, NO, YES, ON, OFF as numbers or booleans)"
	}
	return r
}

// ofSite is the " (site X)" suffix of a message, empty without a code.
func ofSite(code string) string {
	if code == "" {
		return ""
	}
	return " (site " + code + ")"
}

// NewTopology validates sites (in file order) and builds their topology. Errors name the
// field as ParseTopology's do ("sites[1].parent"). The topology keeps its own copy of sites.
func NewTopology(sites []Site) (*Topology, error) {
	t := &Topology{index: make(map[string]int, len(sites)), children: map[string][]string{}}
	if len(sites) == 0 {
		return nil, &schema.FieldError{Field: "sites", Reason: "required: at least one site"}
	}
	for i, s := range sites {
		p := fmt.Sprintf("sites[%d].code", i)
		switch j, dup := t.index[s.Code]; {
		case s.Code == "":
			return nil, &schema.FieldError{Field: p, Reason: "required"}
		case !schema.ValidSiteCode(s.Code):
			return nil, &schema.FieldError{Field: p, Reason: fmt.Sprintf("%q is not a site code: %s", s.Code, schema.SiteCodeRule)}
		case dup:
			return nil, &schema.FieldError{Field: p, Reason: fmt.Sprintf("%s is already sites[%d]: codes must be unique", s.Code, j)}
		}
		t.index[s.Code] = i
		t.sites = append(t.sites, clone(s))
	}
	var roots []int
	for i, s := range sites {
		p := fmt.Sprintf("sites[%d].parent", i)
		if s.Parent == "" {
			roots = append(roots, i)
			continue
		}
		if s.Parent == s.Code {
			return nil, &schema.FieldError{Field: p, Reason: fmt.Sprintf("site %s cannot be its own parent", s.Code)}
		}
		if _, ok := t.index[s.Parent]; !ok {
			return nil, &schema.FieldError{Field: p, Reason: fmt.Sprintf("%q is not a site of the file (site %s)", s.Parent, s.Code)}
		}
		t.children[s.Parent] = append(t.children[s.Parent], s.Code)
	}
	if err := t.noCycle(); err != nil {
		return nil, err
	}
	switch len(roots) {
	case 0:
		panic("BUG: sites without a cycle and without a root") // every chain of parents ends, at a root
	case 1:
		t.root = sites[roots[0]].Code
	default:
		return nil, &schema.FieldError{Field: fmt.Sprintf("sites[%d].parent", roots[1]),
			Reason: fmt.Sprintf("required: site %s has no parent, and %s (sites[%d]) is already the root; exactly one site has none",
				sites[roots[1]].Code, sites[roots[0]].Code, roots[0])}
	}
	for _, c := range t.children {
		sort.Strings(c)
	}
	if err := t.checkServer(); err != nil {
		return nil, err
	}
	return t, nil
}

// noCycle refuses parents that go round in a circle, naming the cycle's first site in the
// file. It runs once every parent is known to be a site of the file.
func (t *Topology) noCycle() error {
	const (
		unseen = iota
		onPath
		done
	)
	state := make([]int, len(t.sites))
	for i := range t.sites {
		var path []int
		for j := i; j >= 0 && state[j] != done; {
			if state[j] == onPath { // j is on the path twice: path[from:] is a cycle
				cycle := path[slices.Index(path, j):]
				first := slices.Min(cycle)
				codes := []string{}
				for k := slices.Index(cycle, first); len(codes) <= len(cycle); k = (k + 1) % len(cycle) {
					codes = append(codes, t.sites[cycle[k]].Code)
				}
				return &schema.FieldError{Field: fmt.Sprintf("sites[%d].parent", first),
					Reason: "cycle " + strings.Join(codes, " → ") + ": every site must lead up to the root"}
			}
			state[j] = onPath
			path = append(path, j)
			j = t.parentIndex(j)
		}
		for _, j := range path {
			state[j] = done
		}
	}
	return nil
}

// parentIndex is the position of site i's parent, -1 for the root.
func (t *Topology) parentIndex(i int) int {
	if t.sites[i].Parent == "" {
		return -1
	}
	return t.index[t.sites[i].Parent]
}

// checkServer sets server mode when any site names kafka or url, and then requires both of
// every site.
func (t *Topology) checkServer() error {
	first := slices.IndexFunc(t.sites, func(s Site) bool { return s.Kafka != nil || s.URL != "" })
	if first < 0 {
		return nil
	}
	t.server = true
	mode := fmt.Sprintf("in server mode (sites[%d] %s names kafka or url) every site names kafka.brokers and url", first, t.sites[first].Code)
	for i, s := range t.sites {
		p := fmt.Sprintf("sites[%d]", i)
		switch {
		case s.Kafka == nil:
			return &schema.FieldError{Field: p + ".kafka", Reason: fmt.Sprintf("required: site %s has none, and %s", s.Code, mode)}
		case len(s.Kafka.Brokers) == 0:
			return &schema.FieldError{Field: p + ".kafka.brokers", Reason: fmt.Sprintf("required: site %s has none, and %s", s.Code, mode)}
		case s.URL == "":
			return &schema.FieldError{Field: p + ".url", Reason: fmt.Sprintf("required: site %s has none, and %s", s.Code, mode)}
		}
		for j, b := range s.Kafka.Brokers {
			if !hostPort(b) {
				return &schema.FieldError{Field: fmt.Sprintf("%s.kafka.brokers[%d]", p, j), Reason: fmt.Sprintf("%q is not host:port (site %s)", b, s.Code)}
			}
		}
		if why := checkURL(s.URL); why != "" {
			return &schema.FieldError{Field: p + ".url", Reason: fmt.Sprintf("%q %s (site %s)", s.URL, why, s.Code)}
		}
	}
	return nil
}

// hostPort reports whether b is host:port with a host and a port 1-65535 ("[::1]:9092" too).
func hostPort(b string) bool {
	host, port, err := net.SplitHostPort(b)
	if err != nil || host == "" || strings.ContainsAny(host, " \t/") {
		return false
	}
	n, err := strconv.Atoi(port)
	return err == nil && n >= 1 && n <= 65535
}

// checkURL says what is wrong with a site's report URL, "" when nothing: it must be an absolute
// http or https URL with a host, and may have a path (behind a proxy) but no query, fragment or
// credentials (report paths and tokens are added to it).
func checkURL(s string) string {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return "is not a URL"
	case u.Scheme != "http" && u.Scheme != "https":
		return "is not an http or https URL"
	case u.Host == "":
		return "has no host"
	case u.RawQuery != "" || u.Fragment != "" || u.User != nil:
		return "must not have a query, fragment or credentials"
	}
	return ""
}

// clone copies a site, so that neither the caller's copy nor the topology's changes the other.
func clone(s Site) Site {
	if s.Kafka != nil {
		s.Kafka = &SiteKafka{Brokers: slices.Clone(s.Kafka.Brokers)}
	}
	return s
}

// Server reports whether the topology is in server mode: every site names its Kafka brokers
// and report URL, and runs its own roles. Otherwise (embedded) one process hosts every site.
func (t *Topology) Server() bool { return t.server }

// Sites returns the sites in the file's order.
func (t *Topology) Sites() []Site {
	out := make([]Site, len(t.sites))
	for i, s := range t.sites {
		out[i] = clone(s)
	}
	return out
}

// Site returns the site with the code, and whether there is one.
func (t *Topology) Site(code string) (Site, bool) {
	i, ok := t.index[code]
	if !ok {
		return Site{}, false
	}
	return clone(t.sites[i]), true
}

// Root returns the code of the root, the one site without a parent (the central site).
func (t *Topology) Root() string { return t.root }

// Parent returns the code of the site's parent: "" for the root, and for a code not in the
// topology.
func (t *Topology) Parent(code string) string {
	if i, ok := t.index[code]; ok {
		return t.sites[i].Parent
	}
	return ""
}

// Children returns the codes of the sites directly below the site, sorted; nil for a leaf or
// a code not in the topology.
func (t *Topology) Children(code string) []string { return slices.Clone(t.children[code]) }

// Descendants returns the codes of every site below the site (not the site itself) depth
// first, each site's children in sorted order: CEN's in the example are P01, S01, P02. A site
// always comes after its ancestors. Nil for a leaf or a code not in the topology.
func (t *Topology) Descendants(code string) []string {
	var out []string
	var walk func(string)
	walk = func(c string) {
		for _, k := range t.children[c] {
			out = append(out, k)
			walk(k)
		}
	}
	walk(code)
	return out
}

// Ancestors returns the codes of the sites above the site, its parent first and the root last;
// nil for the root and for a code not in the topology.
func (t *Topology) Ancestors(code string) []string {
	var out []string
	for p := t.Parent(code); p != ""; p = t.Parent(p) {
		out = append(out, p)
	}
	return out
}

// Depth returns how far below the root the site is: 0 for the root, 1 for its children; -1
// for a code not in the topology.
func (t *Topology) Depth(code string) int {
	if _, ok := t.index[code]; !ok {
		return -1
	}
	return len(t.Ancestors(code))
}
