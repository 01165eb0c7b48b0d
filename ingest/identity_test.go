package ingest

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/statepipe/statepipe/schema"
)

// logProducer is an identity log in memory: every write is appended, and replay applies the
// log, in order, to registries — as every ingest node's follower does with the topic.
type logProducer struct {
	mu  sync.Mutex
	log []Record
	// apply, when set, applies each record as soon as it is written (a node's own follower).
	apply func(Record)
}

func (p *logProducer) Produce(_ context.Context, msgs ...Record) error {
	p.mu.Lock()
	p.log = append(p.log, msgs...)
	apply := p.apply
	p.mu.Unlock()
	if apply != nil {
		for _, m := range msgs {
			apply(m)
		}
	}
	return nil
}

// grantOf is what a revocation records of a grant code.
func grantOf(code string) string { return hex.EncodeToString(grantHash(code)) }

func newKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func pubOf(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

func TestIdentityLogDecidesHolders(t *testing.T) {
	site := newKey(t)
	r := NewIdentities("identity.P01", pubOf(site))
	log := &logProducer{apply: r.Apply}
	a, b, c, d := newKey(t), newKey(t), newKey(t), newKey(t)
	write := func(client string, ev IdentityEvent) Outcome {
		t.Helper()
		ev.Nonce = fmt.Sprint(time.Now().UnixNano())
		out, err := r.write(context.Background(), log, site, client, ev)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	steps := []struct {
		name   string
		client string
		ev     IdentityEvent
		won    bool
		holder ed25519.PrivateKey // nil: free
		inc    uint32
	}{
		{"first claim wins", "pc", IdentityEvent{Op: OpEnroll, Key: pubOf(a)}, true, a, 1},
		{"a claim with another key loses", "pc", IdentityEvent{Op: OpEnroll, Key: pubOf(b)}, false, a, 1},
		{"the holder's key renews", "pc", IdentityEvent{Op: OpEnroll, Key: pubOf(a)}, true, a, 1},
		{"a rotation from a key that does not hold it loses", "pc", IdentityEvent{Op: OpRotate, From: pubOf(b), Key: pubOf(c)}, false, a, 1},
		{"the holder rotates to b", "pc", IdentityEvent{Op: OpRotate, From: pubOf(a), Key: pubOf(b)}, true, b, 2},
		{"the same rotation again is its outcome", "pc", IdentityEvent{Op: OpRotate, From: pubOf(a), Key: pubOf(b)}, true, b, 2},
		{"the rotated-away key cannot rotate back", "pc", IdentityEvent{Op: OpRotate, From: pubOf(b), Key: pubOf(a)}, false, b, 2},
		{"a revocation of a key that does not hold the id loses", "pc", IdentityEvent{Op: OpRevoke, Key: pubOf(a), Grant: grantOf("g1")}, false, b, 2},
		{"revocation retires the holder's key", "pc", IdentityEvent{Op: OpRevoke, Key: pubOf(b), Grant: grantOf("g1")}, true, nil, 0},
		{"a revoked key never enrols again", "pc", IdentityEvent{Op: OpEnroll, Key: pubOf(b), Grant: "g1"}, false, nil, 0},
		{"a rotated-away key never enrols again", "pc", IdentityEvent{Op: OpEnroll, Key: pubOf(a), Grant: "g1"}, false, nil, 0},
		{"a revoked id is not free: a new key without the grant loses", "pc", IdentityEvent{Op: OpEnroll, Key: pubOf(c)}, false, nil, 0},
		{"nor with another code", "pc", IdentityEvent{Op: OpEnroll, Key: pubOf(c), Grant: "g2"}, false, nil, 0},
		{"with the grant a new key takes the next incarnation", "pc", IdentityEvent{Op: OpEnroll, Key: pubOf(c), Grant: "g1"}, true, c, 3},
		{"revoked again", "pc", IdentityEvent{Op: OpRevoke, Key: pubOf(c), Grant: grantOf("g3")}, true, nil, 0},
		{"a grant is used once", "pc", IdentityEvent{Op: OpEnroll, Key: pubOf(d), Grant: "g1"}, false, nil, 0},
		{"a new grant for an id nobody holds replaces the last", "pc", IdentityEvent{Op: OpRevoke, Grant: grantOf("g4")}, true, nil, 0},
		{"the replaced grant no longer works", "pc", IdentityEvent{Op: OpEnroll, Key: pubOf(d), Grant: "g3"}, false, nil, 0},
		{"the new one does", "pc", IdentityEvent{Op: OpEnroll, Key: pubOf(d), Grant: "g4"}, true, d, 4},
		{"other ids are apart", "pc-2", IdentityEvent{Op: OpEnroll, Key: pubOf(a)}, true, a, 1},
	}
	for _, s := range steps {
		out := write(s.client, s.ev)
		h, held := r.Holder(s.client)
		switch {
		case out.Won != s.won:
			t.Fatalf("%s: won %v, want %v (%s)", s.name, out.Won, s.won, out.Reason)
		case s.holder == nil && held:
			t.Fatalf("%s: held by %x, want free", s.name, h.Key)
		case s.holder != nil && (!held || !h.Key.Equal(pubOf(s.holder)) || h.Inc != s.inc):
			t.Fatalf("%s: holder %x inc %d, want %x inc %d", s.name, h.Key, h.Inc, pubOf(s.holder), s.inc)
		case !s.won && out.Reason == "":
			t.Fatalf("%s: lost without a reason", s.name)
		}
	}
	// Every node that applies the same log reaches the same registry.
	other := NewIdentities("identity.P01", pubOf(site))
	for _, m := range log.log {
		other.Apply(m)
	}
	for _, c := range []string{"pc", "pc-2"} {
		h1, _ := r.Holder(c)
		h2, _ := other.Holder(c)
		if !h1.Key.Equal(h2.Key) || h1.Inc != h2.Inc {
			t.Errorf("client %s: a replay of the log disagrees: %x/%d vs %x/%d", c, h1.Key, h1.Inc, h2.Key, h2.Inc)
		}
	}
}

// TestIdentityLogIgnoresRecordsIngestDidNotVouchFor: a process that can produce to the
// identity topic behind ingest's back (a tombstone on the old revocations topic un-revoked a
// client) changes nothing.
func TestIdentityLogIgnoresRecordsIngestDidNotVouchFor(t *testing.T) {
	site, forger := newKey(t), newKey(t)
	r := NewIdentities("identity.P01", pubOf(site))
	a, mallory := newKey(t), newKey(t)
	ev := func(e IdentityEvent) []byte { b, _ := json.Marshal(e); return b }
	vouched := func(key ed25519.PrivateKey, topic, client string, value []byte) Record {
		return Record{Key: []byte(client), Value: value,
			Headers: []Header{{Key: schema.HeaderVouch, Value: schema.Vouch(key, topic, []byte(client), value, 0)}}}
	}
	r.Apply(vouched(site, "identity.P01", "pc", ev(IdentityEvent{Op: OpEnroll, Key: pubOf(a), Nonce: "1"})))
	r.Apply(vouched(site, "identity.P01", "pc", ev(IdentityEvent{Op: OpRevoke, Key: pubOf(a), Grant: grantOf("g"), Nonce: "2"})))
	for name, m := range map[string]Record{
		"unsigned claim":              {Key: []byte("pc"), Value: ev(IdentityEvent{Op: OpEnroll, Key: pubOf(mallory), Nonce: "3"})},
		"claim signed by another key": vouched(forger, "identity.P01", "pc", ev(IdentityEvent{Op: OpEnroll, Key: pubOf(mallory), Nonce: "4"})),
		"claim vouched for another site's topic": vouched(site, "identity.P02", "pc",
			ev(IdentityEvent{Op: OpEnroll, Key: pubOf(mallory), Nonce: "5"})),
		"claim vouched for another client": vouched(site, "identity.P01", "pc-x",
			ev(IdentityEvent{Op: OpEnroll, Key: pubOf(mallory), Nonce: "6"})),
		"tombstone": {Key: []byte("pc")},
	} {
		if name == "claim vouched for another client" {
			m.Key = []byte("pc") // moved to the victim's key
		}
		r.Apply(m)
		if h, held := r.Holder("pc"); held {
			t.Errorf("%s: the id went to %x", name, h.Key)
		}
	}
	if !r.Retired("pc", pubOf(a)) {
		t.Error("the revocation was undone")
	}
	if got := r.Ignored()["unvouched"]; got != 5 {
		t.Errorf("unvouched records ignored: %d, want 5 (the tombstone too)", got)
	}
}

// TestConcurrentClaimsHaveOneWinner: many nodes (each with its own registry following the same
// log) take claims of one new id at once; whichever the log orders first is the only winner,
// everywhere — including on a node that starts later and replays the log.
func TestConcurrentClaimsHaveOneWinner(t *testing.T) {
	site := newKey(t)
	const nodes = 4
	regs := make([]*Identities, nodes)
	for i := range regs {
		regs[i] = NewIdentities("identity.P01", pubOf(site))
	}
	log := &logProducer{}
	// The broker: records are applied to every node in one order, as a partition serves them.
	var order sync.Mutex
	log.apply = func(m Record) {
		order.Lock()
		defer order.Unlock()
		for _, r := range regs {
			r.Apply(m)
		}
	}
	var wg sync.WaitGroup
	outs := make([]Outcome, 16)
	keys := make([]ed25519.PrivateKey, 16)
	for i := range outs {
		keys[i] = newKey(t)
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			out, err := regs[i%nodes].write(context.Background(), log, site, "new-pc",
				IdentityEvent{Op: OpEnroll, Key: pubOf(keys[i]), Nonce: fmt.Sprint("n", i)})
			if err != nil {
				t.Error(err)
			}
			outs[i] = out
		}(i)
	}
	wg.Wait()
	won := 0
	for _, o := range outs {
		if o.Won {
			won++
		}
	}
	if won != 1 {
		t.Fatalf("%d of 16 concurrent claims won, want 1", won)
	}
	late := NewIdentities("identity.P01", pubOf(site))
	for _, m := range log.log {
		late.Apply(m)
	}
	want, _ := regs[0].Holder("new-pc")
	for i, r := range append(regs, late) {
		if h, _ := r.Holder("new-pc"); !h.Key.Equal(want.Key) {
			t.Errorf("node %d disagrees on the holder", i)
		}
	}
}

func TestStalenessBeforeAndAfterCatchingUp(t *testing.T) {
	r := NewIdentities("identity.P01", nil)
	now := time.Now()
	if r.Staleness(now) < time.Hour {
		t.Fatal("a registry that never caught up must count as stale")
	}
	r.MarkFresh(now.Add(-2 * time.Second))
	if got := r.Staleness(now); got != 2*time.Second {
		t.Fatalf("staleness %s, want 2s", got)
	}
}

// TestVouchedEventsReplayedChangeNothing: whoever can produce to the identity topic can copy a
// vouched event and produce it again; an event counts once (its nonce), so a replayed
// revocation does not retire the key that holds the id now, and a replayed claim does not
// take a revoked id.
func TestVouchedEventsReplayedChangeNothing(t *testing.T) {
	site := newKey(t)
	r := NewIdentities("identity.P01", pubOf(site))
	thief, machine := newKey(t), newKey(t)
	var records []Record
	log := &logProducer{apply: func(m Record) { records = append(records, m); r.Apply(m) }}
	write := func(ev IdentityEvent) Outcome {
		t.Helper()
		ev.Nonce = fmt.Sprint("n", len(records))
		out, err := r.write(context.Background(), log, site, "pc", ev)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	write(IdentityEvent{Op: OpEnroll, Key: pubOf(thief)}) // a thief held the id
	revoke := len(records)
	write(IdentityEvent{Op: OpRevoke, Key: pubOf(thief), Grant: grantOf("g")})
	if out := write(IdentityEvent{Op: OpEnroll, Key: pubOf(machine), Grant: "g"}); !out.Won {
		t.Fatalf("the machine's enrolment with the grant: %s", out.Reason)
	}
	for _, m := range []Record{records[0], records[revoke]} {
		r.Apply(m) // produced again by whoever can produce
	}
	if h, held := r.Holder("pc"); !held || !h.Key.Equal(pubOf(machine)) || h.Inc != 2 {
		t.Fatalf("replayed events changed the holder: %x %v", h.Key, held)
	}
	if r.Ignored()["replayed"] != 2 {
		t.Errorf("replays counted: %v", r.Ignored())
	}
}
