package replicator

import (
	"context"
	"crypto/ed25519"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/statepipe/statepipe/schema"
)

// fakeProgress returns the end and committed offsets it was last set to, or err.
type fakeProgress struct {
	mu              sync.Mutex
	ends, committed map[string]map[int]int64
	err             error
}

// set sets the end and committed offsets of the projector's state.S01 partition 0 and
// ref.S01 partition 0.
func (p *fakeProgress) set(stateEnd, stateCommitted, refEnd, refCommitted int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ends = map[string]map[int]int64{"state.S01": {0: stateEnd}, "ref.S01": {0: refEnd}}
	p.committed = map[string]map[int]int64{"state.S01": {0: stateCommitted}, "ref.S01": {0: refCommitted}}
}

func (p *fakeProgress) Ends(context.Context) (map[string]map[int]int64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ends, p.err
}

func (p *fakeProgress) Committed(context.Context) (map[string]map[int]int64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.committed, p.err
}

// sendLog keeps each Produce call's records; it refuses them while fail is set.
type sendLog struct {
	fail  bool
	sends [][]Record // acknowledged
	tries int
}

func (s *sendLog) Produce(_ context.Context, recs ...Record) error {
	s.tries++
	if s.fail {
		return errors.New("broker down")
	}
	s.sends = append(s.sends, recs)
	return nil
}

// last decodes the records of the latest acknowledged send.
func (s *sendLog) last(t *testing.T) []*Message {
	t.Helper()
	if len(s.sends) == 0 {
		t.Fatal("nothing was sent")
	}
	return decodeAll(t, s.sends[len(s.sends)-1])
}

func decodeAll(t *testing.T, recs []Record) []*Message {
	t.Helper()
	out := make([]*Message, len(recs))
	for i, r := range recs {
		m, err := Decode(r.Value)
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if string(r.Key) != m.Origin {
			t.Errorf("record %d: key %q, want the origin %s", i, r.Key, m.Origin)
		}
		out[i] = m
	}
	return out
}

// split checks a send's shape — cell messages, then one heartbeat last — and returns its
// cells and heartbeat.
func split(t *testing.T, msgs []*Message) (Cells, *Heartbeat) {
	t.Helper()
	cells := Cells{}
	for i, m := range msgs {
		last := i == len(msgs)-1
		if last != (m.Heartbeat != nil) {
			t.Errorf("message %d of %d: heartbeat %v, want one in the last message only", i, len(msgs), m.Heartbeat)
		}
		if !last && len(m.Cells) == 0 {
			t.Errorf("message %d of %d: no cells", i, len(msgs))
		}
		for _, c := range m.Cells {
			k := CellKey{Kind: c.Kind, Scope: c.Scope, TopicType: c.TopicType, TopicID: c.TopicID, Code: c.Code}
			if _, dup := cells[k]; dup {
				t.Errorf("cell %v sent twice in one send", k)
			}
			cells[k] = CellValue{Clients: c.Clients, Scanned: c.Scanned}
		}
	}
	return cells, msgs[len(msgs)-1].Heartbeat
}

// gathered is the value of the counter or gauge name of reg whose labels include the
// name/value pairs given; -1 when there is none.
func gathered(t testing.TB, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				if !slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool { return l.GetName() == labels[i] && l.GetValue() == labels[i+1] }) {
					continue metrics
				}
			}
			if m.GetGauge() != nil {
				return m.GetGauge().GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	return -1
}

const testEpoch = 1_800_000_000

// t0 is the tests' clock at the first cycle.
var t0 = time.Date(2024, 1, 15, 8, 0, 0, 0, time.UTC)

type upFixture struct {
	u     *Up
	store *fakeStore
	prog  *fakeProgress
	out   *sendLog
	reg   *prometheus.Registry
}

