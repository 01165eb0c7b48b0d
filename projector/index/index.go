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
// and adds the new contribution — for a delta (no full report, no new scan) only the changed
// keys' cells and the client's summary cells (client count, scan, distinct errors, lists),
// so a delta costs its own size, not the client's whole key set (the list cells still read
// the client's keys, without writing a cell per key). The cells always equal a from-scratch
// computation over the live state, whatever the order of arrival (the per-key maximum, the
// markers and the latest scan are order-independent and idempotent, so a redelivered or
// replayed report changes nothing). A change of reference data recomputes every
// contribution.
//
// Cells are kept per Kafka partition and written with absolute values (Rows) only when they
// differ from what the store holds; the version of a partition's cells is the last offset of
// that partition folded. It is pure: no I/O, no clock (callers pass the time).
package index

import (
	"slices"
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

type kind uint8

const (
	kindState kind = 1 + iota
	kindError
	kindList
	kindScan
)

type cellKey struct {
	kind  kind
	tt    uint16
	state int16 // state (kindState) or list status (kindList)
	scope uint32
	id    uint32 // topic id (kindState, kindError) or list id (kindList)
	err   int32
	scan  int64 // latest successful scan, Unix ms (kindScan)
}

type cell struct {
	a, b     int64 // clients; scanned (kindState of 500)
	wa, wb   int64 // what the store holds
	written  bool
	dirty    bool
	reserved bool // on the dirty list
}

type part struct {
	version int64 // last offset folded (or restored)
	// epoch: the ownership epoch the partition's cells are written under (schema/ddl/0009):
	// readers count only the cells of a partition's current epoch. -1: not writable here.
	epoch int64
	next  int64 // next offset expected from the state topic
	// tornUntil: the restore read this partition while another process wrote it, so the
	// view may mix tables of different moments (even miss clients): its cells are not
	// written, and its next record restores the index again.
	tornUntil int64
	cells     map[cellKey]cell
	dirty     []cellKey
}

type key struct {
	serial uint64
	err    int32
	state  int16
}

type marker struct {
	tt     schema.TopicType
	serial uint64
}

type client struct {
	name       string
	part       int32
	keys       map[uint64]key // topic type << 32 | topic id
	maxSerial  uint64         // no live key has a greater serial (SerialUse)
	markers    []marker
	scanSerial uint64
	scanTime   int64
	scopes     []uint32 // interned collection ids; the site scope (0) is implied
	touched    bool
	// partial: touched by deltas only, so far in this batch: only its summary (client
	// count, scan, distinct errors, lists) was subtracted; its per-key cells move key by key.
	partial bool
}

type list struct {
	id uint32
	n  int     // distinct, not expired past the cleanup age
	fs []int64 // sorted first synchronisation of its catalog updates
}

type acc struct{ req, ok, scanned int }

// Index is a site's live state and aggregate cells. Not safe for concurrent use.
type Index struct {
	cleanup time.Duration
	// defaultEpoch is the epoch of a partition first met (SetDefaultEpoch).
	defaultEpoch int64
	names        []string
	ids          map[string]uint32
	clients      map[string]*client
	parts        map[int32]*part
	touched      []*client

	ref       Ref
	excluded  map[string]bool // catalog updates expired past the cleanup age
	fs        map[uint32]int64
	lists     []list
	listsOf   map[uint32][]uint16
	member    map[string][]uint32
	acc       []acc
	errs      []int32
	scopesBuf []uint32
}

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

func (x *Index) part(p int32) *part {
	pt := x.parts[p]
	if pt == nil {
		pt = &part{version: -1, tornUntil: -1, cells: map[cellKey]cell{}}
		pt.epoch = x.defaultEpoch
		x.parts[p] = pt
	}
	return pt
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
	k, live := c.keys[uint64(tt)<<32|uint64(id)]
	return k.serial, k.state, k.err, live
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
		out[v.serial] = SerialKey{TopicType: schema.TopicType(k >> 32), TopicID: x.names[uint32(k)], State: v.state, Err: v.err}
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

// NeedsRestore reports whether a record at offset of the state topic's partition p follows a
// stretch the index has not folded (another projector folded it): the index must be restored
// from the store before folding it.
func (x *Index) NeedsRestore(p int32, offset int64) bool {
	pt := x.parts[p]
	// A torn partition (written while it was being restored) may lack whole clients whose
	// rows were inserted between the restore's reads: re-folding cannot repair that.
	return offset > 0 && (pt == nil || offset > pt.next || pt.next <= pt.tornUntil)
}

// MarkTorn records that partition p changed while it was being restored, up to offset
// until: its cells are held back until the index has folded past it.
func (x *Index) MarkTorn(p int32, until int64) {
	pt := x.part(p)
	pt.tornUntil = max(pt.tornUntil, until)
}

// Next returns the next offset of partition p the index expects: everything before it is
// folded (0 for a partition it knows nothing of).
func (x *Index) Next(p int32) int64 {
	if pt := x.parts[p]; pt != nil {
		return pt.next
	}
	return 0
}

// Torn returns the partitions held back because they changed while being restored.
func (x *Index) Torn() []int32 {
	var out []int32
	for p, pt := range x.parts {
		if pt.next <= pt.tornUntil {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// Pending returns the partitions with cells not yet written (or held back).
func (x *Index) Pending() []int32 {
	var out []int32
	for p, pt := range x.parts {
		if len(pt.dirty) > 0 {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// SetEpoch sets the epoch partition p's cells are written under; -1 holds them back (another
// process owns the partition). The cells the index believes the store holds are those the
// readers count, of the partition's current epoch: use Rewrite for a new epoch.
func (x *Index) SetEpoch(p int32, epoch int64) { x.part(p).epoch = epoch }

// SetDefaultEpoch sets the epoch of partitions the index has not met yet (0 unless set).
func (x *Index) SetDefaultEpoch(epoch int64) { x.defaultEpoch = epoch }

// Epoch returns the epoch partition p's cells are written under (-1: held back).
func (x *Index) Epoch(p int32) int64 {
	if pt := x.parts[p]; pt != nil {
		return pt.epoch
	}
	return x.defaultEpoch
}

// Partitions returns the partitions the index knows.
func (x *Index) Partitions() []int32 {
	out := make([]int32, 0, len(x.parts))
	for p := range x.parts {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// Rewrite writes partition p under a new epoch: the store holds nothing under it yet, so the
// next write (Changed*) writes every non-zero cell of p.
func (x *Index) Rewrite(p int32, epoch int64) {
	pt := x.part(p)
	pt.epoch = epoch
	for k, c := range pt.cells {
		c.wa, c.wb, c.written = 0, 0, false
		pt.mark(k, &c)
		pt.cells[k] = c
	}
}

// Seen records that the record at offset of partition p was handled (folded or dead-lettered).
func (x *Index) Seen(p int32, offset int64) {
	pt := x.part(p)
	pt.next = max(pt.next, offset+1)
	pt.version = max(pt.version, offset)
}

// --- restoring from the store ---

// LoadPartition sets partition p's last folded offset as restored from the store.
func (x *Index) LoadPartition(p int32, lastOffset int64) {
	pt := x.part(p)
	pt.version = max(pt.version, lastOffset)
	pt.next = max(pt.next, lastOffset+1)
}

func (x *Index) loadClient(name string, p int32) *client {
	c := x.clients[name]
	if c == nil {
		c = &client{name: name, part: p, keys: map[uint64]key{}, scopes: x.member[name]}
		x.clients[name] = c
		x.part(p)
	}
	return c
}

// LoadClient adds a client the site has heard from, with its partition.
func (x *Index) LoadClient(name string, p int32) { x.loadClient(name, p) }

// LoadMarker adds a full-report marker of a loaded client.
func (x *Index) LoadMarker(name string, tt schema.TopicType, serial uint64) {
	if c := x.clients[name]; c != nil {
		c.setMarker(tt, serial)
	}
}

// LoadScan sets a loaded client's latest successful scan.
func (x *Index) LoadScan(name string, serial uint64, timeMs int64) {
	if c := x.clients[name]; c != nil && serial >= c.scanSerial {
		c.scanSerial, c.scanTime = serial, timeMs
	}
}

// LoadState adds a current-state row of a loaded client (dropped if a marker removed it).
func (x *Index) LoadState(name string, tt schema.TopicType, topicID string, serial uint64, state int16, errCode int32) {
	if c := x.clients[name]; c != nil {
		x.apply(c, tt, topicID, serial, state, errCode)
	}
}

// LoadCell records an aggregate row the store holds (the latest version of partition p), so
// Rows writes exactly the cells whose value differs from it.
func (x *Index) LoadCell(p int32, table string, scope, topicOrList string, tt uint16, stateOrStatus int16, errCode int32, scanMs int64, clients, scanned int64, version int64) {
	k := cellKey{scope: x.intern(scope), id: x.intern(topicOrList), tt: tt, state: stateOrStatus, err: errCode}
	switch table {
	case "agg_scans":
		k = cellKey{kind: kindScan, scope: k.scope, scan: scanMs}
	case "agg_states":
		k.kind = kindState
	case "agg_errors":
		k.kind, k.state = kindError, 0
	case "agg_lists":
		k.kind, k.tt = kindList, 0
	default:
		return
	}
	// The version is not taken from the cell: cells may be newer than the states loaded
	// before them (another process folding meanwhile), and writing corrections under their
	// version would let a stale view win. Partition offsets come from LoadPartition only.
	_ = version
	pt := x.part(p)
	c := pt.cells[k]
	c.wa, c.wb, c.written = clients, scanned, true
	pt.mark(k, &c)
	pt.cells[k] = c
}

// Recompute derives every cell from the live state (after loading).
func (x *Index) Recompute() {
	for _, pt := range x.parts {
		for k, c := range pt.cells {
			c.a, c.b = 0, 0
			pt.mark(k, &c)
			pt.cells[k] = c
		}
	}
	for _, c := range x.clients {
		x.contribute(c, 1)
	}
}

// --- reference data ---

// SetRef replaces the reference data and recomputes every contribution when what the cells
// depend on changed. It returns whether it recomputed.
func (x *Index) SetRef(r Ref, now time.Time) bool {
	if x.sameDerived(r, now) {
		x.ref = r
		return false
	}
	x.zero()
	x.setRef(r, now)
	for _, c := range x.clients {
		c.scopes = x.member[c.name]
		x.contribute(c, 1)
	}
	return true
}

// Tick re-evaluates the expiry cleanup at now (an update expired longer than the cleanup age
// leaves the lists) and recomputes if it changed anything.
func (x *Index) Tick(now time.Time) bool { return x.SetRef(x.ref, now) }

func (x *Index) zero() {
	for _, pt := range x.parts {
		for k, c := range pt.cells {
			if c.a != 0 || c.b != 0 {
				c.a, c.b = 0, 0
				pt.mark(k, &c)
				pt.cells[k] = c
			}
		}
	}
}

func (x *Index) excludedAt(r Ref, now time.Time) map[string]bool {
	ex := map[string]bool{}
	cut := now.Add(-x.cleanup).UnixMilli()
	for id, u := range r.Catalog {
		if u.Expired && u.ExpiredAt <= cut {
			ex[id] = true
		}
	}
	return ex
}

// sameDerived reports whether r at now derives the same first synchronisations, lists and
// memberships as the current reference data.
func (x *Index) sameDerived(r Ref, now time.Time) bool {
	if len(r.Catalog) != len(x.ref.Catalog) || len(r.Lists) != len(x.ref.Lists) || len(r.Collections) != len(x.ref.Collections) {
		return false
	}
	for id, u := range r.Catalog {
		if o, ok := x.ref.Catalog[id]; !ok || o.FirstSynced != u.FirstSynced {
			return false
		}
	}
	for id, l := range r.Lists {
		if o, ok := x.ref.Lists[id]; !ok || !slices.Equal(l, o) {
			return false
		}
	}
	for id, m := range r.Collections {
		if o, ok := x.ref.Collections[id]; !ok || !slices.Equal(m, o) {
			return false
		}
	}
	ex := x.excludedAt(r, now)
	if len(ex) != len(x.excluded) {
		return false
	}
	for id := range ex {
		if !x.excluded[id] {
			return false
		}
	}
	return true
}

func (x *Index) setRef(r Ref, now time.Time) {
	x.ref = r
	x.excluded = x.excludedAt(r, now)
	x.fs = make(map[uint32]int64, len(r.Catalog))
	for id, u := range r.Catalog {
		x.fs[x.intern(id)] = u.FirstSynced
	}
	x.listsOf = map[uint32][]uint16{}
	x.lists = x.lists[:0]
	addList := func(id string, updates []string) {
		if len(x.lists) >= 1<<16 {
			return // more lists than a cell can name; never in practice
		}
		l := list{id: x.intern(id)}
		seen := map[uint32]bool{}
		for _, u := range updates {
			if x.excluded[u] {
				continue
			}
			uid := x.intern(u)
			if seen[uid] {
				continue
			}
			seen[uid] = true
			l.n++
			x.listsOf[uid] = append(x.listsOf[uid], uint16(len(x.lists)))
			if fs, ok := x.fs[uid]; ok {
				l.fs = append(l.fs, fs)
			}
		}
		slices.Sort(l.fs)
		x.lists = append(x.lists, l)
	}
	if len(r.Catalog) > 0 {
		all := make([]string, 0, len(r.Catalog))
		for id := range r.Catalog {
			all = append(all, id)
		}
		addList(CatalogList, all)
	}
	for id, updates := range r.Lists {
		addList(id, updates)
	}
	x.acc = make([]acc, len(x.lists))
	x.member = map[string][]uint32{}
	for id, members := range r.Collections {
		sid := x.intern(id)
		for _, m := range members {
			if s := x.member[m]; len(s) == 0 || s[len(s)-1] != sid {
				x.member[m] = append(s, sid)
			}
		}
	}
}

// --- folding ---

// Fold applies one report of partition p at offset. Call End after the batch's last Fold.
//
// A delta (no full report, no new scan) costs its own size: the per-key cells of the keys it
// changes move one by one, and only the client's summary cells (client count, scan, distinct
// errors, update lists) are recomputed, once per batch. Anything else subtracts the client's
// whole contribution and adds it back at End.
func (x *Index) Fold(p int32, offset int64, r *schema.Report) {
	c := x.clients[r.Client]
	delta := c != nil && x.isDelta(c, r)
	switch {
	case c == nil:
		c = x.loadClient(r.Client, p)
	case c.touched && c.partial && !delta:
		x.contributeKeys(c, -1) // the summary was subtracted already
		c.partial = false
	case c.touched:
	case !x.changes(c, r):
		// A heartbeat, a redelivery, a replay: nothing to subtract and add back.
		x.Seen(p, offset)
		return
	case delta:
		x.contributeSummary(c, -1)
		c.partial = true
	default:
		x.contribute(c, -1)
	}
	if !c.touched {
		c.touched = true
		x.touched = append(x.touched, c)
	}
	x.Seen(p, offset)
	if c.partial {
		for i := range r.Messages {
			if m := &r.Messages[i]; m.TopicType.Keyed() {
				x.applyDelta(c, m.TopicType, m.TopicID, m.Serial, int16(m.State), m.Error)
			}
		}
		return
	}
	if len(r.FullTypes) > 0 {
		lowest := r.Messages[0].Serial
		for i := range r.Messages {
			lowest = min(lowest, r.Messages[i].Serial)
		}
		for _, t := range r.FullTypes {
			c.setMarker(t, lowest)
		}
	}
	for i := range r.Messages {
		m := &r.Messages[i]
		if m.TopicType == schema.TopicScan && (m.State == schema.ScanCompleted || m.State == schema.ScanCompletedWithErrors) && m.Serial >= c.scanSerial {
			c.scanSerial, c.scanTime = m.Serial, m.Time
		}
		if m.TopicType.Keyed() {
			x.apply(c, m.TopicType, m.TopicID, m.Serial, int16(m.State), m.Error)
		}
	}
}

// isDelta reports whether r leaves client c's full-report markers and latest scan as they are
// (so only the keys it carries can move).
func (x *Index) isDelta(c *client, r *schema.Report) bool {
	if len(r.FullTypes) > 0 {
		return false
	}
	for i := range r.Messages {
		m := &r.Messages[i]
		if c.newScan(m) {
			return false
		}
	}
	return true
}

// newScan reports whether m is a successful scan that would change the client's latest one.
func (c *client) newScan(m *schema.StateMessage) bool {
	return m.TopicType == schema.TopicScan && (m.State == schema.ScanCompleted || m.State == schema.ScanCompletedWithErrors) &&
		(m.Serial > c.scanSerial || m.Serial == c.scanSerial && m.Time != c.scanTime)
}

// changes reports whether folding r would change anything of client c.
func (x *Index) changes(c *client, r *schema.Report) bool {
	if len(r.FullTypes) > 0 {
		lowest := r.Messages[0].Serial
		for i := range r.Messages {
			lowest = min(lowest, r.Messages[i].Serial)
		}
		for _, t := range r.FullTypes {
			if lowest > c.marker(t) {
				return true
			}
		}
	}
	for i := range r.Messages {
		m := &r.Messages[i]
		if c.newScan(m) {
			return true
		}
		if !m.TopicType.Keyed() || m.Serial < c.marker(m.TopicType) {
			continue
		}
		id, ok := x.ids[m.TopicID]
		if !ok {
			return true
		}
		old, ok := c.keys[uint64(m.TopicType)<<32|uint64(id)]
		if !ok || old.serial < m.Serial || old.serial == m.Serial && (old.state != int16(m.State) || old.err != m.Error) {
			return true
		}
	}
	return false
}

// End adds the contributions of the clients the batch touched.
func (x *Index) End() {
	for _, c := range x.touched {
		c.touched = false
		if c.partial {
			c.partial = false
			x.contributeSummary(c, 1)
		} else {
			x.contribute(c, 1)
		}
	}
	clear(x.touched)
	x.touched = x.touched[:0]
}

func (c *client) marker(tt schema.TopicType) uint64 {
	for _, m := range c.markers {
		if m.tt == tt {
			return m.serial
		}
	}
	return 0
}

// setMarker raises the full-report marker of tt and removes the keys it replaced.
func (c *client) setMarker(tt schema.TopicType, serial uint64) {
	for i := range c.markers {
		if c.markers[i].tt == tt {
			if serial <= c.markers[i].serial {
				return
			}
			c.markers[i].serial = serial
			c.dropBelow(tt, serial)
			return
		}
	}
	c.markers = append(c.markers, marker{tt, serial})
	c.dropBelow(tt, serial)
}

func (c *client) dropBelow(tt schema.TopicType, serial uint64) {
	for k, v := range c.keys {
		if schema.TopicType(k>>32) == tt && v.serial < serial {
			delete(c.keys, k)
		}
	}
}

// apply folds one keyed message: the greatest serial wins (of equal serials the later one, as
// in the store), and a key older than the type's full-report marker is not live.
// It returns the key, its live value before, whether it had one, and whether the live value
// changed.
func (x *Index) apply(c *client, tt schema.TopicType, topicID string, serial uint64, state int16, errCode int32) (k uint64, old key, had, changed bool) {
	if serial < c.marker(tt) {
		return 0, key{}, false, false
	}
	k = uint64(tt)<<32 | uint64(x.intern(topicID))
	old, had = c.keys[k]
	if had && old.serial > serial {
		return k, old, had, false
	}
	v := key{serial: serial, err: errCode, state: state}
	c.keys[k] = v
	c.maxSerial = max(c.maxSerial, serial)
	return k, old, had, !had || v != old
}

// applyDelta is apply for a client whose per-key cells move key by key: the cells of the
// key's old state are subtracted and those of its new state added.
func (x *Index) applyDelta(c *client, tt schema.TopicType, topicID string, serial uint64, state int16, errCode int32) {
	k, old, had, changed := x.apply(c, tt, topicID, serial, state, errCode)
	if !changed {
		return
	}
	scopes := x.scopes(c)
	pt := x.part(c.part)
	if had {
		x.keyCells(pt, c, scopes, k, old, -1)
	}
	x.keyCells(pt, c, scopes, k, c.keys[k], 1)
}

// contribute adds sign × the client's contribution to its partition's cells.
func (x *Index) contribute(c *client, sign int64) {
	x.contributeKeys(c, sign)
	x.contributeSummary(c, sign)
}

func (x *Index) scopes(c *client) []uint32 {
	scopes := append(append(x.scopesBuf[:0], 0), c.scopes...)
	x.scopesBuf = scopes
	return scopes
}

// contributeKeys adds sign × the per-key cells of every live key of the client.
func (x *Index) contributeKeys(c *client, sign int64) {
	pt := x.part(c.part)
	scopes := x.scopes(c)
	for k, v := range c.keys {
		x.keyCells(pt, c, scopes, k, v, sign)
	}
}

// keyCells adds sign × one live key's cells: its state (and for 500 whether the client
// scanned after the update's first synchronisation), and its HRESULT per topic.
func (x *Index) keyCells(pt *part, c *client, scopes []uint32, k uint64, v key, sign int64) {
	tt, id := uint16(k>>32), uint32(k)
	scanned := x.scannedAfter(c, tt, id, v)
	for _, s := range scopes {
		pt.add(cellKey{kind: kindState, tt: tt, id: id, state: v.state, scope: s}, sign, sign*scanned)
	}
	if v.err != 0 && (tt == uint16(schema.TopicUpdateEnforcement) || tt == uint16(schema.TopicDeploymentEnforcement)) {
		for _, s := range scopes {
			pt.add(cellKey{kind: kindError, tt: tt, id: id, err: v.err, scope: s}, sign, 0)
		}
	}
}

// scannedAfter is 1 when a 500 key in state 1–3 belongs to a client whose latest successful
// scan is newer than the update's first synchronisation.
func (x *Index) scannedAfter(c *client, tt uint16, id uint32, v key) int64 {
	if tt == uint16(schema.TopicUpdateCompliance) && v.state >= 1 && v.state <= 3 {
		if fs, ok := x.fs[id]; ok && c.scanTime > fs {
			return 1
		}
	}
	return 0
}

// contributeSummary adds sign × the client's cells that depend on all its keys at once: the
// client count, its latest scan, the distinct HRESULTs it carries and its compliance with
// every update list.
func (x *Index) contributeSummary(c *client, sign int64) {
	pt := x.part(c.part)
	scopes := x.scopes(c)
	for _, s := range scopes {
		pt.add(cellKey{kind: kindState, scope: s}, sign, 0)
		if c.scanSerial > 0 {
			pt.add(cellKey{kind: kindScan, scope: s, scan: c.scanTime}, sign, 0)
		}
	}
	clear(x.acc)
	errs := x.errs[:0]
	for k, v := range c.keys {
		tt, id := uint16(k>>32), uint32(k)
		if v.err != 0 && (tt == uint16(schema.TopicUpdateEnforcement) || tt == uint16(schema.TopicDeploymentEnforcement)) {
			if !slices.Contains(errs, v.err) {
				errs = append(errs, v.err)
			}
		}
		if tt == uint16(schema.TopicUpdateCompliance) {
			scanned := x.scannedAfter(c, tt, id, v)
			for _, l := range x.listsOf[id] {
				a := &x.acc[l]
				switch v.state {
				case 2:
					a.req++
				case 1, 3:
					a.ok++
				}
				a.scanned += int(scanned)
			}
		}
	}
	x.errs = errs
	for _, e := range errs {
		for _, s := range scopes {
			pt.add(cellKey{kind: kindError, err: e, scope: s}, sign, 0)
		}
	}
	for i := range x.lists {
		l, a := &x.lists[i], x.acc[i]
		if l.n == 0 {
			continue // nothing to comply with: the report shows such a list as all unknown
		}
		status := int16(StatusUnknown)
		if a.req > 0 {
			status = StatusNonCompliant
		} else if inferable, _ := slices.BinarySearch(l.fs, c.scanTime); a.ok+inferable-a.scanned == l.n {
			status = StatusCompliant
		}
		for _, s := range scopes {
			pt.add(cellKey{kind: kindList, id: l.id, state: status, scope: s}, sign, 0)
		}
	}
}

func (pt *part) add(k cellKey, da, db int64) {
	c := pt.cells[k]
	c.a += da
	c.b += db
	pt.mark(k, &c)
	pt.cells[k] = c
}

func (pt *part) mark(k cellKey, c *cell) {
	if !c.reserved {
		c.reserved = true
		pt.dirty = append(pt.dirty, k)
	}
	c.dirty = true
}

// --- writing ---

// Changed collects the cells whose value differs from what the store holds, in rows for the
// agg_* tables of database db, and records them as written. Call it after a batch's End (or
// a restore, or a SetRef that recomputed) and insert the rows before committing the batch.
func (x *Index) Changed(db string) []schema.Rows { return x.ChangedFor(db, "", nil) }

// ChangedInto is Changed writing to the agg_* tables with suffix appended to their names.
func (x *Index) ChangedInto(db, suffix string) []schema.Rows { return x.ChangedFor(db, suffix, nil) }

// ChangedFor is ChangedInto for the partitions allow accepts (nil: all); the changed cells
// of the others stay pending until a later call allows them. A process writes only the
// partitions whose every committed record it has folded: another group member owns the rest,
// and this process's view of them may be stale.
func (x *Index) ChangedFor(db, suffix string, allow func(p int32) bool) []schema.Rows {
	st := &CellRows{table: db + ".agg_states" + suffix, kind: kindState, names: x.names}
	er := &CellRows{table: db + ".agg_errors" + suffix, kind: kindError, names: x.names}
	li := &CellRows{table: db + ".agg_lists" + suffix, kind: kindList, names: x.names}
	sc := &CellRows{table: db + ".agg_scans" + suffix, kind: kindScan, names: x.names}
	parts := make([]int32, 0, len(x.parts))
	for p := range x.parts {
		parts = append(parts, p)
	}
	slices.Sort(parts)
	for _, p := range parts {
		pt := x.parts[p]
		if allow != nil && !allow(p) || pt.next <= pt.tornUntil || pt.epoch < 0 {
			continue
		}
		version := uint64(max(pt.version, 0))
		for _, k := range pt.dirty {
			c := pt.cells[k]
			c.dirty, c.reserved = false, false
			if c.a == c.wa && c.b == c.wb && (c.written || c.a == 0 && c.b == 0) {
				if c.a == 0 && c.b == 0 {
					delete(pt.cells, k)
				} else {
					pt.cells[k] = c
				}
				continue
			}
			r := row{key: k, part: p, a: c.a, b: c.b, version: version, epoch: uint64(pt.epoch)}
			switch k.kind {
			case kindState:
				st.rows = append(st.rows, r)
			case kindError:
				er.rows = append(er.rows, r)
			case kindList:
				li.rows = append(li.rows, r)
			case kindScan:
				sc.rows = append(sc.rows, r)
			}
			c.wa, c.wb, c.written = c.a, c.b, true
			if c.a == 0 && c.b == 0 {
				delete(pt.cells, k) // the store holds 0, as an absent cell means
			} else {
				pt.cells[k] = c
			}
		}
		clear(pt.dirty)
		pt.dirty = pt.dirty[:0]
	}
	var out []schema.Rows
	for _, r := range []schema.Rows{st, er, li, sc} {
		if r.Len() > 0 {
			out = append(out, r)
		}
	}
	return out
}

type row struct {
	key     cellKey
	part    int32
	a, b    int64
	version uint64
	epoch   uint64
}

// CellRows are rows of one aggregate table: agg_states, agg_errors or agg_lists.
type CellRows struct {
	table string
	kind  kind
	names []string
	rows  []row
}

func (r *CellRows) Table() string { return r.table }
func (r *CellRows) Len() int      { return len(r.rows) }

func (r *CellRows) Columns() []string {
	switch r.kind {
	case kindState:
		return []string{"scope", "topic_type", "topic_id", "state", "partition", "clients", "scanned", "version", "epoch"}
	case kindError:
		return []string{"scope", "topic_type", "topic_id", "error", "partition", "clients", "version", "epoch"}
	case kindScan:
		return []string{"scope", "last_scan", "partition", "clients", "version", "epoch"}
	}
	return []string{"scope", "list", "status", "partition", "clients", "version", "epoch"}
}

func (r *CellRows) AppendRowBinary(b []byte, i int) []byte {
	w := &r.rows[i]
	b = schema.AppendString(b, r.names[w.key.scope])
	switch r.kind {
	case kindState:
		b = schema.AppendUInt16(b, w.key.tt)
		b = schema.AppendString(b, r.names[w.key.id])
		b = schema.AppendInt16(b, w.key.state)
	case kindError:
		b = schema.AppendUInt16(b, w.key.tt)
		b = schema.AppendString(b, r.names[w.key.id])
		b = schema.AppendInt32(b, w.key.err)
	case kindList:
		b = schema.AppendString(b, r.names[w.key.id])
		b = schema.AppendUInt8(b, uint8(w.key.state))
	case kindScan:
		b = schema.AppendInt64(b, w.key.scan)
	}
	b = schema.AppendInt32(b, w.part)
	b = schema.AppendInt64(b, w.a)
	if r.kind == kindState {
		b = schema.AppendInt64(b, w.b)
	}
	b = schema.AppendUInt64(b, w.version)
	return schema.AppendUInt64(b, w.epoch)
}

func (r *CellRows) Values(i int) []any {
	w := &r.rows[i]
	scope, id := r.names[w.key.scope], r.names[w.key.id]
	switch r.kind {
	case kindState:
		return []any{scope, w.key.tt, id, w.key.state, w.part, w.a, w.b, w.version, w.epoch}
	case kindError:
		return []any{scope, w.key.tt, id, w.key.err, w.part, w.a, w.version, w.epoch}
	case kindScan:
		return []any{scope, schema.MillisTime(w.key.scan), w.part, w.a, w.version, w.epoch}
	}
	return []any{scope, id, int8(w.key.state), w.part, w.a, w.version, w.epoch}
}

// Cell is one aggregate cell summed over partitions, for tests and tools.
type Cell struct {
	Table   string
	Scope   string
	Topic   string // topic id or list id
	Type    uint16
	State   int16 // state, or list status
	Error   int32
	Scan    int64 // latest successful scan, Unix ms (agg_scans)
	Clients int64
	Scanned int64
}

// Cells returns every non-zero cell summed over partitions.
func (x *Index) Cells() map[Cell]bool {
	sum := map[cellKey][2]int64{}
	for _, pt := range x.parts {
		for k, c := range pt.cells {
			s := sum[k]
			sum[k] = [2]int64{s[0] + c.a, s[1] + c.b}
		}
	}
	out := map[Cell]bool{}
	for k, v := range sum {
		if v[0] == 0 && v[1] == 0 {
			continue
		}
		c := Cell{Scope: x.names[k.scope], Topic: x.names[k.id], Type: k.tt, State: k.state, Error: k.err, Scan: k.scan, Clients: v[0], Scanned: v[1]}
		c.Table = map[kind]string{kindState: "agg_states", kindError: "agg_errors", kindList: "agg_lists", kindScan: "agg_scans"}[k.kind]
		out[c] = true
	}
	return out
}
