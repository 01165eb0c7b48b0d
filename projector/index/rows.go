package index

import (
	"slices"

	"github.com/statepipe/statepipe/schema"
)

// Writing: the cells whose value differs from what the store holds become rows of the agg_*
// tables, with absolute values.

// tables names the aggregate table of each kind of cell.
var tables = [...]string{kindState: "agg_states", kindError: "agg_errors", kindList: "agg_lists", kindScan: "agg_scans"}

// Target says where Changed writes and which partitions it may.
type Target struct {
	DB string // the site's database
	// Suffix is appended to the agg_* table names (the rebuild writes agg_states_rebuild …).
	Suffix string
	// Allow accepts the partitions to write (nil: all); the changed cells of the others stay
	// pending until a later call allows them. A process writes only the partitions whose
	// every committed record it has folded: another group member owns the rest, and this
	// process's view of them may be stale.
	Allow func(p int32) bool
}

// Changed collects the cells whose value differs from what the store holds, in rows for the
// agg_* tables of to, and records them as written. Call it after a batch's End (or a restore,
// or a SetRef that recomputed) and insert the rows before committing the batch. Partitions
// held back (torn, or epoch -1) are not written.
func (x *Index) Changed(to Target) []schema.Rows {
	var byKind [len(tables)]*CellRows
	for k := kindState; k <= kindScan; k++ {
		byKind[k] = &CellRows{table: to.DB + "." + tables[k] + to.Suffix, kind: k, names: x.names}
	}
	parts := make([]int32, 0, len(x.parts))
	for p := range x.parts {
		parts = append(parts, p)
	}
	slices.Sort(parts)
	for _, p := range parts {
		pt := x.parts[p]
		if to.Allow != nil && !to.Allow(p) || pt.next <= pt.tornUntil || pt.epoch < 0 {
			continue
		}
		version := uint64(max(pt.version, 0))
		for _, k := range pt.dirty {
			c := pt.cells[k]
			c.queued = false
			zero := c.clients == 0 && c.scanned == 0
			if c.clients == c.storedClients && c.scanned == c.storedScanned && (c.stored || zero) {
				if zero {
					delete(pt.cells, k)
				} else {
					pt.cells[k] = c
				}
				continue
			}
			rows := byKind[k.kind]
			rows.rows = append(rows.rows, cellRow{key: k, partition: p, clients: c.clients, scanned: c.scanned, version: version, epoch: uint64(pt.epoch)})
			c.storedClients, c.storedScanned, c.stored = c.clients, c.scanned, true
			if zero {
				delete(pt.cells, k) // the store holds 0, as an absent cell means
			} else {
				pt.cells[k] = c
			}
		}
		clear(pt.dirty)
		pt.dirty = pt.dirty[:0]
	}
	var out []schema.Rows
	for _, r := range byKind[kindState:] {
		if r.Len() > 0 {
			out = append(out, r)
		}
	}
	return out
}

// cellRow is one row of an aggregate table: a cell's value under its partition's version and
// epoch.
type cellRow struct {
	key       cellKey
	partition int32
	clients   int64
	scanned   int64
	version   uint64
	epoch     uint64
}

// CellRows are rows of one aggregate table: agg_states, agg_errors, agg_lists or agg_scans.
type CellRows struct {
	table string
	kind  kind
	names []string
	rows  []cellRow
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
		b = schema.AppendUInt16(b, w.key.topicType)
		b = schema.AppendString(b, r.names[w.key.topic])
		b = schema.AppendInt16(b, w.key.state)
	case kindError:
		b = schema.AppendUInt16(b, w.key.topicType)
		b = schema.AppendString(b, r.names[w.key.topic])
		b = schema.AppendInt32(b, w.key.errCode)
	case kindList:
		b = schema.AppendString(b, r.names[w.key.topic])
		b = schema.AppendUInt8(b, uint8(w.key.state))
	case kindScan:
		b = schema.AppendInt64(b, w.key.scanMs)
	}
	b = schema.AppendInt32(b, w.partition)
	b = schema.AppendInt64(b, w.clients)
	if r.kind == kindState {
		b = schema.AppendInt64(b, w.scanned)
	}
	b = schema.AppendUInt64(b, w.version)
	return schema.AppendUInt64(b, w.epoch)
}

func (r *CellRows) Values(i int) []any {
	w := &r.rows[i]
	scope, topic := r.names[w.key.scope], r.names[w.key.topic]
	switch r.kind {
	case kindState:
		return []any{scope, w.key.topicType, topic, w.key.state, w.partition, w.clients, w.scanned, w.version, w.epoch}
	case kindError:
		return []any{scope, w.key.topicType, topic, w.key.errCode, w.partition, w.clients, w.version, w.epoch}
	case kindScan:
		return []any{scope, schema.MillisTime(w.key.scanMs), w.partition, w.clients, w.version, w.epoch}
	}
	return []any{scope, topic, int8(w.key.state), w.partition, w.clients, w.version, w.epoch}
}

// Cell is one aggregate cell: summed over partitions (Cells), or a row the store holds
// (LoadCell).
type Cell struct {
	Table   string // agg_states, agg_errors, agg_lists or agg_scans
	Scope   string // collection id; "" the whole site
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
			sum[k] = [2]int64{s[0] + c.clients, s[1] + c.scanned}
		}
	}
	out := map[Cell]bool{}
	for k, v := range sum {
		if v[0] == 0 && v[1] == 0 {
			continue
		}
		out[Cell{Table: tables[k.kind], Scope: x.names[k.scope], Topic: x.names[k.topic], Type: k.topicType, State: k.state,
			Error: k.errCode, Scan: k.scanMs, Clients: v[0], Scanned: v[1]}] = true
	}
	return out
}