// newUpFixture builds the Up of site S01 under CEN, with its epoch set as Run would.
func newUpFixture(t *testing.T, cfg UpConfig, key ed25519.PrivateKey) *upFixture {
	t.Helper()
	f := &upFixture{store: &fakeStore{}, prog: &fakeProgress{}, out: &sendLog{}, reg: prometheus.NewRegistry()}
	cfg.Site, cfg.Parent, cfg.Database = "S01", "CEN", "statepipe_S01"
	u, err := NewUp(cfg, UpParams{Store: f.store, Progress: f.prog, Parent: f.out, Key: key, Registerer: f.reg})
	if err != nil {
		t.Fatal(err)
	}
	u.epoch = testEpoch
	f.u = u
	return f
}

// cycle runs one cycle at t0+at.
func (f *upFixture) cycle(t *testing.T, at time.Duration) error {
	t.Helper()
	return f.u.cycle(context.Background(), t0.Add(at))
}

func (f *upFixture) mustCycle(t *testing.T, at time.Duration) {
	t.Helper()
	if err := f.cycle(t, at); err != nil {
		t.Fatalf("cycle at +%s: %v", at, err)
	}
}

// The watermark moves only once the projector's group committed past a snapshot of the end
// offsets, and then to the newest snapshot committed past; the backlog is what the
// projector's topics hold after the acknowledged watermark's snapshot.
func TestUpWatermarkFollowsCommits(t *testing.T) {
	f := newUpFixture(t, UpConfig{}, nil)
	f.store.set(Cells{cellA: {Clients: 1}})

	f.prog.set(10, 4, 3, 3) // +0s: the projector is 6 records behind
	f.mustCycle(t, 0)
	if st := f.u.Status(time.Now()); !st.Watermark.IsZero() || st.BacklogRecords != 13 {
		t.Errorf("+0s: watermark %v, backlog %d; want none yet, and every record (13) behind", st.Watermark, st.BacklogRecords)
	}
	if _, hb := split(t, f.out.last(t)); hb.Watermark != 0 || hb.LagRecords != 6 || hb.BacklogRecords != 13 {
		t.Errorf("+0s heartbeat: %+v, want watermark 0, lag 6, backlog 13", hb)
	}

	f.prog.set(12, 10, 3, 3) // +1s: past the +0s snapshot (10, 3), not past +1s (12, 3)
	f.mustCycle(t, time.Second)
	st := f.u.Status(time.Now())
	if !st.Watermark.Equal(t0) || st.BacklogRecords != 2 {
		t.Errorf("+1s: watermark %v, backlog %d; want %v (the snapshot committed past), 2", st.Watermark, st.BacklogRecords, t0)
	}
	if _, hb := split(t, f.out.last(t)); hb.Watermark != t0.UnixMilli() || hb.LagRecords != 2 || hb.BacklogRecords != 2 {
		t.Errorf("+1s heartbeat: %+v, want watermark %d, lag 2, backlog 2", hb, t0.UnixMilli())
	}

	f.prog.set(12, 11, 3, 3) // +2s: past nothing new
	f.mustCycle(t, 2*time.Second)
	if st := f.u.Status(time.Now()); !st.Watermark.Equal(t0) {
		t.Errorf("+2s: watermark %v, want still %v", st.Watermark, t0)
	}

	f.prog.set(12, 12, 3, 3) // +3s: past the +1s, +2s and +3s snapshots: the newest wins
	f.mustCycle(t, 3*time.Second)
	if st := f.u.Status(time.Now()); !st.Watermark.Equal(t0.Add(3*time.Second)) || st.BacklogRecords != 0 {
		t.Errorf("+3s: watermark %v, backlog %d; want %v, 0", st.Watermark, st.BacklogRecords, t0.Add(3*time.Second))
	}
	if _, hb := split(t, f.out.last(t)); hb.Watermark != t0.Add(3*time.Second).UnixMilli() || hb.SentAt != t0.Add(3*time.Second).UnixMilli() {
		t.Errorf("+3s heartbeat: %+v, want watermark and sent_at %d", hb, t0.Add(3*time.Second).UnixMilli())
	}
}

