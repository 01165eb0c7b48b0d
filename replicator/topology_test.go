package replicator

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/statepipe/statepipe/schema"
)

const exampleFile = "../examples/topology.yaml"

func TestExampleTopology(t *testing.T) {
	top, err := LoadTopology(exampleFile)
	if err != nil {
		t.Fatal(err)
	}
	if top.Root() != "CEN" || top.Server() {
		t.Fatalf("root %q server %v, want CEN embedded", top.Root(), top.Server())
	}
	var codes []string
	for _, s := range top.Sites() {
		codes = append(codes, s.Code+"<"+s.Parent)
	}
	eq(t, "sites", codes, []string{"CEN<", "P01<CEN", "P02<CEN", "S01<P01"})
	eq(t, "children CEN", top.Children("CEN"), []string{"P01", "P02"})
	eq(t, "children P01", top.Children("P01"), []string{"S01"})
	eq(t, "children S01", top.Children("S01"), nil)
	eq(t, "children XXX", top.Children("XXX"), nil)
	eq(t, "descendants CEN", top.Descendants("CEN"), []string{"P01", "S01", "P02"})
	eq(t, "descendants P01", top.Descendants("P01"), []string{"S01"})
	eq(t, "descendants P02", top.Descendants("P02"), nil)
	eq(t, "ancestors S01", top.Ancestors("S01"), []string{"P01", "CEN"})
	eq(t, "ancestors P02", top.Ancestors("P02"), []string{"CEN"})
	eq(t, "ancestors CEN", top.Ancestors("CEN"), nil)
	eq(t, "ancestors XXX", top.Ancestors("XXX"), nil)
	for code, want := range map[string]int{"CEN": 0, "P01": 1, "P02": 1, "S01": 2, "XXX": -1, "": -1} {
		if got := top.Depth(code); got != want {
			t.Errorf("depth %q = %d, want %d", code, got, want)
		}
	}
	for code, want := range map[string]string{"CEN": "", "P01": "CEN", "S01": "P01", "XXX": ""} {
		if got := top.Parent(code); got != want {
			t.Errorf("parent %q = %q, want %q", code, got, want)
		}
	}
	if s, ok := top.Site("S01"); !ok || s.Code != "S01" || s.Parent != "P01" || s.Kafka != nil || s.URL != "" {
		t.Errorf("site S01 = %+v, %v", s, ok)
	}
	if _, ok := top.Site("S02"); ok {
		t.Error("site S02 found")
	}
}

// The server-mode lines the example shows commented out parse, and are refused for one site
// alone: server mode names them for every site.
func TestExampleServerComment(t *testing.T) {
	b, err := os.ReadFile(exampleFile)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(b), "    # ", "    ")
	if text == string(b) {
		t.Fatal("the example shows no commented-out server mode")
	}
	_, err = ParseTopology([]byte(text))
	wantField(t, err, "sites[0].kafka", "site CEN has none", "sites[1] P01 names kafka or url")
}

// The inline form that DESIGN's contract gives, and the order of Descendants when the file's
// order is not the sorted one.
func TestTopologyRelations(t *testing.T) {
	top, err := ParseTopology([]byte(`sites: [{code: CEN}, {code: P02, parent: CEN}, {code: P01, parent: CEN},
  {code: S02, parent: P01}, {code: S01, parent: P01}, {code: T01, parent: S02}]`))
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "children P01", top.Children("P01"), []string{"S01", "S02"})
	eq(t, "descendants CEN", top.Descendants("CEN"), []string{"P01", "S01", "S02", "T01", "P02"})
	eq(t, "ancestors T01", top.Ancestors("T01"), []string{"S02", "P01", "CEN"})
	if d := top.Depth("T01"); d != 3 {
		t.Errorf("depth T01 = %d, want 3", d)
	}
	// What callers get back are copies.
	c := top.Children("P01")
	c[0] = "ZZZ"
	eq(t, "children P01 after the caller changed its copy", top.Children("P01"), []string{"S01", "S02"})
}

func TestServerTopology(t *testing.T) {
	top, err := ParseTopology([]byte(`
sites:
  - code: CEN
    kafka: {brokers: ["kafka-cen:9092"]}
    url: https://cen.example.com
  - code: P01
    parent: CEN
    kafka:
      brokers: [kafka-p01-1:9092, "[::1]:9093", 10.0.0.1:9094]
    url: http://p01.example.com:8080/statepipe
`))
	if err != nil {
		t.Fatal(err)
	}
	if !top.Server() {
		t.Fatal("not server mode")
	}
	s, _ := top.Site("P01")
	eq(t, "P01 brokers", s.Kafka.Brokers, []string{"kafka-p01-1:9092", "[::1]:9093", "10.0.0.1:9094"})
	if s.URL != "http://p01.example.com:8080/statepipe" {
		t.Errorf("P01 url %q", s.URL)
	}
	s.Kafka.Brokers[0] = "changed:1"
	if s, _ := top.Site("P01"); s.Kafka.Brokers[0] != "kafka-p01-1:9092" {
		t.Errorf("changing a returned site changed the topology: %v", s.Kafka.Brokers)
	}
}

