package schema

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"os"
	"reflect"
	"runtime"
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

// A length header is not an allocation: 30 bytes claiming billions of messages, full types or
// params are refused as truncated (the fuzzer's dc8d76a68697d3eb ran the decoder out of memory).
func TestHugeLengthsAreNotPreallocated(t *testing.T) {
	for name, body := range map[string][]byte{
		"messages":   []byte("\x81\xa8messages\xdd\xff\xff\xff\xff\x80"),
		"full_types": []byte("\x81\xaafull_types\xdd\xff\xff\xff\xff\x01"),
		"params":     []byte("\x81\xa8messages\x91\x81\xa6params\xdd\xff\xff\xff\xff\xa1x"),
	} {
		var r Report
		err := DecodeReport(body, &r)
		var fe *FieldError
		if !errors.As(err, &fe) {
			t.Errorf("%s: got %v, want a field error", name, err)
		}
	}
}

// Bodies claiming strings longer than themselves must not leave memory behind: each grew a
// pooled decoder's buffer by 1 MiB and kept it (the fuzzer's workers reached 10 GiB).
func TestClaimedLengthsDoNotAccumulate(t *testing.T) {
	body := []byte("\x81\xa6client\xdb\x7f\xff\xff\xf0x")
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range 400 {
		var r Report
		if err := DecodeReport(body, &r); err == nil {
			t.Fatal("a truncated string decoded")
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grown := int64(after.HeapInuse) - int64(before.HeapInuse); grown > 64<<20 {
		t.Fatalf("400 bad bodies of %d bytes left %d MiB in use", len(body), grown>>20)
	}
}
