package schema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"runtime"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// Hardening of both decoders (issue 11): one body must never crash, freeze, fill or fool a
// site. Each test here failed on the decoders before it: see the comment on each.

// mpBody builds a msgpack body by hand, so that tests can write any code they like.
type mpBody struct {
	bytes.Buffer
	e *msgpack.Encoder
}

func newMP() *mpBody {
	w := &mpBody{}
	w.e = msgpack.NewEncoder(&w.Buffer)
	return w
}

func (w *mpBody) mapLen(n int) *mpBody   { _ = w.e.EncodeMapLen(n); return w }
func (w *mpBody) arrayLen(n int) *mpBody { _ = w.e.EncodeArrayLen(n); return w }
func (w *mpBody) str(s string) *mpBody   { _ = w.e.EncodeString(s); return w }
func (w *mpBody) uint(u uint64) *mpBody  { _ = w.e.EncodeUint(u); return w }
func (w *mpBody) int(v int64) *mpBody    { _ = w.e.EncodeInt(v); return w }
func (w *mpBody) raw(b ...byte) *mpBody  { w.Write(b); return w }

// mpReport is a valid one-message report in which the value of one field (v, full_types or a
// message field) is replaced by what value writes.
func mpReport(field string, value func(*mpBody)) []byte {
	w := newMP()
	top := map[string]func(*mpBody){
		"v":      func(w *mpBody) { w.uint(1) },
		"client": func(w *mpBody) { w.str("c") },
		"site":   func(w *mpBody) { w.str("P01") },
	}
	msg := map[string]func(*mpBody){
		"serial": func(w *mpBody) { w.uint(1) }, "time": func(w *mpBody) { w.int(1764100000000) },
		"topic_type": func(w *mpBody) { w.uint(500) }, "topic_id": func(w *mpBody) { w.str("u") },
		"state": func(w *mpBody) { w.uint(2) }, "error": func(w *mpBody) { w.int(0) },
	}
	if _, ok := msg[field]; ok {
		msg[field] = value
	} else {
		top[field] = value
	}
	w.mapLen(len(top) + 1)
	for _, k := range []string{"v", "client", "site", "full_types"} {
		if f, ok := top[k]; ok {
			w.str(k)
			f(w)
		}
	}
	w.str("messages").arrayLen(1).mapLen(len(msg))
	for _, k := range []string{"serial", "time", "topic_type", "topic_id", "state", "error"} {
		w.str(k)
		msg[k](w)
	}
	return bytes.Clone(w.Bytes())
}

// jsonReport is the same in JSON: value is the field's JSON text.
func jsonReport(field, value string) []byte {
	top := map[string]string{"v": "1", "client": `"c"`, "site": `"P01"`}
	msg := map[string]string{"serial": "1", "time": "1764100000000", "topic_type": "500", "topic_id": `"u"`, "state": "2", "error": "0"}
	if _, ok := msg[field]; ok {
		msg[field] = value
	} else {
		top[field] = value
	}
	var b strings.Builder
	b.WriteString("{")
	for _, k := range []string{"v", "client", "site", "full_types"} {
		if v, ok := top[k]; ok {
			fmt.Fprintf(&b, "%q: %s, ", k, v)
		}
	}
	b.WriteString(`"messages": [{`)
	for i, k := range []string{"serial", "time", "topic_type", "topic_id", "state", "error"} {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q: %s", k, msg[k])
	}
	b.WriteString("}]}")
	return []byte(b.String())
}

func wantField(t *testing.T, err error, field, reason string) {
	t.Helper()
	var fe *FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("got %v, want a field error naming %s", err, field)
	}
	if fe.Field != field || !strings.Contains(fe.Reason, reason) {
		t.Fatalf("got field %q: %q, want field %q: …%s…", fe.Field, fe.Reason, field, reason)
	}
}

// deepArrays nests n one-element arrays around nil.
func deepArrays(n int) []byte {
	b := bytes.Repeat([]byte{0x91}, n+1)
	b[n] = 0xc0
	return b
}