// The first send is a sweep of every cell, whose heartbeat names its first message; later
// sends carry what changed since, with zero for the cells that went, and only once the
// projector passed a snapshot; versions only grow.
func TestUpSweepThenChanges(t *testing.T) {
	f := newUpFixture(t, UpConfig{}, nil)
	first := Cells{cellA: {Clients: 5, Scanned: 9}, cellB: {Clients: 2}, cellC: {Clients: 7}}
	f.store.set(first)
	f.prog.set(10, 10, 0, 0)
	f.mustCycle(t, 0)
	msgs := f.out.last(t)
	cells, hb := split(t, msgs)
	if !maps.Equal(cells, first) {
		t.Errorf("first send: %v, want every cell %v", cells, first)
	}
	if hb.Sweep != msgs[0].Version() || hb.Sweep != Version(testEpoch, 1) {
		t.Errorf("first send: sweep %#x, want its first message's version %#x", hb.Sweep, msgs[0].Version())
	}
	if hb.Parent != "CEN" || hb.Cells != 3 {
		t.Errorf("first heartbeat: %+v, want parent CEN, 3 cells", hb)
	}
	sweep := hb.Sweep

	// The projector is behind: what the store holds now is not sent yet.
	f.store.set(Cells{cellA: {Clients: 6, Scanned: 9}, cellC: {Clients: 7}, cellD: {Clients: 1}})
	f.prog.set(11, 10, 0, 0)
	f.mustCycle(t, time.Second)
	cells, hb = split(t, f.out.last(t))
	if len(cells) != 0 || hb.Sweep != sweep || hb.Cells != 3 {
		t.Errorf("projector behind: cells %v, heartbeat %+v; want none, the first sweep, 3 cells held", cells, hb)
	}

	f.prog.set(11, 11, 0, 0)
	f.mustCycle(t, 2*time.Second)
	cells, hb = split(t, f.out.last(t))
	if want := (Cells{cellA: {Clients: 6, Scanned: 9}, cellB: {}, cellD: {Clients: 1}}); !maps.Equal(cells, want) {
		t.Errorf("changes: %v, want %v (B gone, as zero)", cells, want)
	}
	if hb.Sweep != sweep || hb.Cells != 3 {
		t.Errorf("changes: heartbeat %+v, want sweep %#x, 3 cells", hb, sweep)
	}

	f.mustCycle(t, 3*time.Second) // nothing changed: a heartbeat alone
	if msgs := f.out.last(t); len(msgs) != 1 || msgs[0].Heartbeat == nil {
		t.Errorf("nothing changed: %d messages, want a heartbeat alone", len(msgs))
	}

	var last uint64
	for i, send := range f.out.sends {
		for _, m := range decodeAll(t, send) {
			if m.Epoch != testEpoch || m.Version() <= last || m.Origin != "S01" {
				t.Errorf("send %d: %s epoch %d seq %d after version %#x: want S01, epoch %d, growing", i, m.Origin, m.Epoch, m.Seq, last, testEpoch)
			}
			last = m.Version()
		}
	}
	if n := gathered(t, f.reg, "statepipe_replicator_sent_cells_total", "parent", "CEN", "reason", "sweep"); n != 3 {
		t.Errorf("sent_cells_total{reason=sweep} %v, want 3", n)
	}
	if n := gathered(t, f.reg, "statepipe_replicator_sent_cells_total", "parent", "CEN", "reason", "change"); n != 3 {
		t.Errorf("sent_cells_total{reason=change} %v, want 3", n)
	}
	if n := gathered(t, f.reg, "statepipe_replicator_sent_records_total", "parent", "CEN"); n != 2+1+2+1 {
		t.Errorf("sent_records_total %v, want 6", n)
	}
}

