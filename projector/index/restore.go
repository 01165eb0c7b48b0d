package index

import "github.com/statepipe/statepipe/schema"

// Restoring from the store: the caller (projector.RestoreIndex) reads each table and loads its
// rows, then calls Recompute. Cells loaded with LoadCell are what the store holds; Recompute
// derives what they should be, so the next Changed writes only corrections.

// LoadPartition sets partition p's last folded offset as restored from the store.
func (x *Index) LoadPartition(p int32, lastOffset int64) {
	pt := x.part(p)
	pt.version = max(pt.version, lastOffset)
	pt.next = max(pt.next, lastOffset+1)
}

func (x *Index) loadClient(name string, p int32) *client {
	c := x.clients[name]
	if c == nil {
		c = &client{name: name, partition: p, keys: map[topicKey]keyState{}, scopes: x.collectionsOf[name]}
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
		c.scanSerial, c.scanMs = serial, timeMs
	}
}

// LoadState adds a current-state row of a loaded client (dropped if a marker removed it).
func (x *Index) LoadState(name string, tt schema.TopicType, topicID string, serial uint64, state int16, errCode int32) {
	if c := x.clients[name]; c != nil {
		x.apply(c, tt, topicID, serial, state, errCode)
	}
}

// LoadCell records an aggregate row the store holds for partition p (of the partition's
// current epoch), so that Changed writes exactly the cells whose value differs from it.
// cell.Table says which table and so which of its fields count: agg_states (Type, Topic,
// State, Clients, Scanned), agg_errors (Type, Topic, Error, Clients), agg_lists (Topic: the
// list, State: the status, Clients) or agg_scans (Scan, Clients); another table is ignored.
//
// The row's version is not taken: cells may be newer than the states loaded before them
// (another process folding meanwhile), and writing corrections under their version would let
// a stale view win. Partition offsets come from LoadPartition only.
func (x *Index) LoadCell(p int32, cell Cell) {
	k := cellKey{scope: x.intern(cell.Scope)}
	switch cell.Table {
	case tables[kindState]:
		k.kind, k.topicType, k.topic, k.state = kindState, cell.Type, x.intern(cell.Topic), cell.State
	case tables[kindError]:
		k.kind, k.topicType, k.topic, k.errCode = kindError, cell.Type, x.intern(cell.Topic), cell.Error
	case tables[kindList]:
		k.kind, k.topic, k.state = kindList, x.intern(cell.Topic), cell.State
	case tables[kindScan]:
		k.kind, k.scanMs = kindScan, cell.Scan
	default:
		return
	}
	pt := x.part(p)
	c := pt.cells[k]
	c.storedClients, c.storedScanned, c.stored = cell.Clients, cell.Scanned, true
	pt.mark(k, &c)
	pt.cells[k] = c
}

// Recompute derives every cell from the live state (after loading).
func (x *Index) Recompute() {
	for _, pt := range x.parts {
		for k, c := range pt.cells {
			c.clients, c.scanned = 0, 0
			pt.mark(k, &c)
			pt.cells[k] = c
		}
	}
	for _, c := range x.clients {
		x.contribute(c, 1)
	}
}