// Before: an unknown key whose value nests 6 million one-element arrays (a 6 MiB body) sent
// msgpack's recursive Skip past the goroutine's stack, and the process died ("fatal error:
// stack overflow", which no recover catches). Nesting is bounded in both encodings, counted
// from the report (1), and the error names the key.
func TestDeepNestingIsRefused(t *testing.T) {
	const deep = 6 << 20
	for name, tc := range map[string]struct {
		body  []byte
		field string
	}{
		"report key": {append(newMP().mapLen(1).str("future").Bytes(), deepArrays(deep)...), "future"},
		"message key": {append(newMP().mapLen(1).str("messages").arrayLen(1).mapLen(1).str("x").Bytes(),
			deepArrays(deep)...), "messages[0].x"},
		"maps": {append(newMP().mapLen(1).str("future").Bytes(),
			append(bytes.Repeat([]byte{0x81, 0xa0}, deep), 0xc0)...), "future"},
	} {
		t.Run(name, func(t *testing.T) {
			var r Report
			wantField(t, DecodeReport(tc.body, &r), tc.field, fmt.Sprintf("nested deeper than %d levels", MaxDepth))
		})
	}
	// Exactly MaxDepth levels are accepted: the report map, and 31 arrays under a key.
	ok := append(newMP().mapLen(1).str("future").Bytes(), deepArrays(MaxDepth-1)...)
	var r Report
	if err := DecodeReport(ok, &r); err != nil {
		t.Errorf("%d levels: %v", MaxDepth, err)
	}
	if err := DecodeReport(append(newMP().mapLen(1).str("future").Bytes(), deepArrays(MaxDepth)...), &r); err == nil {
		t.Errorf("%d levels decoded", MaxDepth+1)
	}

	for name, tc := range map[string]struct {
		body  string
		field string
	}{
		"in a message": {`{"messages": [{"params": ` + strings.Repeat("[", deep) + strings.Repeat("]", deep) + `}]}`, "messages[0]"},
		"messages":     {`{"messages": ` + strings.Repeat("[", deep) + strings.Repeat("]", deep) + `}`, "messages[0]"},
		"report":       {strings.Repeat("[", deep) + strings.Repeat("]", deep), "report"},
	} {
		t.Run("json "+name, func(t *testing.T) {
			var r Report
			wantField(t, DecodeReportJSON([]byte(tc.body), &r, Limits{}), tc.field, "nested deeper")
		})
	}
}