func TestNewTopologyKeepsItsCopy(t *testing.T) {
	sites := []Site{
		{Code: "CEN", Kafka: &SiteKafka{Brokers: []string{"k:9092"}}, URL: "http://cen"},
		{Code: "P01", Parent: "CEN", Kafka: &SiteKafka{Brokers: []string{"k1:9092"}}, URL: "http://p01"},
	}
	top, err := NewTopology(sites)
	if err != nil {
		t.Fatal(err)
	}
	sites[1].Parent, sites[1].Kafka.Brokers[0] = "", "x:1"
	if s, _ := top.Site("P01"); s.Parent != "CEN" || s.Kafka.Brokers[0] != "k1:9092" {
		t.Errorf("changing the caller's sites changed the topology: %+v %v", s, s.Kafka.Brokers)
	}
	if _, err := NewTopology(nil); err == nil {
		t.Error("no sites accepted")
	}
}

// Every rejection names its field; the reason says why, with the site where it has a code.
func TestTopologyRejects(t *testing.T) {
	const head = "sites:\n  - code: CEN\n"
	server := func(extra string) string {
		return "sites:\n  - {code: CEN, kafka: {brokers: [k:9092]}, url: http://cen}\n" + extra
	}
	for _, c := range []struct {
		name, file, field string
		reason            []string
	}{
		{"unknown top-level field", head + "site: P01\n", "site", []string{"unknown field", "known: sites"}},
		{"unknown site field", head + "  - code: P01\n    parent: CEN\n  - code: S01\n    parnet: P01\n", "sites[2].parnet", []string{"unknown field (site S01)"}},
		{"unknown site field without a code", head + "  - parent: CEN\n    cod: P01\n", "sites[1].cod", []string{"unknown field (known: code, parent, kafka, url)"}},
		{"unknown kafka field", "sites:\n  - code: CEN\n    kafka: {broker: [k:9092]}\n", "sites[0].kafka.broker", []string{"unknown field (site CEN)"}},
		{"empty file", "", "sites", []string{"required"}},
		{"no sites", "{}\n", "sites", []string{"at least one site"}},
		{"empty sites", "sites: []\n", "sites", []string{"at least one site"}},
		{"sites not a list", "sites: CEN\n", "sites", []string{"must be a list"}},
		{"not a map", "- code: CEN\n", "sites", []string{"a map with a list of sites"}},
		{"site not a map", "sites: [CEN]\n", "sites[0]", []string{"must be a map"}},
		{"site null", "sites:\n  -\n", "sites[0]", []string{"must be a map"}},
		{"code missing", head + "  - parent: CEN\n", "sites[1].code", []string{"required"}},
		{"code lower case", head + "  - {code: p01, parent: CEN}\n", "sites[1].code", []string{`"p01" is not a site code`, "A-Z, 0-9"}},
		{"code too long", head + "  - {code: ABCDEFGHIJKLMNOPQ, parent: CEN}\n", "sites[1].code", []string{"not a site code"}},
		{"code with a dash", head + "  - {code: P-1, parent: CEN}\n", "sites[1].code", []string{"not a site code"}},
		{"code a number", "sites:\n  - code: 123\n", "sites[0].code", []string{"must be a string, not number", "quote it"}},
		{"code a YAML boolean", head + "  - {code: NO, parent: CEN}\n", "sites[1].code", []string{"must be a string, not bool", "quote it"}},
		{"code repeated", head + "  - {code: P01, parent: CEN}\n  - {code: P01, parent: CEN}\n", "sites[2].code", []string{"P01 is already sites[1]"}},
		{"parent a list", head + "  - {code: P01, parent: [CEN]}\n", "sites[1].parent", []string{"must be a string, not array", "(site P01)"}},
		{"parent unknown", head + "  - {code: P01, parent: CNE}\n", "sites[1].parent", []string{`"CNE" is not a site of the file (site P01)`}},
		{"own parent", head + "  - {code: P01, parent: P01}\n", "sites[1].parent", []string{"site P01 cannot be its own parent"}},
		{"two roots", head + "  - {code: P01, parent: CEN}\n  - {code: X01}\n", "sites[2].parent", []string{"site X01 has no parent", "CEN (sites[0]) is already the root"}},
		{"cycle beside the root", head + "  - {code: P01, parent: P02}\n  - {code: S01, parent: P01}\n  - {code: P02, parent: S01}\n",
			"sites[1].parent", []string{"cycle P01 → P02 → S01 → P01"}},
		{"cycle reached from outside it", head + "  - {code: X01, parent: B01}\n  - {code: B01, parent: A01}\n  - {code: A01, parent: B01}\n",
			"sites[2].parent", []string{"cycle B01 → A01 → B01"}},
		{"cycle without a root", "sites:\n  - {code: A01, parent: B01}\n  - {code: B01, parent: A01}\n", "sites[0].parent", []string{"cycle A01 → B01 → A01"}},
		{"server: kafka missing", server("  - {code: P01, parent: CEN, url: http://p01}\n"), "sites[1].kafka", []string{"site P01 has none", "sites[0] CEN names kafka or url"}},
		{"server: url missing", server("  - {code: P01, parent: CEN, kafka: {brokers: [k:9092]}}\n"), "sites[1].url", []string{"site P01 has none"}},
		{"server: url only elsewhere", "sites:\n  - {code: CEN}\n  - {code: P01, parent: CEN, url: http://p01}\n", "sites[0].kafka", []string{"site CEN has none", "sites[1] P01 names"}},
		{"server: brokers empty", server("  - {code: P01, parent: CEN, kafka: {brokers: []}, url: http://p01}\n"), "sites[1].kafka.brokers", []string{"required: site P01"}},
		{"server: kafka empty", server("  - {code: P01, parent: CEN, kafka: {}, url: http://p01}\n"), "sites[1].kafka.brokers", []string{"required: site P01"}},
		{"server: brokers not a list", server("  - {code: P01, parent: CEN, kafka: {brokers: k:9092}, url: http://p01}\n"), "sites[1].kafka.brokers", []string{"must be a list, not string (site P01)"}},
		{"server: kafka not a map", server("  - {code: P01, parent: CEN, kafka: k:9092, url: http://p01}\n"), "sites[1].kafka", []string{"must be a map, not string"}},
		{"server: broker without port", server("  - {code: P01, parent: CEN, kafka: {brokers: [k:9092, kafka]}, url: http://p01}\n"), "sites[1].kafka.brokers[1]", []string{`"kafka" is not host:port (site P01)`}},
		{"server: broker port 0", server("  - {code: P01, parent: CEN, kafka: {brokers: [k:0]}, url: http://p01}\n"), "sites[1].kafka.brokers[0]", []string{"not host:port"}},
		{"server: broker port too big", server("  - {code: P01, parent: CEN, kafka: {brokers: [k:65536]}, url: http://p01}\n"), "sites[1].kafka.brokers[0]", []string{"not host:port"}},
		{"server: broker without host", server("  - {code: P01, parent: CEN, kafka: {brokers: [\":9092\"]}, url: http://p01}\n"), "sites[1].kafka.brokers[0]", []string{"not host:port"}},
		{"server: url not http", server("  - {code: P01, parent: CEN, kafka: {brokers: [k:9092]}, url: ftp://p01}\n"), "sites[1].url", []string{"not an http or https URL (site P01)"}},
		{"server: url relative", server("  - {code: P01, parent: CEN, kafka: {brokers: [k:9092]}, url: p01:8080}\n"), "sites[1].url", []string{"not an http or https URL"}},
		{"server: url without host", server("  - {code: P01, parent: CEN, kafka: {brokers: [k:9092]}, url: \"http:///x\"}\n"), "sites[1].url", []string{"has no host"}},
		{"server: url with a query", server("  - {code: P01, parent: CEN, kafka: {brokers: [k:9092]}, url: \"http://p01/?site=P01\"}\n"), "sites[1].url", []string{"must not have a query"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseTopology([]byte(c.file))
			wantField(t, err, c.field, c.reason...)
		})
	}
}

