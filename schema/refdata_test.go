package schema

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// Every free-text field of reference data refuses control characters (C0 with tab and newline,
// DEL, C1), naming the line and the field: titles and names end up in report headers and
// tables. Other text (accents, CJK, a backslash) is imported as it is.
func TestRefDataRefusesControlCharactersInText(t *testing.T) {
	valid := map[RefKind]map[string]any{
		RefCatalog: {"id": "KB1", "article": "KB5044284", "title": "2024-10 Cumulative Update – é 漢 C:\\x", "classification": "Security Updates",
			"severity": "Critical", "product": "Windows 11", "bundle": "B1", "first_synced": "2024-10-01T00:00:00Z"},
		RefUpdateLists: {"id": "L", "name": "Patch Tuesday", "updates": []string{"KB1"}},
		RefCollections: {"id": "C", "name": "Pilot ring", "members": []string{"pc1"}},
		RefDeployments: {"id": "D", "name": "November", "updates": []string{"KB1"}, "collection": "C", "site": "P01",
			"start": "2024-11-01T00:00:00Z", "deadline": "2024-11-08T00:00:00Z"},
	}
	fields := map[RefKind][]string{
		RefCatalog:     {"article", "title", "classification", "severity", "product", "bundle"},
		RefUpdateLists: {"name"},
		RefCollections: {"name"},
		RefDeployments: {"name", "collection", "site"},
	}
	line := func(v map[string]any, field, value string) string {
		w := map[string]any{}
		for k, x := range v {
			w[k] = x
		}
		if field != "" {
			w[field] = value
		}
		b, err := json.Marshal(w)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for _, k := range RefKinds {
		lines := []string{line(valid[k], "", "")}
		var want []string
		for _, f := range fields[k] {
			for _, bad := range []string{"a\tb", "ok\nKB5044284  Installed", "x\x1b]0;pwned\x07", "del\x7f", "c1\u0085", "\r"} {
				lines = append(lines, line(valid[k], f, bad))
				want = append(want, fmt.Sprintf("%d:%s", len(lines), f))
			}
		}
		recs, errs := ParseRefLines(k, strings.NewReader(strings.Join(lines, "\n")))
		if len(recs) != 1 {
			t.Errorf("%s: %d valid lines, want the first only", k, len(recs))
		}
		var got []string
		for _, e := range errs {
			got = append(got, fmt.Sprintf("%d:%s", e.Line, e.Field))
			if !strings.Contains(e.Reason, "control character") {
				t.Errorf("%s: line %d: reason %q", k, e.Line, e.Reason)
			}
		}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("%s: errors %v, want %v", k, got, want)
		}
	}
}

