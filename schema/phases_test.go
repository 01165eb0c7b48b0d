package schema

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
)

const phasedDeployment = `{"id": "D", "name": "November", "updates": ["KB1"], "collection": "C", "start": "2024-11-01T00:00:00Z", "deadline": "2024-11-08T00:00:00Z", "phases": %s}`

func deploymentLine(phases string) string { return strings.Replace(phasedDeployment, "%s", phases, 1) }

// Phases are validated naming the field of the phase at fault, and stored with their defaults.
func TestDeploymentPhasesAreValidatedNamingTheField(t *testing.T) {
	cases := []struct {
		phases, field, reason string
	}{
		{`[{"name": "all"}]`, "phases", "at least 2 phases"},
		{`[{"name": "pilot", "share": 0.1}, {"name": ""}]`, "phases[1].name", "required"},
		{`[{"name": "pilot", "share": 0.1}, {"name": "pilot"}]`, "phases[1].name", "also the name of phases[0]"},
		{`[{"name": "pilot", "share": 0.1, "collection": "ring0"}, {"name": "rest"}]`, "phases[0].collection", "not both"},
		{`[{"name": "pilot", "share": 0}, {"name": "rest"}]`, "phases[0].share", "0 < share <= 1"},
		{`[{"name": "pilot", "share": 1.5}, {"name": "rest"}]`, "phases[0].share", "0 < share <= 1"},
		{`[{"name": "a", "share": 0.6}, {"name": "b", "share": 0.5}, {"name": "rest"}]`, "phases[1].share", "add up to 1.1"},
		{`[{"name": "a"}, {"name": "b", "share": 0.5}]`, "phases[0].share", "only the last phase may have neither"},
		{`[{"name": "a", "share": 0.5, "success_pct": 101}, {"name": "b"}]`, "phases[0].success_pct", "0 to 100"},
		{`[{"name": "a", "share": 0.5, "success_pct": -1}, {"name": "b"}]`, "phases[0].success_pct", "0 to 100"},
		{`[{"name": "a", "share": 0.5, "soak": "a day"}, {"name": "b"}]`, "phases[0].soak", "not a duration"},
		{`[{"name": "a", "share": 0.5, "soak": "-1h"}, {"name": "b"}]`, "phases[0].soak", "not a duration"},
		{`[{"name": "a", "share": 0.5}, {"name": "b\u0007"}]`, "phases[1].name", "control character"},
		{`[{"name": "a", "share": 0.5, "typo": 1}, {"name": "b"}]`, "typo", "unknown field"},
	}
	for _, c := range cases {
		_, errs := ParseRefLines(RefDeployments, strings.NewReader(deploymentLine(c.phases)))
		if len(errs) != 1 || errs[0].Field != c.field || !strings.Contains(errs[0].Reason, c.reason) {
			t.Errorf("%s: got %+v, want field %s with %q", c.phases, errs, c.field, c.reason)
		}
	}
	recs, errs := ParseRefLines(RefDeployments, strings.NewReader(deploymentLine(
		`[{"name": "pilot", "collection": "ring0", "soak": "90m"}, {"name": "early", "share": 0.25, "success_pct": 0}, {"name": "broad", "share": 0.75}, {"name": "rest"}]`)))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	v, err := DecodeRef(RefDeployments, recs[0].Value)
	if err != nil {
		t.Fatal(err)
	}
	ps := v.(*Deployment).Phases
	if len(ps) != 4 || ps[0].Success() != 95 || ps[0].Soak != "1h30m0s" || ps[0].SoakDuration().Minutes() != 90 ||
		ps[1].Success() != 0 || ps[1].ShareOf() != 0.25 || ps[3].Soak != "0s" || ps[3].ShareOf() != 0 {
		t.Errorf("stored phases %s", recs[0].Value)
	}
	// A deployment without phases keeps its encoding (no "phases" key).
	recs, _ = ParseRefLines(RefDeployments, strings.NewReader(`{"id": "D", "updates": ["KB1"], "collection": "C", "start": "2024-11-01T00:00:00Z", "deadline": "2024-11-08T00:00:00Z"}`))
	if strings.Contains(string(recs[0].Value), "phases") {
		t.Errorf("a deployment without phases is stored as %s", recs[0].Value)
	}
}

// Ids holding "~" are reserved for the generated phase collections and lists: imports of lists
// and collections refuse them naming id; other kinds do not care.
func TestReservedIDsAreRefusedInListsAndCollections(t *testing.T) {
	for k, line := range map[RefKind]string{
		RefUpdateLists: `{"id": "D~updates", "updates": ["KB1"]}`,
		RefCollections: `{"id": "D~phase-1", "members": ["pc1"]}`,
	} {
		_, errs := ParseRefLines(k, strings.NewReader(line))
		if len(errs) != 1 || errs[0].Field != "id" || !strings.Contains(errs[0].Reason, "reserved") {
			t.Errorf("%s: got %+v, want id refused as reserved", k, errs)
		}
	}
	if _, errs := ParseRefLines(RefCollections, strings.NewReader(`{"id": "ring-1", "members": ["pc~1"]}`)); len(errs) > 0 {
		t.Errorf("a member id with ~ was refused: %v", errs)
	}
	if _, errs := ParseRefLines(RefPhases, strings.NewReader(`{"deployment": "D", "phase": 1}`)); len(errs) != 1 {
		t.Errorf("phase releases were importable: %v", errs)
	}
	if RefPhases.Valid() || !RefPhases.Folded() {
		t.Error("phases must be folded but not imported")
	}
}

func TestPhaseIDs(t *testing.T) {
	for _, c := range []struct {
		id string
		d  string
		n  int
		ok bool
	}{
		{PhaseCollectionID("D", 3), "D", 3, true},
		{PhaseCollectionID("a~phase-1", 12), "a~phase-1", 12, true},
		{"D~phase-0", "", 0, false},
		{"D~phase-01", "", 0, false},
		{"D~phase-x", "", 0, false},
		{"~phase-1", "", 0, false},
		{"ring-1", "", 0, false},
	} {
		d, n, ok := ParsePhaseCollectionID(c.id)
		if d != c.d || n != c.n || ok != c.ok {
			t.Errorf("%s: got %q %d %v", c.id, d, n, ok)
		}
	}
	if PhaseListID("D") != "D~updates" || PhaseReleaseID("D", 2) != "D~2" {
		t.Error("generated ids")
	}
	var r PhaseRelease
	if v, err := DecodeRef(RefPhases, []byte(`{"deployment":"D","phase":2,"name":"broad","released_at":"2026-11-30T10:00:00Z","reason":"criterion held"}`)); err != nil {
		t.Fatal(err)
	} else {
		r = *v.(*PhaseRelease)
	}
	if b, _ := json.Marshal(r); !strings.Contains(string(b), `"phase":2`) {
		t.Errorf("release %s", b)
	}
}

// The example files import as they are.
func TestExampleReferenceDataIsValid(t *testing.T) {
	for file, k := range map[string]RefKind{"catalog.jsonl": RefCatalog, "lists.jsonl": RefUpdateLists, "collections.jsonl": RefCollections,
		"deployments.jsonl": RefDeployments, "deployments-phased.jsonl": RefDeployments} {
		f, err := os.Open("../examples/" + file)
		if err != nil {
			t.Fatal(err)
		}
		recs, errs := ParseRefLines(k, f)
		f.Close()
		if len(errs) > 0 || len(recs) == 0 {
			t.Errorf("%s: %d records, errors %v", file, len(recs), errs)
		}
	}
}
