package schema

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"math"
	"math/big"
	"os"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// FuzzDecodeReport feeds arbitrary bytes to the msgpack decoder and the validator. Neither
// may panic; decoding stays within its allocation budget; every integer a report decodes to
// is the exact integer of the body (a wrapped value never decodes in range); and a report
// that decodes and validates survives a round trip through msgpack and through JSON.
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
	// Nesting: past MaxDepth under a report key and a message key, and just within it.
	f.Add(append(newMP().mapLen(1).str("future").Bytes(), deepArrays(10000)...))
	f.Add(append(newMP().mapLen(1).str("messages").arrayLen(1).mapLen(1).str("x").Bytes(), deepArrays(MaxDepth)...))
	f.Add(append(newMP().mapLen(1).str("future").Bytes(), append(bytes.Repeat([]byte{0x81, 0xa0}, MaxDepth-1), 0xc0)...))
	// A wrapped integer for each field.
	for field, value := range map[string]func(*mpBody){
		"v": func(w *mpBody) { w.uint(1<<64 - 1) }, "serial": func(w *mpBody) { w.int(-1) },
		"time": func(w *mpBody) { w.uint(1 << 63) }, "topic_type": func(w *mpBody) { w.uint(66036) },
		"state": func(w *mpBody) { w.uint(1<<32 + 3) }, "error": func(w *mpBody) { w.uint(1<<40 | 5) },
		"full_types": func(w *mpBody) { w.arrayLen(1).uint(66036) },
	} {
		f.Add(mpReport(field, value))
	}
	f.Add(mpReport("error", func(w *mpBody) { _ = w.e.EncodeUint32(0x80070005) }))
	f.Add(mpReport("state", func(w *mpBody) { w.raw(0xc0) }))
	// Amplification: a header claiming more than the body holds, empty messages, empty params.
	f.Add(newMP().mapLen(1).str("messages").raw(0xdd, 0xff, 0xff, 0xff, 0xff, 0x80, 0x80).Bytes())
	f.Add(append(newMP().mapLen(1).str("messages").arrayLen(1000).Bytes(), bytes.Repeat([]byte{0x80}, 1000)...))
	f.Add(append(newMP().mapLen(1).str("messages").arrayLen(1).mapLen(1).str("params").arrayLen(16).Bytes(), bytes.Repeat([]byte{0xa0}, 16)...))
	f.Fuzz(func(t *testing.T, data []byte) {
		var r Report
		var err error
		alloc := allocatedLeast(func() { err = DecodeReport(data, &r) })
		if max := uint64(AllocFactor*len(data) + allocSlack + fuzzAllocNoise); alloc > max {
			t.Fatalf("decoding %d bytes allocated %d (at most %d)", len(data), alloc, max)
		}
		if err != nil {
			if _, ok := err.(*FieldError); !ok {
				t.Fatalf("decoding error %T does not name a field: %v", err, err)
			}
			return
		}
		exactIntegers(t, data, &r)
		if err := r.Validate(Limits{}); err != nil {
			if _, ok := err.(*FieldError); !ok {
				t.Fatalf("validation error %T does not name a field: %v", err, err)
			}
			return
		}
		roundTrips(t, &r)
	})
}

// FuzzDecodeReportJSON feeds arbitrary bytes to the JSON decoder and the validator. Neither
// may panic; decoding stays within its allocation budget; whatever it accepts is valid JSON
// that encoding/json, as strict as ingest was (unknown fields refused), decodes to the same
// report; and a report that validates survives a round trip through msgpack and through JSON.
func FuzzDecodeReportJSON(f *testing.F) {
	if golden, err := os.ReadFile("testdata/report_v1.json"); err == nil {
		f.Add(golden)
	}
	sample, _ := json.Marshal(sampleReport())
	f.Add(sample)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"v":1} x`))
	f.Add([]byte(`{"v":1,"client":"c\u00e9\ud83d\ude00","site":"P01","messages":[{"serial":1,"topic_type":701,"topic_id":null,"params":["\n",null]}]}`))
	// Nesting past MaxDepth in a message, and as the messages.
	f.Add([]byte(`{"messages":[{"params":` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + `}]}`))
	f.Add([]byte(`{"messages":` + strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth) + `}`))
	// A wrapped integer for each field, and null where an integer belongs.
	for field, value := range map[string]string{"v": "18446744073709551615", "serial": "-1", "time": "9223372036854775808",
		"topic_type": "66036", "state": "4294967299", "error": "2147942405", "full_types": "[66036]"} {
		f.Add(jsonReport(field, value))
	}
	f.Add(jsonReport("state", "null"))
	// Amplification: many empty messages, empty params.
	f.Add([]byte(`{"messages":[{}` + strings.Repeat(",{}", 1000) + `]}`))
	f.Add([]byte(`{"messages":[{"params":[""` + strings.Repeat(`,""`, 15) + `]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var r Report
		var err error
		alloc := allocatedLeast(func() { err = DecodeReportJSON(data, &r, Limits{}) })
		if max := uint64(AllocFactor*len(data) + allocSlack + fuzzAllocNoise); alloc > max {
			t.Fatalf("decoding %d bytes allocated %d (at most %d)", len(data), alloc, max)
		}
		if err != nil {
			if _, ok := err.(*FieldError); !ok {
				t.Fatalf("decoding error %T does not name a field: %v", err, err)
			}
			return
		}
		if !json.Valid(data) {
			t.Fatalf("accepted invalid JSON")
		}
		var want Report
		d := json.NewDecoder(bytes.NewReader(data))
		d.DisallowUnknownFields()
		if err := d.Decode(&want); err != nil {
			t.Fatalf("accepted what encoding/json refuses: %v", err)
		}
		if !reflect.DeepEqual(normalized(r), normalized(want)) {
			t.Fatalf("decoded differently from encoding/json:\n%+v\n%+v", r, want)
		}
		if err := r.Validate(Limits{}); err != nil {
			if _, ok := err.(*FieldError); !ok {
				t.Fatalf("validation error %T does not name a field: %v", err, err)
			}
			return
		}
		roundTrips(t, &r)
	})
}