// A catalog line may give vendor and released (an RFC 3339 time or date; absent or null:
// unknown); a line without them encodes as before, and a bad value is refused naming its field.
func TestCatalogVendorAndReleased(t *testing.T) {
	const base = `"title":"t","first_synced":"2024-10-01T00:00:00Z"`
	lines := []string{
		`{"id":"A",` + base + `}`,
		`{"id":"B",` + base + `,"vendor":"Microsoft","released":"2026-11-10"}`,
		`{"id":"C",` + base + `,"vendor":"Adobe","released":"2026-10-14T19:00:00+02:00"}`,
		`{"id":"D",` + base + `,"released":null}`,
		`{"id":"E",` + base + `,"released":"Nov 2026"}`,
		`{"id":"F",` + base + `,"released":20261110}`,
		`{"id":"G",` + base + `,"released":"1969-12-31"}`,
		`{"id":"H",` + base + `,"released":"2300-01-01"}`,
		`{"id":"I",` + base + `,"released":""}`,
		`{"id":"J",` + base + `,"vendor":" Microsoft"}`,
		`{"id":"K",` + base + `,"vendor":"` + strings.Repeat("v", 129) + `"}`,
		`{"id":"L",` + base + `,"vendor":"Micro\u001bsoft"}`,
		`{"id":"M",` + base + `,"vendor":7}`,
		`{"id":"N",` + base + `,"released":"0001-01-01T00:00:00Z"}`,      // the zero time: not "unknown"
		`{"id":"O",` + base + `,"released":"1970-01-01T00:00:00.0001Z"}`, // stored as 0 ms: unknown
	}
	recs, errs := ParseRefLines(RefCatalog, strings.NewReader(strings.Join(lines, "\n")))
	want := map[string]string{
		"A": `{"id":"A","article":"","title":"t","classification":"","severity":"","product":"","bundle":"","superseded_by":null,"expired":false,"first_synced":"2024-10-01T00:00:00Z"}`,
		"B": `{"id":"B","article":"","title":"t","classification":"","severity":"","product":"","bundle":"","superseded_by":null,"expired":false,"first_synced":"2024-10-01T00:00:00Z","vendor":"Microsoft","released":"2026-11-10T00:00:00Z"}`,
		"C": `{"id":"C","article":"","title":"t","classification":"","severity":"","product":"","bundle":"","superseded_by":null,"expired":false,"first_synced":"2024-10-01T00:00:00Z","vendor":"Adobe","released":"2026-10-14T19:00:00+02:00"}`,
		"D": `{"id":"D","article":"","title":"t","classification":"","severity":"","product":"","bundle":"","superseded_by":null,"expired":false,"first_synced":"2024-10-01T00:00:00Z"}`,
	}
	if len(recs) != len(want) {
		t.Errorf("%d valid lines, want %d", len(recs), len(want))
	}
	for _, r := range recs {
		if string(r.Value) != want[r.ID] {
			t.Errorf("%s: %s\n want %s", r.ID, r.Value, want[r.ID])
		}
	}
	var got []string
	for _, e := range errs {
		got = append(got, fmt.Sprintf("%d:%s", e.Line, e.Field))
	}
	if w := "5:released 6:released 7:released 8:released 9:released 10:vendor 11:vendor 12:vendor 13:vendor 14:released 15:released"; strings.Join(got, " ") != w {
		t.Errorf("errors %v, want %s: %v", got, w, errs)
	}
	if len(errs) > 0 && errs[0].Reason != `must be an RFC 3339 time (2026-11-10T18:00:00Z) or date (2026-11-10), got JSON "Nov 2026"` {
		t.Errorf("reason: %q", errs[0].Reason)
	}
	// Decoded as the projector does: the release in milliseconds, 0 when unknown.
	for id, ms := range map[string]int64{"A": 0, "B": 1794268800000, "C": 1791997200000} {
		for _, r := range recs {
			if r.ID != id {
				continue
			}
			v, err := DecodeRef(RefCatalog, r.Value)
			if err != nil {
				t.Fatal(err)
			}
			if got := v.(*Update).Released.UnixMilli(); got != ms {
				t.Errorf("%s: released %d ms, want %d", id, got, ms)
			}
		}
	}
}

// An update listed twice in a deployment or an update list is refused, naming the second
// listing: a deployment's per-update states would count it twice. A member listed twice in a
// collection is harmless (membership is a set) and stays accepted.
func TestRefDataRefusesAnUpdateListedTwice(t *testing.T) {
	for kind, c := range map[RefKind]struct{ line, field string }{
		RefDeployments: {`{"id":"D","name":"N","updates":["KB1","KB2","KB1"],"collection":"C","site":"P01","start":"2024-11-01T00:00:00Z","deadline":"2024-11-08T00:00:00Z"}`, "updates[2]"},
		RefUpdateLists: {`{"id":"L","name":"N","updates":["KB1","KB1"]}`, "updates[1]"},
		RefCollections: {`{"id":"C","name":"N","members":["pc1","pc1"]}`, ""},
	} {
		recs, errs := ParseRefLines(kind, strings.NewReader(c.line))
		switch {
		case c.field == "" && (len(errs) != 0 || len(recs) != 1):
			t.Errorf("%s: %v, want accepted", kind, errs)
		case c.field != "" && (len(errs) != 1 || errs[0].Field != c.field || !strings.Contains(errs[0].Reason, "listed already")):
			t.Errorf("%s: %+v, want one error naming %s", kind, errs, c.field)
		}
	}
}
