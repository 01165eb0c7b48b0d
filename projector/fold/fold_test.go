package fold

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/statepipe/statepipe/schema"
)

// A case file holds batches of reports (each batch is what one projector insert would see)
// and the current state expected after all of them. The runner folds the batches in order,
// in reverse, and with every report in a batch of its own, through a model of the store's
// ReplacingMergeTree(serial); every order must give the expected state.
type foldCase struct {
	Batches [][]schema.Report `json:"batches"`
	Current []State           `json:"current"`
}

func TestFoldCases(t *testing.T) {
	files, err := filepath.Glob("testdata/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fold cases: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var c foldCase
			if err := json.Unmarshal(raw, &c); err != nil {
				t.Fatalf("bad case file: %v", err)
			}
			for _, b := range c.Batches {
				for i := range b {
					if err := b[i].Validate(schema.Limits{}); err != nil {
						t.Fatalf("case has an invalid report: %v", err)
					}
				}
			}
			want := sortStates(c.Current)
			orders := map[string][][]schema.Report{
				"in order":   c.Batches,
				"reversed":   reversed(c.Batches),
				"one by one": oneByOne(c.Batches),
			}
			for name, batches := range orders {
				got := sortStates(foldIntoStore(batches))
				if !reflect.DeepEqual(got, want) {
					t.Errorf("%s:\n got  %+v\n want %+v", name, got, want)
				}
			}
		})
	}
}

// foldIntoStore folds each batch and merges it the way the store's tables and v_live_state
// do: per key, the row with the greatest serial wins (ReplacingMergeTree(serial) + FINAL),
// and it is live only if its serial is at least the greatest full-report marker of its
// (client, topic type).
func foldIntoStore(batches [][]schema.Report) []State {
	store := map[stateKey]State{}
	greatest := map[[2]any]uint64{}
	for _, reports := range batches {
		b := NewBatch("db")
		for i := range reports {
			b.Add(Record{Report: &reports[i]})
		}
		for _, m := range b.Full.Markers() {
			k := [2]any{m.Client, m.TopicType}
			greatest[k] = max(greatest[k], m.Serial)
		}
		for _, s := range b.Current.States() {
			k := stateKey{s.Client, s.TopicType, s.TopicID}
			if old, ok := store[k]; !ok || old.Serial < s.Serial {
				store[k] = s
			}
		}
	}
	out := make([]State, 0, len(store))
	for _, s := range store {
		if s.Serial >= greatest[[2]any{s.Client, s.TopicType}] {
			out = append(out, s)
		}
	}
	return out
}

func sortStates(s []State) []State {
	out := append([]State{}, s...)
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Client != b.Client {
			return a.Client < b.Client
		}
		if a.TopicType != b.TopicType {
			return a.TopicType < b.TopicType
		}
		return a.TopicID < b.TopicID
	})
	return out
}

func reversed(b [][]schema.Report) [][]schema.Report {
	out := make([][]schema.Report, 0, len(b))
	for i := len(b) - 1; i >= 0; i-- {
		batch := append([]schema.Report{}, b[i]...)
		for l, r := 0, len(batch)-1; l < r; l, r = l+1, r-1 {
			batch[l], batch[r] = batch[r], batch[l]
		}
		out = append(out, batch)
	}
	return out
}

func oneByOne(b [][]schema.Report) [][]schema.Report {
	var out [][]schema.Report
	for _, batch := range b {
		for _, r := range batch {
			out = append(out, []schema.Report{r})
		}
	}
	return out
}

func TestRowsEncodeEveryColumn(t *testing.T) {
	b := NewBatch("db")
	b.Add(Record{Partition: 2, Offset: 9, AcceptedAt: 1700000000000, Report: &schema.Report{V: 1, Client: "c", Site: "P01",
		Messages: []schema.StateMessage{{Serial: 1, Time: 1, TopicType: 500, TopicID: "u", State: 2, Error: -1, Params: []string{"a"}}}}})
	for _, rows := range []schema.Rows{&b.Raw, &b.Current} {
		if got, want := len(rows.Values(0)), len(rows.Columns()); got != want {
			t.Errorf("%s: %d values for %d columns", rows.Table(), got, want)
		}
		if len(rows.AppendRowBinary(nil, 0)) == 0 {
			t.Errorf("%s: empty RowBinary", rows.Table())
		}
	}
}

