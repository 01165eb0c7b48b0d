// Package index keeps a site's live state in memory and maintains the aggregates reports read
// (schema/ddl/0005_aggregates.sql) incrementally as reports fold.
//
// The index holds, per client: the live keys (greatest serial per key, minus keys a later
// full report removed — folding rules 1 and 2), the full-report markers, the latest
// successful scan, the client's Kafka partition and its collections. From these and the
// reference data (catalog first synchronisation, update lists, collections) it derives each
// client's contribution to the aggregate cells: clients per (scope, topic type, topic, state),
// how many of the 500-state clients scanned after the update's first synchronisation (rule 3),
// clients per (scope, topic, HRESULT), and clients per (scope, update list, compliance).
//
// Folding a batch subtracts each touched client's contribution once, applies its messages,
// and adds the new contribution — for a delta (no full report) only the changed keys' cells,
// the cells of the keys a newer scan flips (500 states 1–3 whose update was first
// synchronised between the two scans) and the client's summary cells (client count, scan,
// distinct errors, lists), so a delta writes cells in proportion to its own size, not the
// client's whole key set (the scan and list cells still read the client's keys, without
// writing a cell per key). The cells always equal a from-scratch
// computation over the live state, whatever the order of arrival (the per-key maximum, the
// markers and the latest scan are order-independent and idempotent, so a redelivered or
// replayed report changes nothing). A change of reference data recomputes every
// contribution.
//
// Cells are kept per Kafka partition and written with absolute values (Changed) only when they
// differ from what the store holds; the version of a partition's cells is the last offset of
// that partition folded. It is pure: no I/O, no clock (callers pass the time).
//
// The work is split into files by phase, as Prometheus's tsdb splits its Head: this file has
// the types and New; restore.go loads what the store holds, ref.go derives what the cells
// need of the reference data, fold.go folds reports into clients and their contributions,
// partitions.go keeps each partition's offsets, epoch and cells, and rows.go writes the
// changed cells as rows of the agg_* tables.
package index

import (
	"time"

	"github.com/statepipe/statepipe/schema"
)

// Status of a client's compliance with an update list (agg_lists.status).
const (
	StatusUnknown      = 0
	StatusCompliant    = 1
	StatusNonCompliant = 2
)

// CatalogList is the id of the implicit list of every catalog update.
const CatalogList = ""

// Update is what the index needs of a catalog entry.
type Update struct {
	FirstSynced int64 // Unix ms
	Expired     bool
	ExpiredAt   int64 // Unix ms when it was first imported as expired since it last was not; 0 if not expired
}

// Ref is the site's reference data as the v_* views show it.
type Ref struct {
	Catalog     map[string]Update
	Lists       map[string][]string // update list id → update ids
	Collections map[string][]string // collection id → client ids
}

// kind is the aggregate table a cell belongs to.
type kind uint8

const (
	kindState kind = 1 + iota // agg_states
	kindError                 // agg_errors
	kindList                  // agg_lists
	kindScan                  // agg_scans
)

// cellKey names one aggregate cell of a partition. Strings are interned (Index.names).
type cellKey struct {
	kind      kind
	topicType uint16 // 0 in the client count (kindState) and in every kindList, kindScan cell
	state     int16  // state (kindState) or list status (kindList)
	scope     uint32 // collection id; 0: the whole site
	topic     uint32 // topic id (kindState, kindError) or list id (kindList)
	errCode   int32  // HRESULT (kindError)
	scanMs    int64  // latest successful scan, Unix ms (kindScan)
}

// cell is one aggregate cell's value: what the live state makes it, and what the store holds.
type cell struct {
	clients       int64 // clients counted in the cell
	scanned       int64 // of them, those that scanned after the update's first sync (500 states of kindState)
	storedClients int64 // clients as the store holds it (stored)
	storedScanned int64 // scanned as the store holds it
	stored        bool  // the store holds a row for the cell (written or restored)
	queued        bool  // the cell's key is on its partition's dirty list
}

// topicKey is a live key of a client: topic type << 32 | interned topic id.
type topicKey uint64

func makeTopicKey(tt schema.TopicType, topic uint32) topicKey {
	return topicKey(uint64(tt)<<32 | uint64(topic))
}

func (k topicKey) topicType() uint16 { return uint16(k >> 32) }
func (k topicKey) topic() uint32     { return uint32(k) }

// keyState is the live state of one key: the message with the greatest serial.
type keyState struct {
	serial  uint64
	errCode int32
	state   int16
}

// marker is a client's full-report marker of a topic type: keys below serial are not live.
type marker struct {
	topicType schema.TopicType
	serial    uint64
}

