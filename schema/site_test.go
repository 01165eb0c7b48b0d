package schema

import (
	"strings"
	"testing"
)

func TestValidSiteCode(t *testing.T) {
	for code, want := range map[string]bool{
		"CEN": true, "P01": true, "0": true, strings.Repeat("A", 16): true,
		"": false, strings.Repeat("A", 17): false, "p01": false, "P-1": false, "P 1": false,
		"P01\n": false, "É": false, "statepipe": false,
	} {
		if got := ValidSiteCode(code); got != want {
			t.Errorf("ValidSiteCode(%q) = %v, want %v", code, got, want)
		}
	}
}
