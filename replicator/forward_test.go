package replicator

import (
	"crypto/ed25519"
	"reflect"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// A middle site passes its children's records on unchanged — key, value and headers, the
// vouch with them — and commits them once the parent's broker acknowledged. What its fold
// would refuse — undecodable, of a site not below it, not vouched for by its origin — it does
// not pass on, and counts.
func TestForwardPassesRecordsOn(t *testing.T) {
	s01pub, s01 := newKey(t)
	_, stranger := newKey(t)
	msg := func(origin string, seq uint32) *Message {
		return &Message{V: wireVersion, Origin: origin, Epoch: 3, Seq: seq, Heartbeat: &Heartbeat{Parent: "M01"}}
	}
	good := hierRecord(t, 0, "S01", msg("S01", 4), s01)
	good.Headers = append(good.Headers, Header{Key: "a", Value: []byte("1")}, Header{Key: "empty"})
	in := []Record{
		good,
		{Topic: "hier.M01", Offset: 1, Key: []byte("S02"), Value: []byte("whatever it is")}, // undecodable
		hierRecord(t, 2, "M01", msg("M01", 5), s01),                                         // not below M01
		hierRecord(t, 3, "S01", msg("S01", 6), stranger),                                    // not S01's vouch
		hierRecord(t, 4, "S01", msg("S01", 7), s01),
	}
	src := &fakeSource{recs: append([]Record(nil), in...)}
	dst := &fakeProducer{}
	reg := prometheus.NewRegistry()
	keys := func(origin string) ([]ed25519.PublicKey, error) { return []ed25519.PublicKey{s01pub}, nil }
	f := NewForward("CEN", ForwardParams{Source: src, Parent: dst, Site: "M01", Below: map[string]bool{"S01": true, "S02": true}, Keys: keys, Registerer: reg})
	runUntilCommitted(t, f.Run, src, len(in))
	_, got, _ := dst.snapshot()
	want := []Record{in[0], in[4]}
	if len(got) != len(want) {
		t.Fatalf("passed on %d records, want %d", len(got), len(want))
	}
	bytes := 0
	for i, r := range got {
		if string(r.Key) != string(want[i].Key) || string(r.Value) != string(want[i].Value) || !reflect.DeepEqual(r.Headers, want[i].Headers) {
			t.Errorf("record %d: %q %q %v, want %q %q %v", i, r.Key, r.Value, r.Headers, want[i].Key, want[i].Value, want[i].Headers)
		}
		bytes += len(want[i].Key) + len(want[i].Value)
	}
	if n := gathered(t, reg, "statepipe_replicator_forwarded_records_total", "parent", "CEN"); n != 2 {
		t.Errorf("forwarded_records_total %v, want 2", n)
	}
	if n := gathered(t, reg, "statepipe_replicator_forward_rejected_total", "parent", "CEN"); n != 3 {
		t.Errorf("forward_rejected_total %v, want 3", n)
	}
	if n := gathered(t, reg, "statepipe_replicator_forwarded_bytes_total", "parent", "CEN"); n != float64(bytes) {
		t.Errorf("forwarded_bytes_total %v, want %d", n, bytes)
	}
}

// Nothing is committed before the parent's broker acknowledged: a refused produce is tried
// again (after a second) with the same records.
func TestForwardCommitsOnlyAfterProduce(t *testing.T) {
	r1 := hierRecord(t, 0, "S01", &Message{V: wireVersion, Origin: "S01", Epoch: 1, Seq: 1}, nil)
	r2 := hierRecord(t, 1, "S01", &Message{V: wireVersion, Origin: "S01", Epoch: 1, Seq: 2}, nil)
	src := &fakeSource{recs: []Record{r1, r2}}
	dst := &fakeProducer{fail: 1, src: src}
	start := time.Now()
	runUntilCommitted(t, NewForward("CEN", ForwardParams{Source: src, Parent: dst}).Run, src, 2)
	calls, got, seen := dst.snapshot()
	if calls != 2 || len(got) != 2 || string(got[0].Value) != string(r1.Value) || string(got[1].Value) != string(r2.Value) {
		t.Fatalf("%d produce calls, passed on %v; want 2 calls (1 refused), the two records", calls, got)
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
