package replicator

import (
	"reflect"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/statepipe/statepipe/schema"
)

// A middle site passes its children's records on unchanged — key, value and headers, the
// vouch with them — and commits them once the parent's broker acknowledged.
func TestForwardPassesRecordsOn(t *testing.T) {
	_, s01 := newKey(t)
	m := &Message{V: wireVersion, Origin: "S01", Epoch: 3, Seq: 4, Heartbeat: &Heartbeat{Parent: "M01"}}
	in := []Record{
		hierRecord(t, 0, "S01", m, s01),
		{Topic: "hier.M01", Partition: 2, Offset: 7, Key: []byte("S02"), Value: []byte("whatever it is"),
			Headers: []Header{{Key: "a", Value: []byte("1")}, {Key: schema.HeaderVouch, Value: []byte("x")}, {Key: "empty"}}},
		{Topic: "hier.M01", Offset: 8, Key: []byte("S03")}, // even a record without a value
	}
	src := &fakeSource{recs: append([]Record(nil), in...)}
	dst := &fakeProducer{}
	reg := prometheus.NewRegistry()
	f := NewForward("CEN", ForwardParams{Source: src, Parent: dst, Registerer: reg})
	runUntilCommitted(t, f.Run, src, len(in))
	_, got, _ := dst.snapshot()
	if len(got) != len(in) {
		t.Fatalf("passed on %d records, want %d", len(got), len(in))
	}
	bytes := 0
	for i, r := range got {
		if string(r.Key) != string(in[i].Key) || string(r.Value) != string(in[i].Value) || !reflect.DeepEqual(r.Headers, in[i].Headers) {
			t.Errorf("record %d: %q %q %v, want %q %q %v", i, r.Key, r.Value, r.Headers, in[i].Key, in[i].Value, in[i].Headers)
		}
		bytes += len(in[i].Key) + len(in[i].Value)
	}
	if n := gathered(t, reg, "statepipe_replicator_forwarded_records_total", "parent", "CEN"); n != 3 {
		t.Errorf("forwarded_records_total %v, want 3", n)
	}
	if n := gathered(t, reg, "statepipe_replicator_forwarded_bytes_total", "parent", "CEN"); n != float64(bytes) {
		t.Errorf("forwarded_bytes_total %v, want %d", n, bytes)
	}
}

// Nothing is committed before the parent's broker acknowledged: a refused produce is tried
// again (after a second) with the same records.
func TestForwardCommitsOnlyAfterProduce(t *testing.T) {
	src := &fakeSource{recs: []Record{{Topic: "hier.M01", Key: []byte("S01"), Value: []byte("v1")}, {Topic: "hier.M01", Offset: 1, Key: []byte("S01"), Value: []byte("v2")}}}
	dst := &fakeProducer{fail: 1, src: src}
	start := time.Now()
	runUntilCommitted(t, NewForward("CEN", ForwardParams{Source: src, Parent: dst}).Run, src, 2)
	calls, got, seen := dst.snapshot()
	if calls != 2 || len(got) != 2 || string(got[0].Value) != "v1" || string(got[1].Value) != "v2" {
		t.Fatalf("%d produce calls, passed on %v; want 2 calls (1 refused), v1 and v2", calls, got)
	}
	for i, n := range seen {
		if n != 0 {
			t.Errorf("produce call %d: %d records already committed, want 0", i+1, n)
		}
	}
	if src.commits != 1 {
		t.Errorf("%d commits, want 1", src.commits)
	}
	if el := time.Since(start); el < time.Second {
		t.Errorf("a retry in %v: want a second's pause", el)
	}
}