// A refused send changes nothing acknowledged: the next cycle sends the same diff (with new,
// greater versions), and a refused sweep is swept again.
func TestUpResendsAfterFailure(t *testing.T) {
	f := newUpFixture(t, UpConfig{}, nil)
	f.store.set(Cells{cellA: {Clients: 1}, cellB: {Clients: 2}})
	f.prog.set(10, 10, 0, 0)

	f.out.fail = true
	if err := f.cycle(t, 0); err == nil || !strings.Contains(err.Error(), "cannot send to CEN") {
		t.Fatalf("refused sweep: error %v, want cannot send to CEN", err)
	}
	if st := f.u.Status(time.Now()); !st.Watermark.IsZero() || !st.LastSent.IsZero() {
		t.Errorf("after a refused send: %+v, want nothing acknowledged", st)
	}
	f.out.fail = false
	f.mustCycle(t, time.Second)
	msgs := f.out.last(t)
	cells, hb := split(t, msgs)
	if len(cells) != 2 || hb.Sweep != msgs[0].Version() || msgs[0].Seq != 3 {
		t.Errorf("after a refused sweep: cells %v, sweep %#x, first seq %d; want both cells swept again, the sweep naming its own first message, seq 3 (past the 2 refused)",
			cells, hb.Sweep, msgs[0].Seq)
	}
	sweep := hb.Sweep
	wm := f.u.Status(time.Now()).Watermark
	if !wm.Equal(t0.Add(time.Second)) {
		t.Errorf("watermark %v, want %v", wm, t0.Add(time.Second))
	}

	f.store.set(Cells{cellA: {Clients: 3}, cellC: {Clients: 4}})
	f.prog.set(12, 12, 0, 0)
	f.out.fail = true
	if err := f.cycle(t, 2*time.Second); err == nil {
		t.Fatal("refused change: no error")
	}
	tries := f.out.tries
	if st := f.u.Status(time.Now()); !st.Watermark.Equal(wm) {
		t.Errorf("after a refused send: watermark %v, want still %v", st.Watermark, wm)
	}
	f.out.fail = false
	f.mustCycle(t, 3*time.Second)
	msgs = f.out.last(t)
	cells, hb = split(t, msgs)
	if want := (Cells{cellA: {Clients: 3}, cellB: {}, cellC: {Clients: 4}}); !maps.Equal(cells, want) {
		t.Errorf("after a refused change: sent %v, want the same diff %v", cells, want)
	}
	if hb.Sweep != sweep {
		t.Errorf("sweep %#x, want still %#x", hb.Sweep, sweep)
	}
	// 2 messages of the refused sweep, 2 acknowledged, 2 refused: 6 before.
	if msgs[0].Seq != 7 || tries != 3 {
		t.Errorf("first seq %d after %d tries, want 7 after 3: sequence numbers of refused sends are not reused", msgs[0].Seq, tries)
	}
	if st := f.u.Status(time.Now()); !st.Watermark.Equal(t0.Add(3 * time.Second)) {
		t.Errorf("watermark %v, want %v", st.Watermark, t0.Add(3*time.Second))
	}
}

// Every SweepEvery the whole set is sent again, changed or not, with a new sweep version.
func TestUpSweepEvery(t *testing.T) {
	f := newUpFixture(t, UpConfig{SweepEvery: 10 * time.Second}, nil)
	all := Cells{cellA: {Clients: 1}, cellB: {Clients: 2}, cellC: {Clients: 3}}
	f.store.set(all)
	f.prog.set(1, 1, 0, 0)
	f.mustCycle(t, 0)
	_, hb := split(t, f.out.last(t))
	sweep := hb.Sweep

	f.store.set(Cells{cellA: {Clients: 1}, cellB: {Clients: 2}, cellC: {Clients: 4}})
	f.mustCycle(t, 9*time.Second)
	cells, hb := split(t, f.out.last(t))
	if len(cells) != 1 || hb.Sweep != sweep {
		t.Errorf("+9s: cells %v, sweep %#x; want the change alone, sweep %#x", cells, hb.Sweep, sweep)
	}

	f.mustCycle(t, 10*time.Second)
	msgs := f.out.last(t)
	cells, hb = split(t, msgs)
	if want := (Cells{cellA: {Clients: 1}, cellB: {Clients: 2}, cellC: {Clients: 4}}); !maps.Equal(cells, want) {
		t.Errorf("+10s: %v, want a sweep of every cell %v", cells, want)
	}
	if hb.Sweep != msgs[0].Version() || hb.Sweep <= sweep {
		t.Errorf("+10s: sweep %#x, want its first message's %#x", hb.Sweep, msgs[0].Version())
	}
	sweep = hb.Sweep

	f.mustCycle(t, 19*time.Second)
	if cells, hb := split(t, f.out.last(t)); len(cells) != 0 || hb.Sweep != sweep {
		t.Errorf("+19s: cells %v, sweep %#x; want none (the sweep was at +10s), %#x", cells, hb.Sweep, sweep)
	}
	f.mustCycle(t, 20*time.Second)
	if cells, _ := split(t, f.out.last(t)); len(cells) != 3 {
		t.Errorf("+20s: %d cells, want a sweep of 3", len(cells))
	}
}

