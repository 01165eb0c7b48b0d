package projector

import (
	"context"
	"fmt"
	"time"

	"github.com/statepipe/statepipe/projector/index"
	"github.com/statepipe/statepipe/schema"
)

// Reader streams query results (both store adapters).
type Reader interface {
	Query(ctx context.Context, query string) (*schema.Result, error)
	Each(ctx context.Context, query string, fn func(row []any) error) error
}

// LoadRef reads the site's reference data as the index needs it.
func LoadRef(ctx context.Context, rd Reader, db string) (index.Ref, error) {
	ref := index.Ref{Catalog: map[string]index.Update{}, Lists: map[string][]string{}, Collections: map[string][]string{}}
	err := rd.Each(ctx, fmt.Sprintf(`SELECT id, toUnixTimestamp64Milli(first_synced), expired,
		ifNull(toUnixTimestamp64Milli(expired_at), 0) FROM %s.v_updates`, db), func(r []any) error {
		var id string
		var u index.Update
		if err := schema.Scan(r, &id, &u.FirstSynced, &u.Expired, &u.ExpiredAt); err != nil {
			return err
		}
		ref.Catalog[id] = u
		return nil
	})
	if err != nil {
		return ref, fmt.Errorf("cannot read the catalog: %w", err)
	}
	for _, t := range []struct {
		query string
		into  map[string][]string
	}{
		{"SELECT id, updates FROM " + db + ".v_update_lists", ref.Lists},
		{"SELECT id, members FROM " + db + ".v_collections", ref.Collections},
	} {
		err := rd.Each(ctx, t.query, func(r []any) error {
			var id string
			var ids []string
			if err := schema.Scan(r, &id, &ids); err != nil {
				return err
			}
			t.into[id] = ids
			return nil
		})
		if err != nil {
			return ref, fmt.Errorf("cannot read reference data (%s): %w", t.query, err)
		}
	}
	return ref, nil
}

// refFingerprint changes whenever any reference data the index depends on is imported.
func refFingerprint(ctx context.Context, rd Reader, db string) (string, error) {
	res, err := rd.Query(ctx, fmt.Sprintf(`SELECT
		(SELECT toString(count()) || '/' || toString(sum(version)) FROM %[1]s.ref_updates) || ':' ||
		(SELECT toString(count()) || '/' || toString(sum(version)) FROM %[1]s.ref_update_lists) || ':' ||
		(SELECT toString(count()) || '/' || toString(sum(version)) FROM %[1]s.ref_collections)`, db))
	if err != nil {
		return "", err
	}
	var fp string
	if err := res.Scan(0, &fp); err != nil {
		return "", fmt.Errorf("cannot read the reference data's fingerprint: %w", err)
	}
	return fp, nil
}

