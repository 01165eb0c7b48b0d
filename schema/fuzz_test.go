package schema

import (
	"bytes"
	"crypto/ed25519"
	"os"
	"reflect"
	"testing"
	"time"
)

// FuzzDecodeReport feeds arbitrary bytes to the msgpack decoder and the validator: neither may
// panic, and a report that decodes and validates must survive an encode/decode round trip.
func FuzzDecodeReport(f *testing.F) {
	if golden, err := os.ReadFile("testdata/report_v1.msgpack"); err == nil {
		f.Add(golden)
	}
	var b bytes.Buffer
	_ = EncodeReport(&b, &Report{V: 1, Client: "c", Site: "P01", FullTypes: []TopicType{500},
		Messages: []StateMessage{{Serial: 1, Time: 1, TopicType: 500, TopicID: "u", State: 2, Error: -2145124330, Params: []string{"p"}}}})
	f.Add(b.Bytes())
	f.Add([]byte{0x80})
	f.Add([]byte{0xc1})
	f.Fuzz(func(t *testing.T, data []byte) {
		var r Report
		if err := DecodeReport(data, &r); err != nil {
			return
		}
		if err := r.Validate(Limits{}); err != nil {
			if _, ok := err.(*FieldError); !ok {
				t.Fatalf("validation error %T does not name a field: %v", err, err)
			}
			return
		}
		var out bytes.Buffer
		if err := EncodeReport(&out, &r); err != nil {
			t.Fatalf("cannot re-encode a valid report: %v", err)
		}
		var back Report
		if err := DecodeReport(out.Bytes(), &back); err != nil {
			t.Fatalf("cannot decode a re-encoded report: %v", err)
		}
		if !reflect.DeepEqual(normalized(r), normalized(back)) {
			t.Fatalf("round trip changed the report:\n%+v\n%+v", r, back)
		}
	})
}

func normalized(r Report) Report {
	if len(r.FullTypes) == 0 {
		r.FullTypes = nil
	}
	msgs := make([]StateMessage, len(r.Messages))
	for i, m := range r.Messages {
		if len(m.Params) == 0 {
			m.Params = nil
		}
		msgs[i] = m
	}
	r.Messages = msgs
	return r
}

// FuzzParseCredential: no token may panic the parser, and only tokens the site signed parse.
func FuzzParseCredential(f *testing.F) {
	seed := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))
	tok, _ := SignCredential(Credential{Client: "c", Site: "P01", Key: make([]byte, 32), Issued: 1, Expires: 1 << 50}, seed)
	f.Add(tok)
	f.Add("a.b")
	f.Add("")
	f.Fuzz(func(t *testing.T, token string) {
		c, err := ParseCredential(token, seed.Public().(ed25519.PublicKey), time.UnixMilli(2))
		if err == nil && (c.Client == "" || len(c.Key) != ed25519.PublicKeySize) {
			t.Fatalf("accepted an incomplete credential: %+v", c)
		}
	})
}
