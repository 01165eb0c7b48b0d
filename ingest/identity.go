package ingest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/statepipe/statepipe/schema"
)

// Identities is a site's registry of enrolled clients, derived from the site's identity log
// (topic identity.<site>: key client id, a vouched IdentityEvent per record, kept forever).
// Every ingest node applies the same log in the same order, so every node reaches the same
// decisions without talking to the others — the log is the only arbiter:
//
//   - the first enrolment of a free id wins; later claims of it with other keys lose, however
//     many nodes take them at once and across restarts (a node grants a claim only once it
//     has read its own claim back from the log and seen it win);
//   - an enrolment with the holder's key renews the credential (no event needed);
//   - a rotation, signed with the holder's current key, gives the id to a new key and retires
//     the old one;
//   - a revocation retires the holder's key and leaves the id to the holder of a one-time
//     grant the administrator received (a thief racing the machine for the freed id cannot
//     take it, even with the site's enrolment token).
//
// A retired key never holds the id again, and a report is accepted only with a credential of
// the id's current key: a rotated or revoked credential is refused by every node as soon as
// it has read the event (Staleness bounds how late that can be). Each holding of an id is an
// incarnation (1, 2, …); credentials carry it, and an incarnation's serials lie in a range of
// their own above every earlier one's (schema.SerialBase), so a machine's reports after it
// enrolled again win over anything an earlier key sent.
//
// Events are conditional on the state they were written against (a revocation names the key
// it retires, a rotation the key it takes the id from) and each is applied once (its nonce),
// so a vouched event produced again — replayed by whoever can produce to the topic — changes
// nothing. Records without a valid vouch (schema.VerifyVouch: produced behind ingest's back)
// and events that do not parse are ignored and counted (Ignored).
type Identities struct {
	topic string
	keys  []ed25519.PublicKey // the site's keys (current first); none: records are not checked (auth off)

	mu      sync.RWMutex
	ids     map[string]*identity
	applied map[string]struct{}     // nonces of the events applied (or refused): each counts once
	waiters map[string]chan Outcome // nonce → the writer waiting for its event's outcome
	fresh   time.Time               // the log was read up to its end as of then
	// relayEpoch counts the gateway keys revoked (schema.RelayBase): gateways relay at
	// RelayBase(1 + relayEpoch).
	relayEpoch uint32
	ignored    map[string]int // reason → records ignored
}

type identity struct {
	holder  *Holder
	inc     uint32   // incarnations so far
	retired [][]byte // keys that held the id or were revoked: never again
	grant   []byte   // after a revocation: SHA-256 of the one-time code a new enrolment needs
	kind    string   // set by the id's first enrolment, for good: "" a client, schema.KindGateway
}

// Holder is the key an id is enrolled with now.
type Holder struct {
	Key  ed25519.PublicKey
	Name string
	Inc  uint32 // incarnation: 1 for the first holding of the id, +1 per new key
	Kind string // "" a client, schema.KindGateway a gateway: what the id's first enrolment was
}

// Identity event operations.
const (
	OpEnroll = "enroll" // claim a free id with Key (or renew, when Key holds it)
	OpRotate = "rotate" // give the id from From (its holder) to Key
	OpRevoke = "revoke" // retire Key (the holder's); a new enrolment needs the grant
)

// IdentityEvent is the value of one identity.<site> record (key: client id).
type IdentityEvent struct {
	Op    string `json:"op"`
	Key   []byte `json:"key,omitempty"`   // enroll, rotate: the key that claims the id; revoke: the key retired (none: the id was free)
	From  []byte `json:"from,omitempty"`  // rotate: the key the id is taken from
	Grant string `json:"grant,omitempty"` // enroll: the one-time code of a revoked id; revoke: SHA-256 of the new code (hex)
	Name  string `json:"name,omitempty"`
	Kind  string `json:"kind,omitempty"` // enroll: schema.KindGateway for a gateway (the id's first enrolment decides its kind for good)
	Nonce string `json:"nonce"`          // unique; the writer learns the event's outcome by it
	At    int64  `json:"at_ms"`          // when the node wrote it (Unix ms; shown, never ordered by)
}

// Outcome is what an event did.
type Outcome struct {
	Won    bool
	Holder Holder // after the event (zero when the id is free)
	Reason string // why it lost
}

// NewIdentities returns an empty registry of topic's events; keys are the site's public keys
// that vouch for them (none: events are not checked).
func NewIdentities(topic string, keys ...ed25519.PublicKey) *Identities {
	return &Identities{topic: topic, keys: keys, ids: map[string]*identity{}, applied: map[string]struct{}{},
		waiters: map[string]chan Outcome{}, ignored: map[string]int{}}
}

// Known reports whether the identity log has ever enrolled client: its reports must then be
// signed, whoever holds it now.
func (r *Identities) Known(client string) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	id := r.ids[client]
	return id != nil && id.inc > 0
}