// MaxCellsPerMessage splits a send into messages of at most that many cells, in a stable
// order, the heartbeat last.
func TestUpSplitsMessages(t *testing.T) {
	f := newUpFixture(t, UpConfig{MaxCellsPerMessage: 2}, nil)
	all := Cells{}
	for i := range 5 {
		all[CellKey{Kind: KindStates, Scope: "SMS00001", TopicType: 500, TopicID: "U" + strconv.Itoa(i), Code: 1}] = CellValue{Clients: int64(i + 1)}
	}
	f.store.set(all)
	f.prog.set(1, 1, 0, 0)
	f.mustCycle(t, 0)
	msgs := f.out.last(t)
	var sizes []int
	var ids []string
	for _, m := range msgs {
		sizes = append(sizes, len(m.Cells))
		for _, c := range m.Cells {
			ids = append(ids, c.TopicID)
		}
	}
	if !slices.Equal(sizes, []int{2, 2, 1, 0}) {
		t.Errorf("cells per message %v, want [2 2 1 0]", sizes)
	}
	if !slices.Equal(ids, []string{"U0", "U1", "U2", "U3", "U4"}) {
		t.Errorf("cells in order %v, want sorted", ids)
	}
	if cells, hb := split(t, msgs); !maps.Equal(cells, all) || hb.Sweep != msgs[0].Version() {
		t.Errorf("split sweep: %v (sweep %#x), want %v from %#x", cells, hb.Sweep, all, msgs[0].Version())
	}
}

// With a site key every record carries a vouch the parent's fold verifies with the site's
// public key; without one, none.
func TestUpVouches(t *testing.T) {
	pub, priv := newKey(t)
	otherPub, _ := newKey(t)
	f := newUpFixture(t, UpConfig{MaxCellsPerMessage: 1}, priv)
	f.store.set(Cells{cellA: {Clients: 1}, cellB: {Clients: 2}})
	f.prog.set(1, 1, 0, 0)
	f.mustCycle(t, 0)
	recs := f.out.sends[0]
	if len(recs) != 3 {
		t.Fatalf("%d records, want 3", len(recs))
	}
	for i, r := range recs {
		v := schema.HeaderValue(r.Headers, schema.HeaderVouch)
		if err := schema.VerifyVouch([]ed25519.PublicKey{pub}, VouchTopic, r.Key, r.Value, v, 0); err != nil {
			t.Errorf("record %d: %v", i, err)
		}
		if err := schema.VerifyVouch([]ed25519.PublicKey{otherPub}, VouchTopic, r.Key, r.Value, v, 0); err == nil {
			t.Errorf("record %d verifies with another site's key", i)
		}
		if err := verify(func(string) ([]ed25519.PublicKey, error) { return []ed25519.PublicKey{pub}, nil }, "S01", r); err != nil {
			t.Errorf("record %d: the parent's fold would refuse it: %v", i, err)
		}
	}

	f = newUpFixture(t, UpConfig{}, nil)
	f.prog.set(1, 1, 0, 0)
	f.mustCycle(t, 0)
	for i, r := range f.out.sends[0] {
		if len(r.Headers) != 0 {
			t.Errorf("auth off: record %d has headers %v", i, r.Headers)
		}
	}
}

