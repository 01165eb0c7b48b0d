package replicator

import (
	"encoding/hex"
	"strings"
	"testing"
)

// Records anyone who can produce to a hier topic could write: declared lengths far beyond
// the bytes that follow must be refused at once, not allocated for or looped over (a 33-byte
// record declaring 2^28 cells once held a central site's fold for minutes and grew it to
// 18 GB). The test fails by its timeout if one of them spins.
func TestDecodeHostileLengths(t *testing.T) {
	prefix := "84a17601a66f726967696ea3503031a565706f636801" // {v:1, origin:"P01", epoch:1, …
	for name, tc := range map[string]struct{ hex, want string }{
		"2^28 cells":               {prefix + "a563656c6c73dd0fffffff", "at most 100000"},
		"a cell of 2^28 fields":    {prefix + "a563656c6c7391dd0fffffff", "cells[0]"},
		"a scope of 2^31 bytes":    {prefix + "a563656c6c739197" + "01" + "db7fffffff", "cells[0]"},
		"a map of 2^31 entries":    {"df7fffffff", "cannot decode"},
		"a heartbeat of 2^28 keys": {prefix + "a26862df0fffffff", "cannot decode"},
	} {
		b, err := hex.DecodeString(tc.hex)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, err := Decode(b); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error holding %q", name, err, tc.want)
		}
	}
}
