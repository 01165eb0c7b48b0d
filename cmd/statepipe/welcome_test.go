package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/statepipe/statepipe/ingest"
)

// The welcome's examples work on the site it describes: no unsigned curl where signatures
// are required, the token variables named where tokens guard it, and never a secret printed.
func TestWelcomeFitsTheSite(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name        string
		cfg         runConfig
		curl, token bool
	}{
		{"open", runConfig{Site: "P01", Auth: ingest.AuthConfig{Mode: ingest.AuthOptional}}, true, false},
		{"required with tokens", runConfig{Site: "P01", AdminToken: "admin-secret", ReaderToken: "reader-secret",
			Auth: ingest.AuthConfig{Mode: ingest.AuthRequired}}, false, true},
	} {
		var b bytes.Buffer
		printWelcome(&b, "http://127.0.0.1:8080", c.cfg, true)
		out := b.String()
		if strings.Contains(out, "curl") != c.curl || strings.Contains(out, "STATEPIPE_READER_TOKEN") != c.token {
			t.Errorf("%s: curl %v, tokens named %v, want %v, %v:\n%s", c.name, strings.Contains(out, "curl"), strings.Contains(out, "STATEPIPE_READER_TOKEN"), c.curl, c.token, out)
		}
		if strings.Contains(out, "secret") {
			t.Errorf("%s: the welcome prints a token:\n%s", c.name, out)
		}
	}
}