// The backlog is set each cycle from the projector's progress, whether the send goes through
// or not; a failed read of the progress or the cells is an error and sends nothing.
func TestUpBacklogWhenSendFails(t *testing.T) {
	f := newUpFixture(t, UpConfig{}, nil)
	f.store.set(Cells{cellA: {Clients: 1}})
	f.prog.set(10, 10, 5, 5)
	f.mustCycle(t, 0)
	if st := f.u.Status(time.Now()); st.BacklogRecords != 0 || st.BacklogSeconds() != 0 {
		t.Errorf("caught up: backlog %d (%vs), want 0", st.BacklogRecords, st.BacklogSeconds())
	}
	f.out.fail = true
	f.prog.set(17, 10, 6, 5) // 8 records after the acknowledged snapshot (10, 5)
	if err := f.cycle(t, time.Second); err == nil {
		t.Fatal("no error from a refused send")
	}
	if st := f.u.Status(time.Now()); st.BacklogRecords != 8 || st.BacklogSeconds() <= 0 {
		t.Errorf("refused send: backlog %d (%vs), want 8 records, and seconds", st.BacklogRecords, st.BacklogSeconds())
	}
	f.prog.set(20, 20, 6, 6) // passed, but refused again: the backlog counts from what was acknowledged
	if err := f.cycle(t, 2*time.Second); err == nil {
		t.Fatal("no error from a refused send")
	}
	if st := f.u.Status(time.Now()); st.BacklogRecords != 11 {
		t.Errorf("refused send: backlog %d, want 11 after the acknowledged (10, 5)", st.BacklogRecords)
	}
	f.out.fail = false
	f.mustCycle(t, 3*time.Second)
	if st := f.u.Status(time.Now()); st.BacklogRecords != 0 {
		t.Errorf("acknowledged: backlog %d, want 0", st.BacklogRecords)
	}

	tries := f.out.tries
	f.prog.err = errors.New("kafka down")
	if err := f.cycle(t, 4*time.Second); err == nil || f.out.tries != tries {
		t.Errorf("progress unreadable: error %v, %d sends tried; want an error, none", err, f.out.tries-tries)
	}
	f.prog.err = nil
	f.store.err = errors.New("store down")
	f.prog.set(21, 21, 6, 6)
	if err := f.cycle(t, 5*time.Second); err == nil || !strings.Contains(err.Error(), "store down") || f.out.tries != tries {
		t.Errorf("cells unreadable: error %v, %d sends tried; want the store's error, none", err, f.out.tries-tries)
	}
}

// The link to the parent is active, degraded, failed by the time since its last acknowledged
// send (since the start before the first).
func TestUpLinkState(t *testing.T) {
	f := newUpFixture(t, UpConfig{Links: LinkThresholds{Degraded: time.Hour, Failed: 2 * time.Hour}}, nil)
	now := time.Now()
	for _, c := range []struct {
		at   time.Duration
		want string
	}{{0, LinkActive}, {59 * time.Minute, LinkActive}, {61 * time.Minute, LinkDegraded}, {121 * time.Minute, LinkFailed}} {
		if got := f.u.Status(now.Add(c.at)).State; got != c.want {
			t.Errorf("+%s since the start: %s, want %s", c.at, got, c.want)
		}
	}
	f.u.started = now.Add(-3 * time.Hour)
	if got := f.u.Status(now).State; got != LinkFailed {
		t.Errorf("3 h since the start, nothing sent: %s, want failed", got)
	}
	f.prog.set(1, 1, 0, 0)
	f.mustCycle(t, 0)
	sent := f.u.Status(time.Now()).LastSent
	if got := f.u.Status(time.Now()).State; got != LinkActive || sent.Before(now) {
		t.Errorf("just sent: %s, last sent %v; want active, now", got, sent)
	}
	f.out.fail = true
	_ = f.cycle(t, time.Second)
	if st := f.u.Status(sent.Add(90 * time.Minute)); st.State != LinkDegraded || !st.LastSent.Equal(sent) {
		t.Errorf("90 min after the last acknowledged send, one refused since: %s, last sent %v; want degraded, %v", st.State, st.LastSent, sent)
	}
	if st := f.u.Status(sent.Add(150 * time.Minute)); st.State != LinkFailed {
		t.Errorf("150 min after the last acknowledged send: %s, want failed", st.State)
	}
	for st, want := range map[string]float64{LinkActive: 1, LinkDegraded: 0, LinkFailed: 0} {
		if n := gathered(t, f.reg, "statepipe_replicator_link_state", "parent", "CEN", "state", st); n != want {
			t.Errorf("link_state{state=%s} %v, want %v", st, n, want)
		}
	}
}