// Before: every integer was read as an int64 or uint64 and converted, so a value wrapped into
// its field's type: topic_type 66036 became 500, state 2^32+3 became 3, error 2^40|5 became
// 5, full_types [66036] passed, a negative serial became a huge one, and nil became 0 — all
// answered 200. The msgpack code's sign decides, and the value must fit the field's type.
func TestIntegersAreExact(t *testing.T) {
	enc := func(f func(*msgpack.Encoder) error) func(*mpBody) { return func(w *mpBody) { _ = f(w.e) } }
	for _, tc := range []struct {
		name, field string
		value       func(*mpBody)
		path, want  string
	}{
		{"topic_type 66036", "topic_type", func(w *mpBody) { w.uint(66036) }, "messages[0].topic_type", "66036 is out of range for uint16"},
		{"topic_type -1", "topic_type", func(w *mpBody) { w.int(-1) }, "messages[0].topic_type", "-1 is out of range for uint16"},
		{"state 2^32+3", "state", func(w *mpBody) { w.uint(1<<32 + 3) }, "messages[0].state", "4294967299 is out of range for int32"},
		{"state int64 2^31", "state", enc(func(e *msgpack.Encoder) error { return e.EncodeInt64(1 << 31) }), "messages[0].state", "2147483648 is out of range for int32"},
		{"error 2^40|5", "error", func(w *mpBody) { w.uint(1<<40 | 5) }, "messages[0].error", "1099511627781 is out of range for int32"},
		{"error unsigned HRESULT", "error", enc(func(e *msgpack.Encoder) error { return e.EncodeUint32(0x80070005) }), "messages[0].error", "2147942405 is out of range for int32"},
		{"error below int32", "error", func(w *mpBody) { w.int(math.MinInt32 - 1) }, "messages[0].error", "-2147483649 is out of range for int32"},
		{"serial -1", "serial", func(w *mpBody) { w.int(-1) }, "messages[0].serial", "-1 is out of range for uint64"},
		{"serial int64 min", "serial", enc(func(e *msgpack.Encoder) error { return e.EncodeInt64(math.MinInt64) }), "messages[0].serial", "-9223372036854775808 is out of range for uint64"},
		{"time 2^63", "time", func(w *mpBody) { w.uint(1 << 63) }, "messages[0].time", "9223372036854775808 is out of range for int64"},
		{"v 2^64-1", "v", func(w *mpBody) { w.uint(math.MaxUint64) }, "v", "18446744073709551615 is out of range for int"},
		{"full_types 66036", "full_types", func(w *mpBody) { w.arrayLen(1).uint(66036) }, "full_types[0]", "66036 is out of range for uint16"},
		{"state nil", "state", func(w *mpBody) { w.raw(0xc0) }, "messages[0].state", "must be int32, got msgpack nil"},
		{"serial nil", "serial", func(w *mpBody) { w.raw(0xc0) }, "messages[0].serial", "must be uint64, got msgpack nil"},
		{"state float", "state", enc(func(e *msgpack.Encoder) error { return e.EncodeFloat64(2) }), "messages[0].state", "got msgpack float"},
		{"state bool", "state", func(w *mpBody) { w.raw(0xc3) }, "messages[0].state", "got msgpack bool"},
		{"state string", "state", func(w *mpBody) { w.str("2") }, "messages[0].state", "got msgpack string"},
		{"error nil", "error", func(w *mpBody) { w.raw(0xc0) }, "messages[0].error", "got msgpack nil"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r Report
			wantField(t, DecodeReport(mpReport(tc.field, tc.value), &r), tc.path, tc.want)
		})
	}
	// The extremes of each type are exact, whatever width carries them.
	for _, tc := range []struct {
		name, field string
		value       func(*mpBody)
		check       func(*Report) bool
	}{
		{"serial 2^64-1", "serial", func(w *mpBody) { w.uint(math.MaxUint64) }, func(r *Report) bool { return r.Messages[0].Serial == math.MaxUint64 }},
		{"serial as int8", "serial", enc(func(e *msgpack.Encoder) error { return e.EncodeInt8(7) }), func(r *Report) bool { return r.Messages[0].Serial == 7 }},
		{"time int64 min", "time", func(w *mpBody) { w.int(math.MinInt64) }, func(r *Report) bool { return r.Messages[0].Time == math.MinInt64 }},
		{"time uint64 2^63-1", "time", enc(func(e *msgpack.Encoder) error { return e.EncodeUint64(math.MaxInt64) }), func(r *Report) bool { return r.Messages[0].Time == math.MaxInt64 }},
		{"signed HRESULT", "error", func(w *mpBody) { w.int(-2147024891) }, func(r *Report) bool { return r.Messages[0].Error == -2147024891 }},
		{"error int32 min", "error", func(w *mpBody) { w.int(math.MinInt32) }, func(r *Report) bool { return r.Messages[0].Error == math.MinInt32 }},
		{"error int32 max as uint32", "error", enc(func(e *msgpack.Encoder) error { return e.EncodeUint32(math.MaxInt32) }), func(r *Report) bool { return r.Messages[0].Error == math.MaxInt32 }},
		{"topic_type 65535 as uint64", "topic_type", enc(func(e *msgpack.Encoder) error { return e.EncodeUint64(65535) }), func(r *Report) bool { return r.Messages[0].TopicType == 65535 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r Report
			if err := DecodeReport(mpReport(tc.field, tc.value), &r); err != nil || !tc.check(&r) {
				t.Fatalf("err %v, report %+v", err, r.Messages)
			}
		})
	}
	// JSON refused wrapped values already; it now also refuses null for an integer (it was 0).
	for _, tc := range []struct{ field, value, path, want string }{
		{"topic_type", "66036", "messages[0].topic_type", "66036 is out of range for uint16"},
		{"state", "4294967299", "messages[0].state", "4294967299 is out of range for int32"},
		{"error", "2147942405", "messages[0].error", "2147942405 is out of range for int32"},
		{"serial", "-1", "messages[0].serial", "-1 is out of range for uint64"},
		{"serial", "18446744073709551616", "messages[0].serial", "18446744073709551616 is out of range for uint64"},
		{"time", "-9223372036854775809", "messages[0].time", "out of range for int64"},
		{"full_types", "[66036]", "full_types[0]", "66036 is out of range for uint16"},
		{"state", "null", "messages[0].state", "must be int32, got JSON null"},
		{"state", "2.0", "messages[0].state", "must be int32, got JSON number 2.0"},
		{"state", "2e0", "messages[0].state", "must be int32, got JSON number 2e0"},
		{"state", `"2"`, "messages[0].state", "must be int32, got JSON string"},
		{"v", "true", "v", "must be int, got JSON bool"},
	} {
		t.Run("json "+tc.field+" "+tc.value, func(t *testing.T) {
			var r Report
			wantField(t, DecodeReportJSON(jsonReport(tc.field, tc.value), &r, Limits{}), tc.path, tc.want)
		})
	}
	var r Report
	if err := DecodeReportJSON(jsonReport("error", "-2147024891"), &r, Limits{}); err != nil || r.Messages[0].Error != -2147024891 {
		t.Errorf("signed HRESULT in JSON: %v %+v", err, r.Messages)
	}
}

