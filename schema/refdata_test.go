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
