package plugin_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/statepipe/statepipe/dashboards/plugin/pkg/plugin"
)

type pluginJSON struct {
	ID         string `json:"id"`
	Type       string `json:"type"`
	Name       string `json:"name"`
	Backend    bool   `json:"backend"`
	Alerting   bool   `json:"alerting"`
	Executable string `json:"executable"`
}

func readPluginJSON(t *testing.T, path string) pluginJSON {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var p pluginJSON
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return p
}

// TestPluginJSON: src/plugin.json says what the backend is (the id it registers with, the
// executable mage builds), and, with STATEPIPE_CHECK_DIST=1 (after the frontend build and
// mage build:linux), dist/ holds a consistent plugin: plugin.json, module.js and the
// backend executable plugin.json names.
func TestPluginJSON(t *testing.T) {
	src := readPluginJSON(t, filepath.Join(pluginDir, "src/plugin.json"))
	want := pluginJSON{ID: plugin.ID, Type: "datasource", Name: "statepipe", Backend: true, Alerting: true, Executable: "gpx_statepipe"}
	if src != want {
		t.Errorf("src/plugin.json: %+v, want %+v", src, want)
	}
	if os.Getenv("STATEPIPE_CHECK_DIST") != "1" {
		t.Log("dist/ not checked: set STATEPIPE_CHECK_DIST=1 after building the frontend and mage build:linux")
		return
	}
	dist := filepath.Join(pluginDir, "dist")
	if got := readPluginJSON(t, filepath.Join(dist, "plugin.json")); got != want {
		t.Errorf("dist/plugin.json: %+v, want %+v", got, want)
	}
	for _, f := range []string{"module.js", want.Executable + "_linux_amd64"} {
		st, err := os.Stat(filepath.Join(dist, f))
		if err != nil {
			t.Errorf("dist/ lacks %s: %v", f, err)
			continue
		}
		if f != "module.js" && st.Mode()&0o111 == 0 {
			t.Errorf("dist/%s is not executable (%v)", f, st.Mode())
		}
	}
}
