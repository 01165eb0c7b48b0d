package schema

import (
	"bytes"
	"strings"
	"testing"
)

// PeekSite finds the site from a prefix of the body, in both encodings, wherever the other
// keys are; it reports false for a prefix that ends before the site, and for garbage.
func TestPeekSite(t *testing.T) {
	rep := &Report{V: 1, Client: "pc-1", Site: "P02", FullTypes: []TopicType{500},
		Messages: []StateMessage{{Serial: 1, Time: 1764100000000, TopicType: 500, TopicID: "KB1", State: 2}}}
	var mp bytes.Buffer
	if err := EncodeReport(&mp, rep); err != nil {
		t.Fatal(err)
	}
	if site, ok := PeekSite(mp.Bytes()[:min(mp.Len(), 40)], false); !ok || site != "P02" {
		t.Errorf("msgpack prefix: %q %v, want P02", site, ok)
	}
	js := `{"v":1,"client":"pc-1","full_types":[500],"extra":{"a":[1,{"b":"c"}]},"site":"S01","messages":[`
	if site, ok := PeekSite([]byte(js), true); !ok || site != "S01" {
		t.Errorf("JSON prefix with the site after other keys: %q %v, want S01", site, ok)
	}
	late := `{"v":1,"messages":[` + strings.Repeat(`{"serial":1},`, 100)
	if _, ok := PeekSite([]byte(late), true); ok {
		t.Errorf("a JSON prefix ending inside the messages found a site")
	}
	for _, junk := range []string{"", "[", `{"site":`, `{"site":1}`, "\x81\xa4site\x01", "\xdf\x7f\xff\xff\xff"} {
		if site, ok := PeekSite([]byte(junk), strings.HasPrefix(junk, "{") || junk == "[" || junk == ""); ok {
			t.Errorf("%q: found %q", junk, site)
		}
		if site, ok := PeekSite([]byte(junk), false); ok {
			t.Errorf("%q as msgpack: found %q", junk, site)
		}
	}
}