// NeedsGrant reports whether client was revoked and waits for an enrolment with its grant.
func (r *Identities) NeedsGrant(client string) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	id := r.ids[client]
	return id != nil && id.holder == nil && id.grant != nil
}

// Holder returns the key client is enrolled with, if any.
func (r *Identities) Holder(client string) (Holder, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	id := r.ids[client]
	if id == nil || id.holder == nil {
		return Holder{}, false
	}
	return *id.holder, true
}

// Retired reports whether key held client's id before, or was revoked for it: it can never
// hold the id again.
func (r *Identities) Retired(client string, key []byte) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	id := r.ids[client]
	return id != nil && id.retiredKey(key)
}

func (id *identity) retiredKey(key []byte) bool {
	for _, k := range id.retired {
		if bytes.Equal(k, key) {
			return true
		}
	}
	return false
}

// MarkFresh records that the log was read up to its end as of at (the follower calls it).
func (r *Identities) MarkFresh(at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if at.After(r.fresh) {
		r.fresh = at
	}
}

// Staleness returns how long ago the registry was last known to hold every event of the log
// (forever, before it first caught up).
func (r *Identities) Staleness(now time.Time) time.Duration {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.fresh.IsZero() {
		return time.Duration(1<<63 - 1)
	}
	return now.Sub(r.fresh)
}

// Ignored returns how many records were ignored, by reason (unvouched, malformed).
func (r *Identities) Ignored() map[string]int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make(map[string]int, len(r.ignored))
	for k, v := range r.ignored {
		out[k] = v
	}
	return out
}

// expect registers a waiter for nonce's outcome; the caller must call forget when done.
func (r *Identities) expect(nonce string) <-chan Outcome {
	ch := make(chan Outcome, 1)
	r.mu.Lock()
	r.waiters[nonce] = ch
	r.mu.Unlock()
	return ch
}

func (r *Identities) forget(nonce string) {
	r.mu.Lock()
	delete(r.waiters, nonce)
	r.mu.Unlock()
}

