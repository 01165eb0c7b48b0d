package replicator

import (
	"context"
	"fmt"
	"strings"
)

// CellReader reads a site's counted cells as ReadCells does, but after the first read only
// the rows written since: the projector writes each cell per Kafka partition with version =
// the partition's last folded offset, under the partition's current epoch (schema/ddl/0005,
// 0009), so the rows of a partition with a version at or above the greatest it read are all
// that changed there. It keeps every partition's cells in memory, and their sum, changed cell by
// cell. A partition whose
// counted epoch changed (another projector took it over and rewrote its cells) is read again
// whole. Reading is then O(cells changed), not O(cells), which is what makes a replicator's
// second-by-second work proportional to what changed.
type CellReader struct {
	q  Querier
	db string

	fences map[int32]uint64                  // partition → the epoch counted
	since  [len(cellTables)]map[int32]uint64 // per table, partition → the greatest version read
	parts  map[int32]Cells                   // partition → its cells (no zeros)
	moved  map[int32]bool                    // partitions claimed during a read

	sum     Cells                // the partitions' cells summed (no zeros), kept as they change
	changed map[CellKey]struct{} // cells of sum changed since the last Update
}

// cellTables are the agg_* tables, in Kind order (index = Kind − 1), with their key columns as
// a cell's (scope, topic_type, topic_id, code) and whether they carry scanned.
var cellTables = [...]struct {
	table, keys string
	scanned     bool
}{
	{"agg_states", "scope, topic_type, topic_id, toInt64(state)", true},
	{"agg_errors", "scope, topic_type, topic_id, toInt64(error)", false},
	{"agg_lists", "scope, toUInt16(0), list, toInt64(status)", false},
	{"agg_scans", "scope, toUInt16(0), '', toUnixTimestamp64Milli(last_scan)", false},
}

// NewCellReader reads the counted cells of database db.
func NewCellReader(q Querier, db string) *CellReader {
	r := &CellReader{q: q, db: db, fences: map[int32]uint64{}, parts: map[int32]Cells{}, moved: map[int32]bool{},
		sum: Cells{}, changed: map[CellKey]struct{}{}}
	for i := range r.since {
		r.since[i] = map[int32]uint64{}
	}
	return r
}

// Read returns a copy of the site's counted cells now.
func (r *CellReader) Read(ctx context.Context) (Cells, error) {
	cells, _, err := r.Update(ctx)
	if err != nil {
		return nil, err
	}
	out := make(Cells, len(cells))
	for k, v := range cells {
		out[k] = v
	}
	return out, nil
}

// Update brings the cells up to date and returns them — the reader's own map, valid until the
// next Update — and the cells that changed since the last Update (a vanished one is absent
// from the map). Its cost follows the rows written since, not the cells held.
func (r *CellReader) Update(ctx context.Context) (Cells, []CellKey, error) {
	for attempt := 0; ; attempt++ {
		if err := r.read(ctx); err != nil {
			return nil, nil, err
		}
		if len(r.moved) == 0 {
			break
		}
		// A partition was claimed by another projector while it was being read: what was read
		// of it mixes two epochs. Read it again whole.
		if attempt == 2 {
			return nil, nil, fmt.Errorf("cannot read the cells of %s: partitions keep changing owner", r.db)
		}
		for p := range r.moved {
			r.forget(p)
			delete(r.fences, p)
		}
		clear(r.moved)
	}
	changed := make([]CellKey, 0, len(r.changed))
	for k := range r.changed {
		changed = append(changed, k)
	}
	clear(r.changed)
	return r.sum, changed, nil
}

// set gives cell k of partition p the value v, and the sum the difference.
func (r *CellReader) set(p int32, k CellKey, v CellValue) {
	cells := r.parts[p]
	if cells == nil {
		cells = Cells{}
		r.parts[p] = cells
	}
	old := cells[k]
	if old == v {
		return
	}
	if v == (CellValue{}) {
		delete(cells, k)
	} else {
		cells[k] = v
	}
	s := r.sum[k]
	s.Clients += v.Clients - old.Clients
	s.Scanned += v.Scanned - old.Scanned
	if s == (CellValue{}) {
		delete(r.sum, k)
	} else {
		r.sum[k] = s
	}
	r.changed[k] = struct{}{}
}

