package ingest

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// Every label value the code counts under is one the counters start with: a refusal added
// without its label would exist only after its first event. Read from the source, as the
// values are literals at the places that count or refuse.
func TestCountersStartWithEveryLabelTheCodeUses(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	// A rejection literal counts as an enrolment outcome in enroll.go, as a report's
	// rejection reason elsewhere.
	rejection := `rejection\{http\.Status[A-Za-z]+, schema\.Code[A-Za-z]+, "([a-z_]+)"`
	enrolment := regexp.MustCompile(`e\.(?:refuse|paced|unavailable|issue)\([^"]*"([a-z_]+)"|e\.outcomes\.WithLabelValues\("([a-z_]+)"\)|` + rejection)
	report := regexp.MustCompile(`h\.rejected\.WithLabelValues\("([a-z_]+)"\)|reason: "([a-z_]+)"|` + rejection)
	var outcomes, reasons []string // "file: label"
	for _, f := range files {
		if f == "metrics.go" || strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		re, into := report, &reasons
		if f == "enroll.go" {
			re, into = enrolment, &outcomes
		}
		for _, m := range re.FindAllStringSubmatch(string(src), -1) {
			for _, v := range m[1:] {
				if v != "" {
					*into = append(*into, f+": "+v)
				}
			}
		}
	}
	check := func(what string, found, known []string) {
		if len(found) < 10 {
			t.Fatalf("found only %v in the source: the patterns no longer match the code", found)
		}
		for _, v := range found {
			if _, label, _ := strings.Cut(v, ": "); !slices.Contains(known, label) {
				t.Errorf("%s %q is counted but not initialised (add it to metrics.go)", what, v)
			}
		}
	}
	check("enrolment outcome", outcomes, enrollOutcomes)
	check("rejection reason", reasons, rejectReasons)
}