// Before: messages, params and full types grew as they decoded, so only the element's own
// bytes bounded them: one 8 MiB msgpack body of empty maps cost 1.8 GiB and 10 s before the
// 413, the same in JSON 771 MiB. The count is now checked against the limit and the bytes left
// before any element decodes, and too many messages is ErrTooManyMessages (413 at ingest).
func TestTooManyMessagesIsRefusedBeforeDecoding(t *testing.T) {
	const size = 8 << 20
	mp := newMP().mapLen(1).str("messages").raw(0xdd, 0, 0, 0, 0).Bytes()
	n := size - len(mp)
	mp[len(mp)-4], mp[len(mp)-3], mp[len(mp)-2], mp[len(mp)-1] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
	mp = append(mp, bytes.Repeat([]byte{0x80}, n)...)
	js := []byte(`{"v": 1, "client": "c", "site": "P01", "messages": [{}` + strings.Repeat(",{}", (size-60)/3) + `]}`)
	for name, decode := range map[string]func(*Report) error{
		"msgpack": func(r *Report) error { return DecodeReportLimits(mp, r, Limits{}) },
		"json":    func(r *Report) error { return DecodeReportJSON(js, r, Limits{}) },
	} {
		t.Run(name, func(t *testing.T) {
			var r Report
			var err error
			alloc := allocated(func() { err = decode(&r) })
			wantField(t, err, "messages", "more than the 50000")
			if !errors.Is(err, ErrTooManyMessages) {
				t.Errorf("%v is not ErrTooManyMessages", err)
			}
			if alloc > 1<<20 {
				t.Errorf("refusing %d MiB of empty messages allocated %d MiB", size>>20, alloc>>20)
			}
		})
	}
	// At the limit and one above, with a site's own limit.
	lim := DefaultLimits
	lim.MaxMessages = 3
	for n, want := range map[int]bool{3: false, 4: true} {
		r := sampleReport()
		r.Messages = nil
		for i := range n {
			r.Messages = append(r.Messages, StateMessage{Serial: uint64(i + 1), TopicType: 701})
		}
		var b bytes.Buffer
		_ = EncodeReport(&b, r)
		js, _ := json.Marshal(r)
		var got Report
		if err := DecodeReportLimits(b.Bytes(), &got, lim); errors.Is(err, ErrTooManyMessages) != want {
			t.Errorf("msgpack, %d messages: %v", n, err)
		}
		if err := DecodeReportJSON(js, &got, lim); errors.Is(err, ErrTooManyMessages) != want {
			t.Errorf("json, %d messages: %v", n, err)
		}
	}
}