func TestNewUpRequires(t *testing.T) {
	for _, cfg := range []UpConfig{{Parent: "CEN", Database: "d"}, {Site: "S01", Database: "d"}, {Site: "S01", Parent: "CEN"}} {
		if _, err := NewUp(cfg, UpParams{}); err == nil {
			t.Errorf("%+v: no error", cfg)
		}
	}
	u, err := NewUp(UpConfig{Site: "S01", Parent: "CEN", Database: "d"}, UpParams{})
	if err != nil {
		t.Fatal(err)
	}
	if u.cfg.Interval != time.Second || u.cfg.SweepEvery != 5*time.Minute || u.cfg.MaxCellsPerMessage != 2000 || u.cfg.Links != DefaultLinkThresholds {
		t.Errorf("defaults %+v", u.cfg)
	}
}

// The epoch is the start's Unix second, or one past the file's when that is not less (a
// restart within a second, a clock set back), and it is written back.
func TestNewEpoch(t *testing.T) {
	now := time.Unix(1_800_000_000, 500)
	if e, err := newEpoch("", now); err != nil || e != 1_800_000_000 {
		t.Errorf("no file: %d, %v; want the Unix second", e, err)
	}
	file := filepath.Join(t.TempDir(), "epoch")
	read := func() string {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for _, c := range []struct {
		name string
		file string // "" : as the previous step left it
		now  time.Time
		want uint32
	}{
		{"first start", "", now, 1_800_000_000},
		{"restart within the second", "", now, 1_800_000_001},
		{"restart again", "", now.Add(time.Second), 1_800_000_002},
		{"clock set back", "1900000000\n", now, 1_900_000_001},
		{"clock ahead of the file", "1700000000", now, 1_800_000_000},
		{"file not a number", "garbage", now, 1_800_000_000},
	} {
		if c.file != "" {
			if err := os.WriteFile(file, []byte(c.file), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		e, err := newEpoch(file, c.now)
		if err != nil || e != c.want {
			t.Errorf("%s: %d, %v; want %d", c.name, e, err, c.want)
		}
		if got := read(); got != strconv.Itoa(int(c.want))+"\n" {
			t.Errorf("%s: file holds %q, want %d", c.name, got, c.want)
		}
	}

	dir := t.TempDir() // a directory where the file should be: unreadable
	if _, err := newEpoch(dir, now); err == nil || !strings.Contains(err.Error(), "cannot read the replicator's epoch file") {
		t.Errorf("epoch file is a directory: %v, want cannot read", err)
	}
	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := newEpoch(filepath.Join(notDir, "epoch"), now); err == nil {
		t.Error("epoch file under a regular file: no error")
	}
	if _, err := newEpoch(filepath.Join(t.TempDir(), "missing", "epoch"), now); err == nil || !strings.Contains(err.Error(), "cannot record") {
		t.Errorf("epoch file in a missing directory: %v, want cannot record", err)
	}
}