// fuzzAllocNoise allows for what the fuzzing engine itself may allocate while a body decodes.
const fuzzAllocNoise = 4 << 10

// allocatedLeast returns the least of what f allocates on its second and third calls, without
// collecting garbage: decoding is deterministic, the runtime is not (a first call sets up
// fmt's buffers for an error, and a collection that starts meanwhile may allocate its
// workers: 4 to 5 KiB, seldom, each).
func allocatedLeast(f func()) uint64 {
	f()
	least := uint64(math.MaxUint64)
	for range 2 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		f()
		runtime.ReadMemStats(&after)
		least = min(least, after.TotalAlloc-before.TotalAlloc)
	}
	return least
}

// roundTrips checks that a valid report encodes and decodes to itself in both encodings.
func roundTrips(t *testing.T, r *Report) {
	t.Helper()
	var out bytes.Buffer
	if err := EncodeReport(&out, r); err != nil {
		t.Fatalf("cannot re-encode a valid report: %v", err)
	}
	var back Report
	if err := DecodeReport(out.Bytes(), &back); err != nil {
		t.Fatalf("cannot decode a re-encoded report: %v", err)
	}
	if !reflect.DeepEqual(normalized(*r), normalized(back)) {
		t.Fatalf("msgpack round trip changed the report:\n%+v\n%+v", *r, back)
	}
	js, err := json.Marshal(r)
	if err != nil {
		t.Fatalf("cannot encode a valid report in JSON: %v", err)
	}
	back = Report{}
	if err := DecodeReportJSON(js, &back, Limits{}); err != nil {
		t.Fatalf("cannot decode a valid report's JSON: %v\n%s", err, js)
	}
	if !reflect.DeepEqual(normalized(*r), normalized(back)) {
		t.Fatalf("JSON round trip changed the report:\n%+v\n%+v", *r, back)
	}
}

// exactIntegers checks every integer of a decoded report against the body's, read by msgpack's
// own decoder as the type its code says (safe to recurse: the body decoded, so it nests at
// most MaxDepth deep).
func exactIntegers(t *testing.T, data []byte, r *Report) {
	t.Helper()
	d := msgpack.NewDecoder(bytes.NewReader(data))
	same := func(field string, got *big.Int) {
		v, err := d.DecodeInterface()
		want, ok := new(big.Int), true
		switch v := v.(type) {
		case int8:
			want.SetInt64(int64(v))
		case int16:
			want.SetInt64(int64(v))
		case int32:
			want.SetInt64(int64(v))
		case int64:
			want.SetInt64(v)
		case uint8:
			want.SetUint64(uint64(v))
		case uint16:
			want.SetUint64(uint64(v))
		case uint32:
			want.SetUint64(uint64(v))
		case uint64:
			want.SetUint64(v)
		default:
			ok = false
		}
		if err != nil || !ok || want.Cmp(got) != 0 {
			t.Fatalf("%s decoded to %v, the body holds %v (%T, %v)", field, got, v, v, err)
		}
	}
	n, _ := d.DecodeMapLen()
	for range n {
		switch k, _ := d.DecodeString(); k {
		case "v":
			same("v", big.NewInt(int64(r.V)))
		case "full_types":
			l, _ := d.DecodeArrayLen()
			for j := range max(l, 0) {
				same("full_types", big.NewInt(int64(r.FullTypes[j])))
			}
		case "messages":
			l, _ := d.DecodeArrayLen()
			for i := range max(l, 0) {
				m := &r.Messages[i]
				fields, _ := d.DecodeMapLen()
				for range fields {
					switch k, _ := d.DecodeString(); k {
					case "serial":
						same("serial", new(big.Int).SetUint64(m.Serial))
					case "time":
						same("time", big.NewInt(m.Time))
					case "topic_type":
						same("topic_type", big.NewInt(int64(m.TopicType)))
					case "state":
						same("state", big.NewInt(int64(m.State)))
					case "error":
						same("error", big.NewInt(int64(m.Error)))
					default:
						_ = d.Skip()
					}
				}
			}
		default:
			_ = d.Skip()
		}
	}
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
	tok, _ := SignCredential(Credential{Client: "c", Site: "P01", Key: make([]byte, 32), Inc: 1, Issued: 1, Expires: 1 << 50}, seed)
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