// Counts beyond their limit or beyond the bytes left are refused from the header, and a
// length beyond its limit before the string is read.
func TestCountsAndLengthsAreCheckedFirst(t *testing.T) {
	for name, tc := range map[string]struct {
		body        []byte
		field, want string
	}{
		"params over the limit": {newMP().mapLen(1).str("messages").arrayLen(1).mapLen(1).str("params").raw(0xdc, 0, 17).raw(bytes.Repeat([]byte{0xa0}, 17)...).Bytes(),
			"messages[0].params", "17 params, at most 16 allowed"},
		"full types over the limit": {newMP().mapLen(1).str("full_types").raw(0xdc, 0, 17).raw(bytes.Repeat([]byte{1}, 17)...).Bytes(), "full_types", "17 full types, at most 16 allowed"},
		"params beyond the body": {newMP().mapLen(1).str("messages").arrayLen(1).mapLen(1).str("params").raw(0xdc, 0, 3, 0xa0).Bytes(),
			"messages[0].params", "claims 3 elements, 1 bytes left"},
		"map beyond the body":   {newMP().raw(0xdf, 0xff, 0xff, 0xff, 0xff, 0xa0).Bytes(), "report", "claims 4294967295 entries"},
		"unknown beyond":        {newMP().mapLen(1).str("x").raw(0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0).Bytes(), "x", "claims 4294967295 values"},
		"client over its limit": {newMP().mapLen(1).str("client").raw(0xdb, 0x7f, 0xff, 0xff, 0xf0, 'x').Bytes(), "client", "longer than 128 bytes"},
		"param over its limit": {newMP().mapLen(1).str("messages").arrayLen(1).mapLen(1).str("params").arrayLen(1).raw(0xda, 0x04, 0x01).Bytes(),
			"messages[0].params[0]", "longer than 1024 bytes"},
		"repeated key":  {newMP().mapLen(2).str("client").str("a").str("client").str("b").Bytes(), "client", "repeated key"},
		"message nil":   {newMP().mapLen(1).str("messages").arrayLen(1).raw(0xc0).Bytes(), "messages[0]", "must be a map, got msgpack nil"},
		"report nil":    {[]byte{0xc0}, "report", "must be a map, got msgpack nil"},
		"empty body":    {nil, "report", "truncated"},
		"long key name": {newMP().mapLen(1).str(strings.Repeat("k", 100)).raw(0xc1).Bytes(), `"` + strings.Repeat("k", 64) + `"…`, "0xc1"},
	} {
		t.Run(name, func(t *testing.T) {
			var r Report
			wantField(t, DecodeReport(tc.body, &r), tc.field, tc.want)
		})
	}
}

