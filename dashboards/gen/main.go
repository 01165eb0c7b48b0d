// Command gen writes statepipe's Grafana dashboards, built as code with the Grafana
// foundation SDK, and the provisioning files that load them and their datasources into
// Grafana:
//
//	OUT/dashboards/<uid>.json                      one file per dashboard
//	OUT/provisioning/datasources/statepipe.yaml    the statepipe and Prometheus datasources
//	OUT/provisioning/dashboards/statepipe.yaml     a file provider for OUT/dashboards
//
// OUT is -out (default ../grafana, i.e. dashboards/grafana when run in dashboards/gen). The
// output is deterministic: running it again writes the same bytes, and the tests check that
// the committed files are what it writes. Every statepipe target is checked against the API's
// reports (api.go) before anything is written.
//
// It owns the dashboards' JSON and provisioning only; the datasource plugin they query is
// dashboards/plugin, and nothing here talks to Grafana or statepipe.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

func main() {
	out := flag.String("out", "../grafana", "directory to write dashboards/ and provisioning/ into")
	panels := flag.Bool("panels", false, "print the table of every dashboard's panels and their queries (README.md holds it) instead of writing files")
	flag.Parse()
	if *panels {
		md, err := panelsMarkdown()
		if err != nil {
			log.Fatal(err)
		}
		fmt.Print(md)
		return
	}
	files, err := render()
	if err != nil {
		log.Fatal(err)
	}
	if err := write(*out, files); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("wrote %d files under %s\n", len(files), *out)
}

// register makes the SDK's runtime know every core panel and query type and the statepipe
// query, so that dashboards decode (strictly) into typed panels and targets.
func register() {
	plugins.RegisterDefaultPlugins()
	cog.NewRuntime().RegisterDataqueryVariant(queryVariant())
}

// render returns every output file by its path relative to the output directory.
func render() (map[string][]byte, error) {
	register()
	files := map[string][]byte{
		"provisioning/datasources/statepipe.yaml": []byte(datasourcesYAML),
		"provisioning/dashboards/statepipe.yaml":  []byte(dashboardsYAML),
	}
	for _, b := range dashboards() {
		d, err := b.Build()
		if err != nil {
			return nil, fmt.Errorf("cannot build dashboard: %w", err)
		}
		numberPanels(&d)
		raw, err := marshal(d)
		if err != nil {
			return nil, fmt.Errorf("cannot encode dashboard %s: %w", *d.Uid, err)
		}
		files["dashboards/"+*d.Uid+".json"] = raw
	}
	return files, nil
}

// numberPanels gives every panel an id, 1… in order (Grafana's links to a panel use it).
func numberPanels(d *dashboard.Dashboard) {
	for i := range d.Panels {
		if p := d.Panels[i].Panel; p != nil {
			p.Id = cog.ToPtr(uint32(i + 1))
		}
	}
}

// marshal encodes as the files are committed: two-space indent, no HTML escaping ("<", "&"
// stay readable in descriptions and PromQL), a final newline.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func write(dir string, files map[string][]byte) error {
	for name, data := range files {
		path := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return fmt.Errorf("cannot create directory (%s): %w", filepath.Dir(path), err)
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			return fmt.Errorf("cannot write file (%s): %w", path, err)
		}
	}
	return nil
}