// RestoreIndex builds a site's index from the store: reference data, every client with its
// partition, full-report markers, latest scans, current states, each partition's last folded
// offset, and (with cells) the aggregate cells the store holds, so the caller writes only
// corrections; without, every non-zero cell is written.
func RestoreIndex(ctx context.Context, rd Reader, db string, cleanup time.Duration, now time.Time, cells bool) (*index.Index, error) {
	ref, err := LoadRef(ctx, rd, db)
	if err != nil {
		return nil, err
	}
	x := index.New(cleanup)
	x.SetRef(ref, now)
	before := map[int32]int64{} // how far each partition was processed when the restore began
	steps := []struct {
		what, query string
		row         func(r []any) error
	}{
		// Each partition's current epoch: the rebuild writes under it; a projector process
		// sets the epochs of the partitions it claimed itself.
		{"epochs", `SELECT partition, epoch FROM {db}.v_agg_fences`, func(r []any) error {
			var p int32
			var epoch uint64
			if err := schema.Scan(r, &p, &epoch); err != nil {
				return err
			}
			x.SetEpoch(p, int64(epoch))
			return nil
		}},
		// Read first: the states read after it are at least this new. Only the offsets table
		// says so — it is a batch's last insert — while the raw log, its first, may be ahead
		// of the other tables (see offsetsSQL).
		{"partitions", offsetsSQL, partitionOffsets(func(p int32, o int64) {
			x.LoadPartition(p, o)
			before[p] = max(before[p], o)
		})},
		{"partitions folded before 0007", legacyPartitionsSQL, partitionOffsets(x.LoadPartition)},
		// A client's partition is fixed (its id keys its reports); rows written before 0005
		// have -1, and the raw log of before 0014 (one row per message) says which.
		{"clients", `SELECT c.client, if(c.p >= 0, c.p, m.p) FROM
			(SELECT client, max(partition) AS p FROM {db}.clients GROUP BY client) AS c
			LEFT JOIN (SELECT client, argMax(partition, offset) AS p FROM {db}.state_messages_before_0014
			           WHERE client IN (SELECT client FROM {db}.clients GROUP BY client HAVING max(partition) < 0)
			           GROUP BY client) AS m ON m.client = c.client`,
			func(r []any) error {
				var client string
				var p int32
				if err := schema.Scan(r, &client, &p); err != nil {
					return err
				}
				x.LoadClient(client, p)
				return nil
			}},
		{"full-report markers", `SELECT client, topic_type, max(serial) FROM {db}.full_reports GROUP BY client, topic_type`,
			func(r []any) error {
				var client string
				var tt schema.TopicType
				var serial uint64
				if err := schema.Scan(r, &client, &tt, &serial); err != nil {
					return err
				}
				x.LoadMarker(client, tt, serial)
				return nil
			}},
		{"scans", `SELECT client, max(serial), argMax(toUnixTimestamp64Milli(time), serial) FROM {db}.scan_history GROUP BY client`,
			func(r []any) error {
				var client string
				var serial uint64
				var ms int64
				if err := schema.Scan(r, &client, &serial, &ms); err != nil {
					return err
				}
				x.LoadScan(client, serial, ms)
				return nil
			}},
		{"current states", `SELECT client, topic_type, topic_id, serial, state, error FROM {db}.current_state FINAL`,
			func(r []any) error {
				var client, topic string
				var tt schema.TopicType
				var serial uint64
				var state int16
				var code int32
				if err := schema.Scan(r, &client, &tt, &topic, &serial, &state, &code); err != nil {
					return err
				}
				x.LoadState(client, tt, topic, serial, state, code)
				return nil
			}},
		// The cells readers count: those of each partition's current epoch (ddl/0009), in the
		// columns loadCell reads.
		{"agg_states", `SELECT partition, scope, topic_id, topic_type, state, 0, 0, clients, scanned FROM {db}.agg_states FINAL WHERE ` + fencedSQL,
			loadCell(x, "agg_states")},
		{"agg_errors", `SELECT partition, scope, topic_id, topic_type, 0, error, 0, clients, 0 FROM {db}.agg_errors FINAL WHERE ` + fencedSQL,
			loadCell(x, "agg_errors")},
		{"agg_lists", `SELECT partition, scope, list, 0, status, 0, 0, clients, 0 FROM {db}.agg_lists FINAL WHERE ` + fencedSQL,
			loadCell(x, "agg_lists")},
		{"agg_scans", `SELECT partition, scope, '', 0, 0, 0, toUnixTimestamp64Milli(last_scan), clients, 0 FROM {db}.agg_scans FINAL WHERE ` + fencedSQL,
			loadCell(x, "agg_scans")},
	}
	if !cells {
		steps = steps[:len(steps)-4]
	}
	for _, s := range steps {
		if err := rd.Each(ctx, replaceDB(s.query, db), s.row); err != nil {
			return nil, fmt.Errorf("cannot restore the index (%s): %w", s.what, err)
		}
	}
	// Partitions another process wrote, or began to write, while the tables were read one
	// after another are torn: hold their cells back until the index has folded past what
	// they reached. A batch inserts batches_begun before its tables: read last, it names
	// every batch whose rows the reads above may have seen, finished or not.
	err = rd.Each(ctx, replaceDB(begunSQL, db), partitionOffsets(func(p int32, o int64) {
		if b, ok := before[p]; !ok || o > b {
			x.MarkTorn(p, o)
		}
	}))
	if err != nil {
		return nil, fmt.Errorf("cannot restore the index (partitions, again): %w", err)
	}
	x.Recompute()
	return x, nil
}

// partitionOffsets passes every (partition, offset) row to fn.
func partitionOffsets(fn func(p int32, offset int64)) func(r []any) error {
	return func(r []any) error {
		var p int32
		var offset int64
		if err := schema.Scan(r, &p, &offset); err != nil {
			return err
		}
		fn(p, offset)
		return nil
	}
}

// fencedSQL keeps the cells of each partition's current epoch (report.Fenced).
const fencedSQL = `(partition, epoch) IN (SELECT partition, epoch FROM {db}.v_agg_fences)`

// offsetsSQL reads how far each partition was processed: a batch inserts the offsets table
// after every other base table, so whatever is read after it holds at least that much. The
// raw log cannot say so: it is inserted first, and a restore that took its offsets from there
// while a batch was being inserted would miss the batch's states and scans without knowing
// (that was the multi-member failure: two members writing the same cell version with
// different values).
const offsetsSQL = `SELECT partition, max(offset) FROM {db}.offsets GROUP BY partition`