// allocated returns the bytes f allocates.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// adversarialBodies are bodies of both encodings shaped to make a decoder allocate the most
// per byte, most near the 8 MiB body limit; dense ones as small as the shape allows.
func adversarialBodies() map[string][]byte {
	const size = 8 << 20
	bodies := map[string][]byte{}
	mpMessages := func(n int, msg func(w *mpBody, i int)) []byte {
		w := newMP().mapLen(4).str("v").uint(1).str("client").str("c").str("site").str("P01").str("messages").arrayLen(n)
		for i := range n {
			msg(w, i)
		}
		return bytes.Clone(w.Bytes())
	}
	jsonMessages := func(n int, msg func(i int) string) []byte {
		var b strings.Builder
		b.WriteString(`{"v":1,"client":"c","site":"P01","messages":[`)
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(msg(i))
		}
		b.WriteString("]}")
		return []byte(b.String())
	}
	max := DefaultLimits.MaxMessages
	full := func(w *mpBody, i int) *mpBody {
		return w.str("serial").uint(uint64(i + 1)).str("time").int(1764100000000).str("topic_type").uint(500).
			str("topic_id").str("KB5044284").str("state").uint(2).str("error").int(-2145124341)
	}
	bodies["msgpack empty messages at the limit"] = mpMessages(max, func(w *mpBody, _ int) { w.mapLen(0) })
	bodies["msgpack minimal messages at the limit"] = mpMessages(max, func(w *mpBody, i int) {
		w.mapLen(2).str("serial").uint(uint64(i + 1)).str("topic_type").uint(701)
	})
	bodies["msgpack 16 empty params, minimal messages"] = mpMessages(max, func(w *mpBody, i int) {
		w.mapLen(3).str("serial").uint(uint64(i + 1)).str("topic_type").uint(701).str("params").arrayLen(16)
		w.raw(bytes.Repeat([]byte{0xa0}, 16)...)
	})
	bodies["msgpack 16 empty params, full messages"] = mpMessages(max, func(w *mpBody, i int) {
		full(w.mapLen(7), i).str("params").arrayLen(16)
		w.raw(bytes.Repeat([]byte{0xa0}, 16)...)
	})
	bodies["msgpack 16 one-byte params, full messages"] = mpMessages(max, func(w *mpBody, i int) {
		full(w.mapLen(7), i).str("params").arrayLen(16)
		w.raw(bytes.Repeat([]byte{0xa1, 'p'}, 16)...)
	})
	long := strings.Repeat("p", 1024)
	bodies["msgpack 16 params of 1 KiB"] = mpMessages(size/(16*1027+80), func(w *mpBody, i int) {
		full(w.mapLen(7), i).str("params").arrayLen(16)
		for range 16 {
			w.str(long)
		}
	})
	bodies["msgpack real messages at the limit"] = mpMessages(max, func(w *mpBody, i int) { full(w.mapLen(6), i) })
	w := newMP().mapLen(1).str("client").raw(0xdb, 0, 0x80, 0, 0)
	bodies["msgpack 8 MiB client"] = append(bytes.Clone(w.Bytes()), bytes.Repeat([]byte{'c'}, size)...)
	unknown := (size - 10) / 2
	w = newMP().mapLen(unknown + 1).str("messages").arrayLen(0)
	bodies["msgpack 4 million unknown keys"] = append(bytes.Clone(w.Bytes()), bytes.Repeat([]byte{0xa0, 0xc0}, unknown)...)
	nest := append(newMP().str("x").Bytes(), deepArrays(MaxDepth-2)...)
	w = newMP().mapLen(size/len(nest) + 1).str("messages").arrayLen(0)
	bodies["msgpack unknown keys nested 32 deep"] = append(bytes.Clone(w.Bytes()), bytes.Repeat(nest, size/len(nest))...)

	bodies["json empty messages at the limit"] = jsonMessages(max, func(int) string { return "{}" })
	bodies["json minimal messages at the limit"] = jsonMessages(max, func(i int) string { return fmt.Sprintf(`{"serial":%d,"topic_type":701}`, i+1) })
	bodies["json 16 empty params, minimal messages"] = jsonMessages(max, func(i int) string {
		return fmt.Sprintf(`{"serial":%d,"topic_type":701,"params":[%s""]}`, i+1, strings.Repeat(`"",`, 15))
	})
	fullJSON := `"time":1764100000000,"topic_type":500,"topic_id":"KB5044284","state":2,"error":-2145124341`
	bodies["json 16 one-byte params, full messages"] = jsonMessages(max, func(i int) string {
		return fmt.Sprintf(`{"serial":%d,%s,"params":[%s"p"]}`, i+1, fullJSON, strings.Repeat(`"p",`, 15))
	})
	bodies["json 16 params of 1 KiB"] = jsonMessages(size/(16*1027+120), func(i int) string {
		return fmt.Sprintf(`{"serial":%d,%s,"params":[%s"%s"]}`, i+1, fullJSON, strings.Repeat(`"`+long+`",`, 15), long)
	})
	escaped := strings.Repeat(`\u00e9`, 1024/2)
	bodies["json 16 params of escapes"] = jsonMessages(size/(16*(6*512+3)+120), func(i int) string {
		return fmt.Sprintf(`{"serial":%d,%s,"params":[%s"%s"]}`, i+1, fullJSON, strings.Repeat(`"`+escaped+`",`, 15), escaped)
	})
	bodies["json real messages at the limit"] = jsonMessages(max, func(i int) string { return fmt.Sprintf(`{"serial":%d,%s}`, i+1, fullJSON) })
	bodies["json 8 MiB client"] = []byte(`{"client":"` + strings.Repeat("c", size) + `"}`)
	bodies["json 8 MiB of whitespace"] = []byte(`{"messages":[` + strings.Repeat(" ", size) + `]}`)
	bodies["json message nested 32 deep, repeated"] = jsonMessages(size/(2*MaxDepth+24), func(i int) string {
		return `{"params":` + strings.Repeat("[", MaxDepth-3) + strings.Repeat("]", MaxDepth-3) + `}`
	})
	return bodies
}