// What is not YAML, or repeats a key, is refused with its line, not as a field.
func TestTopologyNotYAML(t *testing.T) {
	for name, file := range map[string]string{
		"repeated key": "sites:\n  - code: CEN\n    code: P01\n",
		"bad syntax":   "sites:\n  - code: [CEN\n",
	} {
		_, err := ParseTopology([]byte(file))
		var fe *schema.FieldError
		if err == nil || errors.As(err, &fe) || !strings.Contains(err.Error(), "line") {
			t.Errorf("%s: err %v, want a YAML error with its line", name, err)
		}
	}
}

func TestLoadTopologyNamesTheFile(t *testing.T) {
	path := t.TempDir() + "/top.yaml"
	if err := os.WriteFile(path, []byte("sites:\n  - {code: CEN, parnet: X}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadTopology(path)
	wantField(t, err, "sites[0].parnet", "unknown field")
	if want := "cannot load topology (" + path + "): field sites[0].parnet: unknown field (site CEN)"; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error %q, want it to start %q", err, want)
	}
	if _, err := LoadTopology(path + ".missing"); err == nil || !strings.Contains(err.Error(), path+".missing") {
		t.Errorf("missing file: %v", err)
	}
}

func wantField(t *testing.T, err error, field string, reason ...string) {
	t.Helper()
	var fe *schema.FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("err %v, want a field error on %s", err, field)
	}
	if fe.Field != field {
		t.Errorf("field %q (%v), want %q", fe.Field, err, field)
	}
	for _, r := range reason {
		if !strings.Contains(fe.Reason, r) {
			t.Errorf("reason %q, want it to hold %q", fe.Reason, r)
		}
	}
}

func eq(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) || (got == nil) != (want == nil) {
		t.Errorf("%s = %#v, want %#v", what, got, want)
	}
}