// begunSQL reads how far batches have begun to be inserted, per partition (offsets covers
// partitions whose last batch predates 0008).
const begunSQL = `SELECT partition, max(offset) FROM {db}.batches_begun GROUP BY partition
	UNION ALL SELECT partition, max(offset) FROM {db}.offsets GROUP BY partition`

// legacyPartitionsSQL reads, from the raw log of before 0014 (where every row written before
// 0007 is), how far partitions were folded before 0007 added the offsets table; a partition's first batch since then lands in offsets, which the end of
// the restore reads, and marks it torn.
const legacyPartitionsSQL = `SELECT partition, max(offset) FROM {db}.state_messages_before_0014
	WHERE partition NOT IN (SELECT DISTINCT partition FROM {db}.offsets) GROUP BY partition`

// loadCell loads the rows of one aggregate table into x, read in the columns partition,
// scope, topic (or list), topic_type, state (or status), error, last scan (Unix ms), clients,
// scanned: a table without one of them reads 0 (or the empty string) in its place.
func loadCell(x *index.Index, table string) func(r []any) error {
	return func(r []any) error {
		var p int32
		c := index.Cell{Table: table}
		if err := schema.Scan(r, &p, &c.Scope, &c.Topic, &c.Type, &c.State, &c.Error, &c.Scan, &c.Clients, &c.Scanned); err != nil {
			return err
		}
		x.LoadCell(p, c)
		return nil
	}
}

// RebuildAggregates re-derives the aggregate tables of db from its (rebuilt) live state into
// fresh tables and swaps them in.
func RebuildAggregates(ctx context.Context, st schema.Store, db string, cleanup time.Duration) error {
	tables := []string{"agg_states", "agg_errors", "agg_lists", "agg_scans"}
	for _, t := range tables {
		for _, q := range []string{
			"DROP TABLE IF EXISTS " + db + "." + t + "_rebuild",
			"CREATE TABLE " + db + "." + t + "_rebuild AS " + db + "." + t,
		} {
			if err := st.Exec(ctx, q); err != nil {
				return fmt.Errorf("cannot rebuild %s.%s: %w", db, t, err)
			}
		}
	}
	x, err := RestoreIndex(ctx, st, db, cleanup, time.Now(), false)
	if err != nil {
		return err
	}
	// Under each partition's current epoch; a partition no process has claimed yet gets
	// epoch 0 recorded, so that readers count it.
	fences := NewFenceRows(db)
	for _, p := range x.Partitions() {
		fences.Add(p, uint64(x.Epoch(p)), 0, "rebuild")
	}
	for _, rows := range append(x.Changed(index.Target{DB: db, Suffix: "_rebuild"}), fences) {
		if err := st.Insert(ctx, rows); err != nil {
			return fmt.Errorf("cannot write rebuilt aggregates: %w", err)
		}
	}
	for _, t := range tables {
		live, fresh := db+"."+t, db+"."+t+"_rebuild"
		if err := st.Exec(ctx, "EXCHANGE TABLES "+live+" AND "+fresh); err != nil {
			return fmt.Errorf("cannot swap in rebuilt %s: %w", live, err)
		}
		if err := st.Exec(ctx, "DROP TABLE "+fresh); err != nil {
			return fmt.Errorf("cannot drop replaced %s: %w", live, err)
		}
	}
	return nil
}

// FenceRows are rows of agg_fences: a partition's cells under epoch are the ones readers count
// from now on (ddl/0009).
type FenceRows struct {
	table string
	rows  []fenceRow
}

// NewFenceRows returns empty rows for db.agg_fences.
func NewFenceRows(db string) *FenceRows { return &FenceRows{table: db + ".agg_fences"} }

type fenceRow struct {
	partition  int32
	epoch      uint64
	generation int32
	member     string
}

// Add records that generation's member claimed partition p under epoch.
func (f *FenceRows) Add(p int32, epoch uint64, generation int32, member string) {
	f.rows = append(f.rows, fenceRow{p, epoch, generation, member})
}

func (f *FenceRows) Table() string     { return f.table }
func (f *FenceRows) Columns() []string { return []string{"partition", "epoch", "generation", "member"} }
func (f *FenceRows) Len() int          { return len(f.rows) }
func (f *FenceRows) Values(i int) []any {
	r := f.rows[i]
	return []any{r.partition, r.epoch, r.generation, r.member}
}
func (f *FenceRows) AppendRowBinary(b []byte, i int) []byte {
	r := f.rows[i]
	b = schema.AppendInt32(b, r.partition)
	b = schema.AppendUInt64(b, r.epoch)
	b = schema.AppendInt32(b, r.generation)
	return schema.AppendString(b, r.member)
}