func BenchmarkFold(b *testing.B) {
	// 300 update-compliance messages per report, as in an initial scan.
	r := &schema.Report{V: 1, Client: "00000000-0000-0000-0000-000000000001", Site: "P01", FullTypes: []schema.TopicType{500}}
	for i := 0; i < 300; i++ {
		r.Messages = append(r.Messages, schema.StateMessage{Serial: uint64(i + 1), Time: 1700000000000,
			TopicType: 500, TopicID: "update-" + string(rune('a'+i%26)) + string(rune('a'+i/26)), State: int32(i % 4)})
	}
	batch := NewBatch("db")
	buf := make([]byte, 0, 1<<20)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		batch.Add(Record{Report: r})
		buf = buf[:0]
		for j := 0; j < batch.Raw.Len(); j++ {
			buf = batch.Raw.AppendRowBinary(buf, j)
		}
		for j := 0; j < batch.Current.Len(); j++ {
			buf = batch.Current.AppendRowBinary(buf, j)
		}
		batch.Reset()
	}
	b.ReportMetric(float64(b.N*len(r.Messages))/b.Elapsed().Seconds(), "msgs/s")
}

func TestASerialNamesOneMessageOfTheBatch(t *testing.T) {
	b := NewBatch("db")
	m := schema.StateMessage{Serial: 7, Time: 5, TopicType: 500, TopicID: "U", State: 2, Params: []string{"a"}}
	b.Add(Record{Report: &schema.Report{Client: "c", Messages: []schema.StateMessage{m}}})
	got, ok := b.AtSerial("c", 7)
	if !ok || !SameMessage(got, &m) {
		t.Fatalf("AtSerial: %+v %v", got, ok)
	}
	if _, ok := b.AtSerial("d", 7); ok {
		t.Error("another client's serial")
	}
	var scratch []byte
	h := MessageHash(&m, &scratch)
	for name, change := range map[string]func(*schema.StateMessage){
		"topic type": func(x *schema.StateMessage) { x.TopicType = 402 },
		"topic id":   func(x *schema.StateMessage) { x.TopicID = "V" },
		"state":      func(x *schema.StateMessage) { x.State = 3 },
		"error":      func(x *schema.StateMessage) { x.Error = 1 },
		"time":       func(x *schema.StateMessage) { x.Time = 6 },
		"params":     func(x *schema.StateMessage) { x.Params = []string{"b"} },
		"boundary":   func(x *schema.StateMessage) { x.TopicID, x.Params = "Ua", nil },
	} {
		o := m
		change(&o)
		if SameMessage(&o, &m) || MessageHash(&o, &scratch) == h {
			t.Errorf("a change of %s is the same message", name)
		}
	}
	o := m
	o.Serial = 8
	if !SameMessage(&o, &m) || MessageHash(&o, &scratch) != h {
		t.Error("the serial is not content")
	}
	b.Reset()
	if _, ok := b.AtSerial("c", 7); ok {
		t.Error("Reset kept the serials")
	}
}

// Reference rows carry a value for every column (deployments with their phases, phase
// releases), and a record of a kind this version does not fold is skipped, not refused.
func TestRefRowsEncodeEveryColumnAndSkipUnknownKinds(t *testing.T) {
	b := NewBatch("db")
	for i, r := range []struct{ key, value string }{
		{"deployments/D", `{"id":"D","updates":["U"],"collection":"C","start":"2026-11-01T00:00:00Z","deadline":"2026-11-08T00:00:00Z","phases":[{"name":"a","share":0.5,"success_pct":95,"soak":"0s"},{"name":"b","success_pct":95,"soak":"0s"}]}`},
		{"phases/D~1", `{"deployment":"D","phase":1,"name":"a","released_at":"2026-11-01T00:00:00Z","reason":"the deployment's start"}`},
		{"rings/R", `{"anything": "a newer version writes"}`},
	} {
		if err := b.AddRef(r.key, []byte(r.value), int64(i), 1); err != nil {
			t.Fatalf("%s: %v", r.key, err)
		}
	}
	if err := b.AddRef("no-kind", []byte(`{}`), 9, 1); err == nil {
		t.Error("a key without a kind was folded")
	}
	if b.RefRecords() != 2 {
		t.Errorf("%d reference records folded, want 2 (the unknown kind skipped)", b.RefRecords())
	}
	tables := map[string]bool{}
	for _, rows := range b.Tables() {
		tables[rows.Table()] = true
		for i := 0; i < rows.Len(); i++ {
			if got, want := len(rows.Values(i)), len(rows.Columns()); got != want {
				t.Errorf("%s: %d values for %d columns", rows.Table(), got, want)
			}
		}
	}
	if !tables["db.ref_deployments"] || !tables["db.ref_phase_releases"] {
		t.Errorf("tables written: %v", tables)
	}
	if v := b.ref[schema.RefDeployments].Values(0)[8]; !strings.Contains(v.(string), `"share":0.5`) {
		t.Errorf("phases column %v", v)
	}
}