// Apply applies one record of the identity log, in log order.
func (r *Identities) Apply(m Record) {
	if len(r.keys) > 0 {
		if err := schema.VerifyVouch(r.keys, r.topic, m.Key, m.Value, m.header(schema.HeaderVouch), 0); err != nil {
			r.ignore("unvouched")
			return
		}
	}
	// Fields a later version adds are ignored, not the event: every node applies what it knows
	// of every event, in the same order.
	var ev IdentityEvent
	if m.Value == nil || json.Unmarshal(m.Value, &ev) != nil || len(m.Key) == 0 || ev.Nonce == "" {
		r.ignore("malformed")
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, seen := r.applied[ev.Nonce]; seen {
		r.ignored["replayed"]++
		return
	}
	out, ok := r.apply(string(m.Key), &ev)
	if !ok {
		r.ignored["malformed"]++
		return
	}
	r.applied[ev.Nonce] = struct{}{}
	if ch, ok := r.waiters[ev.Nonce]; ok {
		ch <- out
		delete(r.waiters, ev.Nonce)
	}
}

func (r *Identities) ignore(reason string) {
	r.mu.Lock()
	r.ignored[reason]++
	r.mu.Unlock()
}

// maxIncarnation keeps every incarnation's serial range inside uint64 (schema.SerialBase).
const maxIncarnation = schema.MaxIncarnation

// apply is the state machine; ok is false for an event that is not well formed.
func (r *Identities) apply(client string, ev *IdentityEvent) (Outcome, bool) {
	id := r.ids[client]
	if id == nil {
		id = &identity{}
		r.ids[client] = id
	}
	lost := func(reason string) (Outcome, bool) {
		o := Outcome{Reason: reason}
		if id.holder != nil {
			o.Holder = *id.holder
		}
		return o, true
	}
	switch ev.Op {
	case OpEnroll:
		if len(ev.Key) != ed25519.PublicKeySize {
			return Outcome{}, false
		}
		switch {
		case id.holder != nil && bytes.Equal(id.holder.Key, ev.Key):
			return Outcome{Won: true, Holder: *id.holder}, true // a renewal
		case id.holder != nil:
			return lost(fmt.Sprintf("client %s is enrolled with another key", client))
		case id.retiredKey(ev.Key):
			return lost(fmt.Sprintf("this key was revoked or rotated away for client %s: enrol with a new key", client))
		case id.grant != nil && !bytes.Equal(grantHash(ev.Grant), id.grant):
			return lost(fmt.Sprintf("client %s was revoked: enrolling it again needs the one-time grant its revocation answered (statepipe client enroll --grant)", client))
		case id.inc > 0 && ev.Kind != id.kind:
			return lost(kindMismatch(client, id.kind))
		case id.inc >= maxIncarnation:
			return lost(fmt.Sprintf("client %s has been enrolled %d times, the most an id may be: use a new client id", client, id.inc))
		}
		id.inc++
		id.grant = nil
		id.kind = ev.Kind
		id.holder = &Holder{Key: ev.Key, Name: ev.Name, Inc: id.inc, Kind: id.kind}
		return Outcome{Won: true, Holder: *id.holder}, true
	case OpRotate:
		if len(ev.Key) != ed25519.PublicKeySize || len(ev.From) != ed25519.PublicKeySize {
			return Outcome{}, false
		}
		switch {
		case id.holder != nil && bytes.Equal(id.holder.Key, ev.Key) && id.retiredKey(ev.From):
			return Outcome{Won: true, Holder: *id.holder}, true // this rotation, applied before
		case id.holder == nil || !bytes.Equal(id.holder.Key, ev.From):
			return lost(fmt.Sprintf("the rotation's signing key no longer holds client %s", client))
		case bytes.Equal(ev.From, ev.Key) || id.retiredKey(ev.Key):
			return lost(fmt.Sprintf("a rotation of client %s needs a key that never held it", client))
		case id.inc >= maxIncarnation:
			return lost(fmt.Sprintf("client %s has been enrolled %d times, the most an id may be: use a new client id", client, id.inc))
		}
		id.retired = append(id.retired, id.holder.Key)
		id.inc++
		name := ev.Name
		if name == "" {
			name = id.holder.Name
		}
		id.holder = &Holder{Key: ev.Key, Name: name, Inc: id.inc, Kind: id.kind}
		return Outcome{Won: true, Holder: *id.holder}, true
	case OpRevoke:
		grant, err := hex.DecodeString(ev.Grant)
		if err != nil || len(grant) != sha256.Size {
			return Outcome{}, false
		}
		switch {
		case len(ev.Key) == 0 && id.holder != nil, len(ev.Key) > 0 && (id.holder == nil || !bytes.Equal(id.holder.Key, ev.Key)):
			return lost(fmt.Sprintf("client %s changed hands while the revocation was written: look again and retry", client))
		case id.holder != nil:
			id.retired = append(id.retired, id.holder.Key)
			id.holder = nil
			if id.kind == schema.KindGateway && r.relayEpoch < schema.MaxRelayEpoch {
				r.relayEpoch++ // every gateway relays above what the revoked key could send
			}
		}
		id.grant = grant // a new code replaces an unused one
		return Outcome{Won: true}, true
	}
	return Outcome{}, false
}

// kindMismatch says that an enrolment of client asked for another kind than the id's.
func kindMismatch(client, kind string) string {
	if kind == schema.KindGateway {
		return fmt.Sprintf("%s is a gateway's id: a client cannot enrol with it", client)
	}
	return fmt.Sprintf("%s is a client's id: a gateway cannot enrol with it", client)
}

// RelayBase returns the base of the serials gateways relay now: RelayBase(1 + the number of
// gateway keys revoked so far).
func (r *Identities) RelayBase() uint64 {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return schema.RelayBase(1 + r.relayEpoch)
}

// Kind returns the kind of client's id ("" a client, schema.KindGateway) and whether it was
// ever enrolled.
func (r *Identities) Kind(client string) (string, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	id := r.ids[client]
	if id == nil || id.inc == 0 {
		return "", false
	}
	return id.kind, true
}

// grantHash is what a revocation records of a grant code.
func grantHash(code string) []byte {
	if code == "" {
		return nil
	}
	h := sha256.Sum256([]byte(code))
	return h[:]
}

// ErrNotApplied is returned when an identity event written to the log was not read back in
// time: whether it took effect is unknown until the node catches up.
var ErrNotApplied = errors.New("the identity event was not read back from the log in time")

// write produces ev for client (vouched) and waits until the registry has applied it.
func (r *Identities) write(ctx context.Context, p Producer, key ed25519.PrivateKey, client string, ev IdentityEvent) (Outcome, error) {
	value, err := json.Marshal(ev)
	if err != nil {
		return Outcome{}, err
	}
	done := r.expect(ev.Nonce)
	defer r.forget(ev.Nonce)
	msg := Record{Key: []byte(client), Value: value, Time: time.UnixMilli(ev.At)}
	if key != nil {
		msg.Headers = []Header{{Key: schema.HeaderVouch, Value: schema.Vouch(key, r.topic, msg.Key, msg.Value, 0)}}
	}
	if err := p.Produce(ctx, msg); err != nil {
		return Outcome{}, fmt.Errorf("cannot write the identity event of client %s: %w", client, err)
	}
	select {
	case out := <-done:
		return out, nil
	case <-ctx.Done():
		return Outcome{}, ErrNotApplied
	}
}