// client is what the index holds of one client.
type client struct {
	name      string
	partition int32
	keys      map[topicKey]keyState
	maxSerial uint64 // no live key has a greater serial (SerialUse)
	markers   []marker
	// The latest successful scan: its serial and client-clock time (Unix ms).
	scanSerial uint64
	scanMs     int64
	scopes     []uint32 // interned collection ids; the site scope (0) is implied
	touched    bool     // folded in this batch: on Index.touched
	// partial: touched by deltas only, so far in this batch: only its summary (client
	// count, scan, distinct errors, lists) was subtracted; its per-key cells move key by key.
	partial bool
}

// Index is a site's live state and aggregate cells. Not safe for concurrent use.
type Index struct {
	cleanup time.Duration // how long an expired update stays in lists
	// defaultEpoch is the epoch of a partition first met (SetDefaultEpoch).
	defaultEpoch int64
	names        []string          // interned strings (ids, scopes, topic ids) by number
	ids          map[string]uint32 // names' numbers
	clients      map[string]*client
	parts        map[int32]*part
	touched      []*client // clients folded in this batch, for End

	// Derived from the reference data (ref.go).
	ref           Ref
	excluded      map[string]bool     // catalog updates expired past the cleanup age
	updates       []updateRef         // by interned id: what the reference data says of it as an update
	lists         []list              // the catalog list and every update list
	collectionsOf map[string][]uint32 // client → the collections it is a member of

	// Scratch space of contributeSummary and scopes, reused between clients.
	tallies     []listTally // per list
	errsBuf     []int32
	scanErrsBuf []int32
	scopesBuf   []uint32
}

// updateRef is what the reference data says of one interned id as a catalog update. The
// folding loops look it up for every live key, so it is a slice indexed by the id rather than
// a map.
type updateRef struct {
	firstSynced int64    // its first synchronisation, Unix ms (if inCatalog)
	inCatalog   bool     // the catalog has it
	lists       []uint16 // the lists (indexes into lists) it is in
}

// update returns the reference data of interned id; an id interned after the reference data
// was set is in no list and not in the catalog.
func (x *Index) update(id uint32) *updateRef {
	if int(id) < len(x.updates) {
		return &x.updates[id]
	}
	return &noUpdate
}

var noUpdate updateRef

// New returns an empty index; cleanup is how long an expired update stays in lists.
func New(cleanup time.Duration) *Index {
	x := &Index{cleanup: cleanup, ids: map[string]uint32{}, clients: map[string]*client{}, parts: map[int32]*part{}}
	x.intern("") // 0: the site scope and the catalog list
	x.setRef(Ref{}, time.Time{})
	return x
}

func (x *Index) intern(s string) uint32 {
	if id, ok := x.ids[s]; ok {
		return id
	}
	id := uint32(len(x.names))
	x.names = append(x.names, s)
	x.ids[s] = id
	return id
}

// State returns the live state of (client, tt, topicID): its serial, state and error code,
// and whether the key is live.
func (x *Index) State(clientName string, tt schema.TopicType, topicID string) (serial uint64, state int16, errCode int32, ok bool) {
	c := x.clients[clientName]
	if c == nil {
		return 0, 0, 0, false
	}
	id, known := x.ids[topicID]
	if !known {
		return 0, 0, 0, false
	}
	k, live := c.keys[makeTopicKey(tt, id)]
	return k.serial, k.state, k.errCode, live
}

// SerialKey is the live key of a client whose state is at some serial.
type SerialKey struct {
	TopicType schema.TopicType
	TopicID   string
	State     int16
	Err       int32
}

// MaxSerial returns a serial no live key of client is above (0: no live key).
func (x *Index) MaxSerial(clientName string) uint64 {
	if c := x.clients[clientName]; c != nil {
		return c.maxSerial
	}
	return 0
}

// LiveSerials returns the live keys of client by the serial of their state: a client's serial
// names one message, so another message under a serial here is a conflict. It costs the
// client's live keys; callers keep it while the index does not change (a batch being built).
func (x *Index) LiveSerials(clientName string) map[uint64]SerialKey {
	c := x.clients[clientName]
	if c == nil {
		return nil
	}
	out := make(map[uint64]SerialKey, len(c.keys))
	for k, v := range c.keys {
		out[v.serial] = SerialKey{TopicType: schema.TopicType(k.topicType()), TopicID: x.names[k.topic()], State: v.state, Err: v.errCode}
	}
	return out
}

// Clients returns how many clients the index holds.
func (x *Index) Clients() int { return len(x.clients) }

// Keys returns how many live keys the index holds.
func (x *Index) Keys() int {
	n := 0
	for _, c := range x.clients {
		n += len(c.keys)
	}
	return n
}