// The goal (SECURITY.md): no body makes a decoder allocate more than AllocFactor× its size
// (plus allocSlack). Before, bodies of empty messages allocated 72 bytes per byte (msgpack,
// 1 byte per message) or 24 (JSON), and a JSON string of 8 MiB was buffered three times over.
func TestDecodeAllocationIsBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("decodes about 100 MiB of bodies")
	}
	bodies := adversarialBodies()
	for _, name := range sortedKeys(bodies) {
		body := bodies[name]
		var r Report
		var err error
		alloc := allocated(func() {
			if strings.HasPrefix(name, "json") {
				err = DecodeReportJSON(body, &r, Limits{})
			} else {
				err = DecodeReportLimits(body, &r, Limits{})
			}
		})
		ratio := float64(alloc) / float64(len(body))
		outcome := "decoded"
		if err != nil {
			outcome = err.Error()
			if len(outcome) > 90 {
				outcome = outcome[:90] + "…"
			}
		}
		t.Logf("%-44s %8d B → %9d B allocated, %.2f×  (%s)", name, len(body), alloc, ratio, outcome)
		if alloc > uint64(AllocFactor*len(body)+allocSlack+1024) { // 1 KiB: the error, if any
			t.Errorf("%s: %d bytes allocated %d (%.2f×)", name, len(body), alloc, ratio)
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	for i := range keys {
		for j := i + 1; j < len(keys); j++ {
			if keys[j] < keys[i] {
				keys[i], keys[j] = keys[j], keys[i]
			}
		}
	}
	return keys
}

// Ids and params that are not text were accepted (topic_id "\xff" later broke a report).
func TestValidateRefusesIDsThatAreNotText(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*Report)
		field  string
	}{
		{"topic id not UTF-8", func(r *Report) { r.Messages[0].TopicID = "KB\xff" }, "messages[0].topic_id"},
		{"topic id NUL", func(r *Report) { r.Messages[0].TopicID = "KB\x00" }, "messages[0].topic_id"},
		{"client newline", func(r *Report) { r.Client = "pc\n1" }, "client"},
		{"client not UTF-8", func(r *Report) { r.Client = "\xc3\x28" }, "client"},
		{"site DEL", func(r *Report) { r.Site = "P0\x7f" }, "site"},
		{"site C1", func(r *Report) { r.Site = "P0\u009b" }, "site"},
		{"param not UTF-8", func(r *Report) { r.Messages[1].Params = []string{"ok", "\xed\xa0\x80"} }, "messages[1].params[1]"},
		{"too many full types", func(r *Report) { r.FullTypes = make([]TopicType, MaxFullTypes+1) }, "full_types"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := sampleReport()
			tc.mutate(r)
			var fe *FieldError
			if err := r.Validate(Limits{}); !errors.As(err, &fe) || fe.Field != tc.field {
				t.Errorf("err = %v, want field %s", err, tc.field)
			}
		})
	}
	r := sampleReport()
	r.Client, r.Messages[0].TopicID, r.Messages[1].Params = "pc-é-1", "KB·5044284", []string{"line 1\nline 2\ttab"}
	if err := r.Validate(Limits{}); err != nil {
		t.Errorf("text ids and params with newlines: %v", err)
	}
}

