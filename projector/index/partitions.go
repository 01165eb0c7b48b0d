package index

import "slices"

// part is one Kafka partition of the state topic: how far it is folded, the epoch its cells
// are written under, and its cells.
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
	dirty     []cellKey // cells changed since Changed last wrote the partition
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

// add adds clients and scanned to cell k.
func (pt *part) add(k cellKey, clients, scanned int64) {
	c := pt.cells[k]
	c.clients += clients
	c.scanned += scanned
	pt.mark(k, &c)
	pt.cells[k] = c
}

// mark puts cell k on the dirty list, once.
func (pt *part) mark(k cellKey, c *cell) {
	if !c.queued {
		c.queued = true
		pt.dirty = append(pt.dirty, k)
	}
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
// next write (Changed) writes every non-zero cell of p.
func (x *Index) Rewrite(p int32, epoch int64) {
	pt := x.part(p)
	pt.epoch = epoch
	for k, c := range pt.cells {
		c.storedClients, c.storedScanned, c.stored = 0, 0, false
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
