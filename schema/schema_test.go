package schema

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

var update = flag.Bool("update", false, "rewrite golden fixtures")

func sampleReport() *Report {
	return &Report{V: Version, Client: "9f1c2d3e-0000-4000-8000-000000000001", Site: "P01", FullTypes: []TopicType{500},
		Messages: []StateMessage{
			{Serial: 1, Time: 1764100000000, TopicType: 500, TopicID: "KB5044284", State: 2},
			{Serial: 2, Time: 1764100000000, TopicType: 402, TopicID: "KB5044284", State: 11, Error: -2145124341, Params: []string{"attempt 2"}},
			{Serial: 3, Time: 1764100000001, TopicType: 701, State: 0},
		}}
}

// The golden fixture pins the wire encoding: a change that alters bytes clients send or
// Kafka holds must be deliberate (run with -update and bump Version if incompatible).
func TestGoldenMsgpack(t *testing.T) {
	var buf bytes.Buffer
	if err := EncodeReport(&buf, sampleReport()); err != nil {
		t.Fatal(err)
	}
	const path = "testdata/report_v1.msgpack"
	if *update {
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	golden, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("missing golden fixture (run go test ./schema -update): %v", err)
	}
	if !bytes.Equal(buf.Bytes(), golden) {
		t.Errorf("encoding changed:\n got  %x\n want %x", buf.Bytes(), golden)
	}
	var got Report
	if err := DecodeReport(golden, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&got, sampleReport()) {
		t.Errorf("decoded golden = %+v", got)
	}
}

// The same report in JSON (the documented field names) decodes to the same value.
func TestJSONMatchesMsgpack(t *testing.T) {
	raw, err := os.ReadFile("testdata/report_v1.json")
	if err != nil {
		t.Fatal(err)
	}
	var got Report
	if err := DecodeReportJSON(raw, &got, Limits{}); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&got, sampleReport()) {
		t.Errorf("json report = %+v", got)
	}
	got = Report{}
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&got, sampleReport()) {
		t.Errorf("json report (encoding/json) = %+v", got)
	}
}