// The JSON decoder keeps ingest's rules (unknown fields, type errors with a path, syntax
// errors with an offset, one value) and adds the msgpack decoder's.
func TestDecodeReportJSONErrorsNameTheField(t *testing.T) {
	for _, tc := range []struct{ name, body, field, want string }{
		{"unknown field", `{"v":1,"clientId":"c"}`, "clientId", "unknown field"},
		{"unknown message field", `{"messages":[{"serial":1},{"topicType":500}]}`, "messages[1].topicType", "unknown field"},
		{"case matters", `{"Client":"c"}`, "Client", "unknown field"},
		{"type error", `{"messages":[{},{},{"state":"x"}]}`, "messages[2].state", "must be int32, got JSON string"},
		{"param type", `{"messages":[{"params":["a",1]}]}`, "messages[0].params[1]", "must be string, got JSON number 1"},
		{"message type", `{"messages":[[]]}`, "messages[0]", "must be an object, got JSON array"},
		{"report type", `[]`, "report", "must be an object, got JSON array"},
		{"syntax", `{"v":1,"client":"c" "site":"P01"}`, "body", "invalid JSON at byte 20: invalid character '\"' after object key:value pair"},
		{"syntax in a message", `{"messages":[{"serial":1},{"serial":2,}]}`, "body", "invalid JSON at byte 38"},
		{"syntax before a type error", `{"messages":[{"state":"x"},{"serial":01}]}`, "body", "at byte 38"},
		{"truncated", `{"v":1,"client":"c`, "body", "unexpected end of input"},
		{"control in string", "{\"client\":\"a\tb\"}", "body", "in string literal"},
		{"two values", `{"v":1} {"v":1}`, "body", "more than one JSON value"},
		{"trailing garbage", `{"v":1} x`, "body", "invalid character 'x' after top-level value"},
		{"trailing bracket", `{"v":1}]`, "body", "after top-level value"},
		{"repeated field", `{"client":"a","client":"b"}`, "client", "repeated field"},
		{"repeated message field", `{"messages":[{"state":1,"state":2}]}`, "messages[0].state", "repeated field"},
		{"message null", `{"messages":[null]}`, "messages[0]", "must be an object, got JSON null"},
		{"invalid UTF-8", "{\"client\":\"\xff\"}", "client", "not valid UTF-8"},
		{"lone surrogate", `{"messages":[{"topic_id":"\ud800x"}]}`, "messages[0]", "half a surrogate pair"},
		{"too many params", `{"messages":[{"params":[` + strings.Repeat(`"",`, 16) + `""]}]}`, "messages[0].params", "more than the 16 params allowed"},
		{"too long topic id", `{"messages":[{"topic_id":"` + strings.Repeat("u", 129) + `"}]}`, "messages[0].topic_id", "longer than 128 bytes"},
		{"empty", ``, "body", "unexpected end of input"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r Report
			wantField(t, DecodeReportJSON([]byte(tc.body), &r, Limits{}), tc.field, tc.want)
		})
	}
}

// Escapes decode as encoding/json decodes them; nulls are empty strings and arrays.
func TestDecodeReportJSONStrings(t *testing.T) {
	body := `{"v":1,"client":"c\u00e9\"\\\/\b\f\n\r\t","site":"P01","full_types":null,"messages":[
		{"serial":1,"topic_type":500,"topic_id":"\ud83d\ude00KB","state":2,"params":["x\u0000y",null]},
		{"serial":2,"topic_type":701,"topic_id":null,"params":null}]}`
	var got, want Report
	if err := DecodeReportJSON([]byte(body), &got, Limits{}); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(body), &want); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprintf("%#v", normalized(got)) != fmt.Sprintf("%#v", normalized(want)) {
		t.Errorf("got  %#v\nwant %#v", got, want)
	}
}

// Via, set by ingest on relayed reports, survives both codecs, and is an id like the others.
func TestViaRoundTrips(t *testing.T) {
	rep := Report{V: Version, Client: "GUID:1", Site: "P01", Via: "gw-p01",
		Messages: []StateMessage{{Serial: 1, Time: 1, TopicType: 500, TopicID: "u", State: 2}}}
	var b bytes.Buffer
	if err := EncodeReport(&b, &rep); err != nil {
		t.Fatal(err)
	}
	var got Report
	if err := DecodeReportLimits(b.Bytes(), &got, DefaultLimits); err != nil || got.Via != "gw-p01" {
		t.Fatalf("msgpack: %v, via %q", err, got.Via)
	}
	js, _ := json.Marshal(&rep)
	got = Report{}
	if err := DecodeReportJSON(js, &got, DefaultLimits); err != nil || got.Via != "gw-p01" {
		t.Fatalf("JSON %s: %v, via %q", js, err, got.Via)
	}
	rep.Via = "gw\n1"
	var fe *FieldError
	if err := rep.Validate(DefaultLimits); !errors.As(err, &fe) || fe.Field != "via" {
		t.Errorf("via with a line break: %v, want a FieldError naming via", err)
	}
}
