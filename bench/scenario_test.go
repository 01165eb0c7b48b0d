package bench

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestStandardScenariosLoad(t *testing.T) {
	files, _ := filepath.Glob("scenarios/*.yaml")
	if len(files) < 5 {
		t.Fatalf("want the standard scenarios (small, storm, steady, patch-tuesday, soak), found %v", files)
	}
	for _, f := range files {
		sc, err := LoadScenario(f)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		if want := strings.TrimSuffix(filepath.Base(f), ".yaml"); sc.Name != want {
			t.Errorf("%s: name %q, want %q (results directories are named after it)", f, sc.Name, want)
		}
	}
}

func TestScenarioErrorsNameTheField(t *testing.T) {
	base, err := os.ReadFile("scenarios/small.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct{ from, to, want string }{
		{"clients: 2000", "clients: 0", "field clients"},
		{"clients: 2000", "clinets: 2000", `unknown field "clinets"`},
		{"time_scale: 1800", "time_scale: -1", "field time_scale"},
		{"duration: 36h", "duration: 36 hours", "not a duration"},
		{"failure: 0.05", "failure: 5", "field deployments[0].failure"},
		{"from_drop: true", "from_drop: false", "field deployments[1].updates: overlaps deployments[0]"},
		{"applicable: {min: 40, max: 80}", "applicable: {min: 80, max: 40}", "field applicable"},
	}
	for _, c := range cases {
		b := strings.Replace(string(base), c.from, c.to, 1)
		if b == string(base) {
			t.Fatalf("%q not in small.yaml", c.from)
		}
		_, err := ParseScenario([]byte(b), "edited")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s → %s: got %v, want an error containing %q", c.from, c.to, err, c.want)
		}
	}
}