// A generic msgpack encoder (another language's client) producing a map with the same names
// is read the same, and unknown keys are skipped.
func TestDecodesGenericMsgpackAndSkipsUnknownKeys(t *testing.T) {
	b, err := msgpack.Marshal(map[string]any{
		"v": 1, "client": "c", "site": "P01", "future_field": []int{1, 2},
		"messages": []map[string]any{{"serial": 5, "time": 1, "topic_type": 500, "topic_id": "u", "state": 3, "error": 0, "new": "x"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var r Report
	if err := DecodeReport(b, &r); err != nil {
		t.Fatal(err)
	}
	if r.Client != "c" || len(r.Messages) != 1 || r.Messages[0].Serial != 5 || r.Messages[0].State != 3 {
		t.Errorf("decoded %+v", r)
	}
}

func TestDecodeErrorsNameTheField(t *testing.T) {
	for name, tc := range map[string]struct {
		v     any
		field string
	}{
		"not a map":       {[]int{1}, "report"},
		"client number":   {map[string]any{"client": 5}, "client"},
		"state string":    {map[string]any{"messages": []any{map[string]any{"state": "x"}}}, "messages[0].state"},
		"serial negative": {map[string]any{"messages": []any{map[string]any{"serial": "1"}}}, "messages[0].serial"},
	} {
		t.Run(name, func(t *testing.T) {
			b, _ := msgpack.Marshal(tc.v)
			var r Report
			err := DecodeReport(b, &r)
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field {
				t.Errorf("err = %v, want field %s", err, tc.field)
			}
		})
	}
	var r Report
	b, _ := msgpack.Marshal(map[string]any{"v": 1})
	if err := DecodeReport(append(b, 0x01), &r); err == nil || !strings.Contains(err.Error(), "after the end") {
		t.Errorf("trailing bytes: %v", err)
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*Report)
		field  string
	}{
		{"valid", func(*Report) {}, ""},
		{"version", func(r *Report) { r.V = 2 }, "v"},
		{"no client", func(r *Report) { r.Client = "" }, "client"},
		{"long client", func(r *Report) { r.Client = strings.Repeat("x", 200) }, "client"},
		{"no site", func(r *Report) { r.Site = "" }, "site"},
		{"no messages", func(r *Report) { r.Messages = nil }, "messages"},
		{"full type unknown", func(r *Report) { r.FullTypes = []TopicType{42} }, "full_types[0]"},
		{"full type unkeyed", func(r *Report) { r.FullTypes = []TopicType{701} }, "full_types[0]"},
		{"serial zero", func(r *Report) { r.Messages[1].Serial = 0 }, "messages[1].serial"},
		{"serial repeated", func(r *Report) { r.Messages[2].Serial = 1 }, "messages[2].serial"},
		{"unknown topic", func(r *Report) { r.Messages[0].TopicType = 499 }, "messages[0].topic_type"},
		{"500 state 4", func(r *Report) { r.Messages[0].State = 4 }, "messages[0].state"},
		{"402 state 14 ok", func(r *Report) { r.Messages[1].State = 14 }, ""},
		{"402 state 15", func(r *Report) { r.Messages[1].State = 15 }, "messages[1].state"},
		{"301 state 10 ok", func(r *Report) { r.Messages[0].TopicType = 301; r.Messages[0].State = 10 }, ""},
		{"501 state 7", func(r *Report) { r.Messages[0].TopicType = 501; r.Messages[0].State = 7 }, "messages[0].state"},
		{"negative state", func(r *Report) { r.Messages[0].State = -1 }, "messages[0].state"},
		{"keyed without id", func(r *Report) { r.Messages[0].TopicID = "" }, "messages[0].topic_id"},
		{"heartbeat without id ok", func(r *Report) { r.Messages[2].TopicID = "" }, ""},
		{"too many params", func(r *Report) { r.Messages[1].Params = make([]string, 17) }, "messages[1].params"},
		{"long param", func(r *Report) { r.Messages[1].Params = []string{strings.Repeat("p", 2000)} }, "messages[1].params[0]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := sampleReport()
			c.mutate(r)
			err := r.Validate(Limits{})
			if c.field == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != c.field || fe.Reason == "" {
				t.Errorf("err = %v, want field %s", err, c.field)
			}
		})
	}
}

func TestStateNames(t *testing.T) {
	if got := TopicUpdateCompliance.StateName(ComplianceInstalled); got != "Installed" {
		t.Errorf("500/3 = %q", got)
	}
	if got := TopicUpdateEnforcement.StateName(14); got != "Failed to download" {
		t.Errorf("402/14 = %q", got)
	}
	if got := TopicDeploymentEnforcement.StateCount(); got != 11 {
		t.Errorf("301 has %d states", got)
	}
	if TopicType(42).Known() || TopicType(42).String() != "topic type 42" {
		t.Error("unknown topic type")
	}
}

func TestMigrationsAreNumberedAndIdempotentlyWritten(t *testing.T) {
	ms, err := Migrations()
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range ms {
		if m.Version != i+1 {
			t.Errorf("migration %d has version %d: versions must be 1, 2, 3…", i, m.Version)
		}
		for _, st := range m.Statements {
			// A backfill INSERT … SELECT into a ReplacingMergeTree table re-inserts identical
			// rows when re-run, which the table collapses.
			// A RENAME TABLE is skipped when its target exists (renamedBefore).
			if !strings.Contains(st, "IF NOT EXISTS") && !renameStatement.MatchString(st) && !strings.Contains(st, "CREATE OR REPLACE VIEW") && !strings.HasPrefix(st, "INSERT INTO {db}.client_scans") &&
				!strings.HasPrefix(st, "INSERT INTO {db}.agg_fences") {
				t.Errorf("%04d_%s: statement without IF NOT EXISTS cannot be re-run: %.60s", m.Version, m.Name, st)
			}
			if !strings.Contains(st, "{db}.") {
				t.Errorf("%04d_%s: statement does not qualify tables with {db}: %.60s", m.Version, m.Name, st)
			}
		}
	}
}

func BenchmarkEncodeReport300(b *testing.B) {
	r := scanReport(300)
	var buf bytes.Buffer
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		buf.Reset()
		if err := EncodeReport(&buf, r); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(buf.Len()))
	b.ReportMetric(float64(b.N*300)/b.Elapsed().Seconds(), "msgs/s")
}

func BenchmarkDecodeReport300(b *testing.B) {
	var buf bytes.Buffer
	_ = EncodeReport(&buf, scanReport(300))
	var r Report
	b.ReportAllocs()
	b.SetBytes(int64(buf.Len()))
	for i := 0; i < b.N; i++ {
		if err := DecodeReport(buf.Bytes(), &r); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*300)/b.Elapsed().Seconds(), "msgs/s")
}

// JSON is the other wire form; encoding/json, strict as ingest used it, is the reference.
func BenchmarkDecodeReportJSON300(b *testing.B) {
	body, _ := json.Marshal(scanReport(300))
	b.Run("schema", func(b *testing.B) {
		var r Report
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			if err := DecodeReportJSON(body, &r, Limits{}); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*300)/b.Elapsed().Seconds(), "msgs/s")
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			var r Report
			d := json.NewDecoder(bytes.NewReader(body))
			d.DisallowUnknownFields()
			if err := d.Decode(&r); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*300)/b.Elapsed().Seconds(), "msgs/s")
	})
}

func BenchmarkValidateReport300(b *testing.B) {
	r := scanReport(300)
	for i := 0; i < b.N; i++ {
		if err := r.Validate(Limits{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*300)/b.Elapsed().Seconds(), "msgs/s")
}

func scanReport(n int) *Report {
	r := &Report{V: Version, Client: "9f1c2d3e-0000-4000-8000-000000000001", Site: "P01", FullTypes: []TopicType{500}}
	for i := 0; i < n; i++ {
		r.Messages = append(r.Messages, StateMessage{Serial: uint64(i + 1), Time: 1764100000000, TopicType: 500,
			TopicID: "5f3e2a1b-0000-4000-8000-" + strings.Repeat("0", 8) + string(rune('a'+i%26)) + string(rune('a'+i/26%26)) + "00", State: int32(i % 4)})
	}
	return r
}
