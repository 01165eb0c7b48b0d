package ingest

import (
	"crypto/ed25519"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/statepipe/statepipe/schema"
)

// PhaseBook knows which phased deployments are released to each client, from the site's
// reference topic ref.<site>: the collections generated for the phases of each phased
// deployment (schema.PhaseCollectionID: "D~phase-N", their members), the releases the
// deciding site wrote (kind schema.RefPhases, key "phases/D~N") and the deployments (how many
// phases each has now). Feed it every record of ref.<site> from the start (Apply, as
// RefOwners), and ingest answers each report with Released(client) (schema.Ack.Released).
// Records of a site below are copies of the deciding site's, re-vouched by the site
// (replicator.Down), so the answer is the same wherever the client reports.
//
// It holds every member of every phase collection once (a map from client to its phases):
// about 150 bytes a client of a phased deployment (measured: 154 B for 100,000 clients of 2
// phases with 36-byte ids, 15 MB). Safe for
// concurrent use; the zero value knows nothing and checks no vouch.
type PhaseBook struct {
	// Topic and Keys check each record's vouch (schema.VerifyVouch) before it is applied:
	// what makes a machine start enforcing a deployment must come from the site. No keys:
	// records are not checked (auth off).
	Topic string
	Keys  []ed25519.PublicKey

	mu       sync.RWMutex
	members  map[string][]string   // phase collection id → its members
	clients  map[string][]phaseRef // client → the phases it is in (a few)
	released map[phaseRef]bool
	phases   map[string]int // deployment → its number of phases (0: not phased)
	ignored  int
}

type phaseRef struct {
	deployment string
	n          int
}

// NewPhaseBook returns an empty book of topic's records, checked with the site's keys (none:
// not checked).
func NewPhaseBook(topic string, keys ...ed25519.PublicKey) *PhaseBook {
	return &PhaseBook{Topic: topic, Keys: keys}
}

// Apply takes one record of ref.<site>, in topic order (the latest record of a key decides;
// records of distinct keys may come in any order). Records of other kinds, and of
// collections that are not phase collections, are not kept.
func (b *PhaseBook) Apply(r Record) {
	kind, id, ok := strings.Cut(string(r.Key), "/")
	if !ok {
		return
	}
	var coll bool
	switch schema.RefKind(kind) {
	case schema.RefCollections:
		if _, _, coll = schema.ParsePhaseCollectionID(id); !coll {
			return
		}
	case schema.RefPhases, schema.RefDeployments:
	default:
		return
	}
	if len(b.Keys) > 0 {
		accepted, err := schema.ParseAccepted(r.header(schema.HeaderAccepted))
		if err == nil {
			err = schema.VerifyVouch(b.Keys, b.Topic, r.Key, r.Value, r.header(schema.HeaderVouch), accepted)
		}
		if err != nil {
			b.mu.Lock()
			b.ignored++
			b.mu.Unlock()
			return
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.members == nil {
		b.members, b.clients = map[string][]string{}, map[string][]phaseRef{}
		b.released, b.phases = map[phaseRef]bool{}, map[string]int{}
	}
	switch schema.RefKind(kind) {
	case schema.RefCollections:
		var c schema.Collection
		if r.Value != nil && json.Unmarshal(r.Value, &c) != nil {
			b.ignored++
			return
		}
		b.setMembers(id, c.Members)
	case schema.RefPhases:
		i := strings.LastIndex(id, schema.ReservedIDSep)
		n, err := strconv.Atoi(id[i+1:])
		if i <= 0 || err != nil || n < 1 {
			b.ignored++
			return
		}
		ref := phaseRef{id[:i], n}
		if r.Value == nil {
			delete(b.released, ref)
			return
		}
		var rel schema.PhaseRelease
		if json.Unmarshal(r.Value, &rel) != nil || rel.Deployment != ref.deployment || rel.Phase != n {
			b.ignored++
			return
		}
		b.released[ref] = true
	case schema.RefDeployments:
		var d schema.Deployment
		if r.Value == nil {
			delete(b.phases, id)
			return
		}
		if json.Unmarshal(r.Value, &d) != nil {
			b.ignored++
			return
		}
		if len(d.Phases) == 0 {
			delete(b.phases, id)
		} else {
			b.phases[id] = len(d.Phases)
		}
	}
}

// setMembers replaces the members of phase collection id (b.mu held).
func (b *PhaseBook) setMembers(id string, members []string) {
	d, n, _ := schema.ParsePhaseCollectionID(id)
	ref := phaseRef{d, n}
	for _, c := range b.members[id] {
		refs := slices.DeleteFunc(b.clients[c], func(r phaseRef) bool { return r == ref })
		if len(refs) == 0 {
			delete(b.clients, c)
		} else {
			b.clients[c] = refs
		}
	}
	if len(members) == 0 {
		delete(b.members, id)
		return
	}
	b.members[id] = members
	for _, c := range members {
		if !slices.Contains(b.clients[c], ref) {
			b.clients[c] = append(b.clients[c], ref)
		}
	}
}

// Released returns the phased deployments released to client: those with a released phase
// whose generated collection holds it, while the deployment still has that phase (sorted; nil
// when none).
func (b *PhaseBook) Released(client string) []string {
	b.mu.RLock()
	defer b.mu.RUnlock()
	var out []string
	for _, ref := range b.clients[client] {
		if b.released[ref] && ref.n <= b.phases[ref.deployment] {
			out = append(out, ref.deployment)
		}
	}
	if len(out) == 0 {
		return nil
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Ignored returns how many records were not applied: not vouched for by the site, or
// unreadable.
func (b *PhaseBook) Ignored() int {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.ignored
}
