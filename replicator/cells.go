package replicator

import (
	"context"
	"fmt"

	"github.com/statepipe/statepipe/schema"
)

// Kind is the aggregate table a cell belongs to (the agg_* tables of schema/ddl/0005, 0006).
type Kind uint8

const (
	KindStates Kind = 1 // clients per (scope, topic type, topic id, state); scanned for 500
	KindErrors Kind = 2 // clients per (scope, topic type, topic id, HRESULT)
	KindLists  Kind = 3 // clients per (scope, list, status)
	KindScans  Kind = 4 // clients per (scope, latest successful scan in Unix ms)
)

// String is the kind's name in hier_cells.kind.
func (k Kind) String() string {
	switch k {
	case KindStates:
		return "states"
	case KindErrors:
		return "errors"
	case KindLists:
		return "lists"
	case KindScans:
		return "scans"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// CellKey names one aggregate cell of a site. TopicID holds the list id for KindLists; Code is
// the state, HRESULT, status or scan time (Unix ms) by kind.
type CellKey struct {
	Kind      Kind
	Scope     string
	TopicType uint16
	TopicID   string
	Code      int64
}

// CellValue is a cell's absolute value.
type CellValue struct {
	Clients int64
	Scanned int64
}

// Cells is a site's set of counted cells; absent means zero.
type Cells map[CellKey]CellValue

// Querier runs read statements on the site's own store.
type Querier interface {
	Query(ctx context.Context, query string) (*schema.Result, error)
}

// ReadCells reads the counted cells of database db: the v_agg_* views, which count per
// partition only the cells of its current epoch (a plain FINAL over agg_* would sum every
// epoch). Zero cells are left out.
func ReadCells(ctx context.Context, q Querier, db string) (Cells, error) {
	res, err := q.Query(ctx, fmt.Sprintf(`
	SELECT toUInt8(1), scope, topic_type, topic_id, toInt64(state), toInt64(clients), toInt64(scanned) FROM %[1]s.v_agg_states WHERE clients != 0 OR scanned != 0
	UNION ALL SELECT toUInt8(2), scope, topic_type, topic_id, toInt64(error), toInt64(clients), toInt64(0) FROM %[1]s.v_agg_errors WHERE clients != 0
	UNION ALL SELECT toUInt8(3), scope, toUInt16(0), list, toInt64(status), toInt64(clients), toInt64(0) FROM %[1]s.v_agg_lists WHERE clients != 0
	UNION ALL SELECT toUInt8(4), scope, toUInt16(0), '', toUnixTimestamp64Milli(last_scan), toInt64(clients), toInt64(0) FROM %[1]s.v_agg_scans`, db))
	if err != nil {
		return nil, fmt.Errorf("cannot read the counted cells of %s: %w", db, err)
	}
	cells := make(Cells, len(res.Rows))
	for i := range res.Rows {
		var kind, tt int64
		var k CellKey
		var v CellValue
		if err := res.Scan(i, &kind, &k.Scope, &tt, &k.TopicID, &k.Code, &v.Clients, &v.Scanned); err != nil {
			return nil, fmt.Errorf("cannot read the counted cells of %s: %w", db, err)
		}
		k.Kind, k.TopicType = Kind(kind), uint16(tt)
		cells[k] = v
	}
	return cells, nil
}

// Changed returns the cells of now whose value differs from before's, with zero for those
// that disappeared (a cell that dropped to nothing must drop above too).
func Changed(before, now Cells) Cells {
	out := Cells{}
	for k, v := range now {
		if b, ok := before[k]; !ok || b != v {
			out[k] = v
		}
	}
	for k := range before {
		if _, ok := now[k]; !ok {
			out[k] = CellValue{}
		}
	}
	return out
}