// read brings the partitions' cells up to date: the counted epochs, then each table's rows
// written since the last read.
func (r *CellReader) read(ctx context.Context) error {
	res, err := r.q.Query(ctx, "SELECT partition, epoch FROM "+r.db+".v_agg_fences")
	if err != nil {
		return fmt.Errorf("cannot read the counted epochs of %s: %w", r.db, err)
	}
	fences := make(map[int32]uint64, len(res.Rows))
	for i := range res.Rows {
		var p int64
		var e uint64
		if err := res.Scan(i, &p, &e); err != nil {
			return fmt.Errorf("cannot read the counted epochs of %s: %w", r.db, err)
		}
		fences[int32(p)] = e
	}
	for p, e := range r.fences {
		if fe, ok := fences[p]; !ok || fe != e {
			r.forget(p) // taken over (or gone): read it again whole
		}
	}
	r.fences = fences
	for t := range cellTables {
		if err := r.readTable(ctx, t); err != nil {
			return err
		}
	}
	return nil
}

// forget drops what was read of partition p.
func (r *CellReader) forget(p int32) {
	for k := range r.parts[p] {
		r.set(p, k, CellValue{})
	}
	delete(r.parts, p)
	for t := range r.since {
		delete(r.since[t], p)
	}
}

// readTable reads the rows of table t written since the last read, the latest per cell and
// partition, of the counted epochs.
func (r *CellReader) readTable(ctx context.Context, t int) error {
	ct := cellTables[t]
	var since strings.Builder
	since.WriteString("multiIf(")
	n := 0
	for p, v := range r.since[t] {
		if v == 0 {
			continue
		}
		fmt.Fprintf(&since, "partition = %d, %d, ", p, v)
		n++
	}
	threshold := "0"
	if n > 0 {
		since.WriteString("0)")
		threshold = since.String()
	}
	// The latest row of a cell is the one of the greatest version, and of two of one version
	// (cells recomputed for new reference data or an expiry are written again under the
	// partition's current version) the one inserted last: the part with the greater block
	// number, which is what ReplacingMergeTree keeps when it merges them. So the rows of each
	// partition's greatest version read so far are read again too.
	latest := "(version, toUInt64OrZero(splitByChar('_', _part)[3]))"
	scanned := "toInt64(0)"
	if ct.scanned {
		scanned = "argMax(scanned, " + latest + ")"
	}
	res, err := r.q.Query(ctx, fmt.Sprintf(`SELECT %[2]s, partition, toInt64(argMax(clients, %[6]s)), toInt64(%[3]s), max(version), max(epoch)
	FROM %[1]s.%[4]s
	WHERE (partition, epoch) IN (SELECT partition, epoch FROM %[1]s.v_agg_fences) AND version >= %[5]s
	GROUP BY %[2]s, partition`, r.db, ct.keys, scanned, ct.table, threshold, latest))
	if err != nil {
		return fmt.Errorf("cannot read the cells of %s.%s: %w", r.db, ct.table, err)
	}
	for i := range res.Rows {
		k := CellKey{Kind: Kind(t + 1)}
		var tt, p int64
		var v CellValue
		var version, epoch uint64
		if err := res.Scan(i, &k.Scope, &tt, &k.TopicID, &k.Code, &p, &v.Clients, &v.Scanned, &version, &epoch); err != nil {
			return fmt.Errorf("cannot read the cells of %s.%s: %w", r.db, ct.table, err)
		}
		k.TopicType = uint16(tt)
		part := int32(p)
		if e, counted := r.fences[part]; !counted || e != epoch {
			r.moved[part] = true // claimed since the epochs were read: read it again whole
			continue
		}
		r.set(part, k, v)
		r.since[t][part] = max(r.since[t][part], version)
	}
	return nil
}
