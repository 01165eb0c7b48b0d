package fold

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/statepipe/statepipe/schema"
)

// RefRows are rows of one reference-data table (ref_updates, ref_update_lists,
// ref_collections, ref_deployments, ref_phase_releases): one row per imported version,
// version = the record's Kafka offset.
type RefRows struct {
	table   string
	kind    schema.RefKind
	columns []string
	rows    []refRow
}

type refRow struct {
	v          any // *schema.Update, *schema.UpdateList, *schema.Collection, *schema.Deployment or *schema.PhaseRelease
	importedAt int64
	version    uint64
}

var refColumns = map[schema.RefKind][]string{
	schema.RefCatalog:     {"id", "article", "title", "classification", "severity", "product", "bundle", "superseded_by", "expired", "first_synced", "vendor", "released", "imported_at", "version"},
	schema.RefUpdateLists: {"id", "name", "updates", "imported_at", "version"},
	schema.RefCollections: {"id", "name", "members", "imported_at", "version"},
	schema.RefDeployments: {"id", "name", "updates", "collection", "start", "deadline", "mandatory", "site", "phases", "imported_at", "version"},
	schema.RefPhases:      {"deployment", "phase", "name", "released_at", "reason", "imported_at", "version"},
}

var refTables = map[schema.RefKind]string{
	schema.RefCatalog:     "ref_updates",
	schema.RefUpdateLists: "ref_update_lists",
	schema.RefCollections: "ref_collections",
	schema.RefDeployments: "ref_deployments",
	schema.RefPhases:      "ref_phase_releases",
}

func newRefRows(db string, k schema.RefKind) RefRows {
	return RefRows{table: db + "." + refTables[k], kind: k, columns: refColumns[k]}
}

func (r *RefRows) Table() string     { return r.table }
func (r *RefRows) Columns() []string { return r.columns }
func (r *RefRows) Len() int          { return len(r.rows) }

func (r *RefRows) AppendRowBinary(b []byte, i int) []byte {
	w := &r.rows[i]
	switch v := w.v.(type) {
	case *schema.Update:
		b = schema.AppendString(b, v.ID)
		b = schema.AppendString(b, v.Article)
		b = schema.AppendString(b, v.Title)
		b = schema.AppendString(b, v.Classification)
		b = schema.AppendString(b, v.Severity)
		b = schema.AppendString(b, v.Product)
		b = schema.AppendString(b, v.Bundle)
		b = schema.AppendStrings(b, v.SupersededBy)
		b = schema.AppendUInt8(b, boolByte(v.Expired))
		b = schema.AppendInt64(b, v.FirstSynced.UnixMilli())
		b = schema.AppendString(b, v.Vendor)
		b = schema.AppendInt64(b, v.Released.UnixMilli()) // 0: unknown
	case *schema.UpdateList:
		b = schema.AppendString(b, v.ID)
		b = schema.AppendString(b, v.Name)
		b = schema.AppendStrings(b, v.Updates)
	case *schema.Collection:
		b = schema.AppendString(b, v.ID)
		b = schema.AppendString(b, v.Name)
		b = schema.AppendStrings(b, v.Members)
	case *schema.Deployment:
		b = schema.AppendString(b, v.ID)
		b = schema.AppendString(b, v.Name)
		b = schema.AppendStrings(b, v.Updates)
		b = schema.AppendString(b, v.Collection)
		b = schema.AppendInt64(b, v.Start.UnixMilli())
		b = schema.AppendInt64(b, v.Deadline.UnixMilli())
		b = schema.AppendUInt8(b, boolByte(v.Mandatory))
		b = schema.AppendString(b, v.Site)
		b = schema.AppendString(b, phasesJSON(v.Phases))
	case *schema.PhaseRelease:
		b = schema.AppendString(b, v.Deployment)
		b = schema.AppendUInt16(b, uint16(v.Phase))
		b = schema.AppendString(b, v.Name)
		b = schema.AppendInt64(b, v.ReleasedAt.UnixMilli())
		b = schema.AppendString(b, v.Reason)
	default:
		panic(fmt.Sprintf("BUG: reference row of type %T", w.v))
	}
	b = schema.AppendInt64(b, w.importedAt)
	return schema.AppendUInt64(b, w.version)
}

func (r *RefRows) Values(i int) []any {
	w := &r.rows[i]
	var vals []any
	switch v := w.v.(type) {
	case *schema.Update:
		vals = []any{v.ID, v.Article, v.Title, v.Classification, v.Severity, v.Product, v.Bundle,
			nonNil(v.SupersededBy), boolByte(v.Expired), v.FirstSynced.UTC(), v.Vendor, schema.MillisTime(v.Released.UnixMilli())}
	case *schema.UpdateList:
		vals = []any{v.ID, v.Name, nonNil(v.Updates)}
	case *schema.Collection:
		vals = []any{v.ID, v.Name, nonNil(v.Members)}
	case *schema.Deployment:
		vals = []any{v.ID, v.Name, nonNil(v.Updates), v.Collection, v.Start.UTC(), v.Deadline.UTC(), boolByte(v.Mandatory), v.Site, phasesJSON(v.Phases)}
	case *schema.PhaseRelease:
		vals = []any{v.Deployment, uint16(v.Phase), v.Name, v.ReleasedAt.UTC(), v.Reason}
	default:
		panic(fmt.Sprintf("BUG: reference row of type %T", w.v))
	}
	return append(vals, schema.MillisTime(w.importedAt), w.version)
}

// AddRef folds one reference-data record (key "<kind>/<id>", value its canonical JSON). It
// returns an error for a record it cannot read; the caller dead-letters it. A record of a kind
// this version does not fold (schema.FoldedRefKinds: one a newer version writes) is skipped,
// not refused: reference data flows down a hierarchy whose sites may run other versions.
func (b *Batch) AddRef(key string, value []byte, offset, acceptedAt int64) error {
	kind, id, ok := strings.Cut(key, "/")
	k := schema.RefKind(kind)
	if !ok || kind == "" || id == "" {
		return fmt.Errorf("reference record key %q is not <kind>/<id>", key)
	}
	if !k.Folded() {
		return nil
	}
	v, err := schema.DecodeRef(k, value)
	if err != nil {
		return fmt.Errorf("cannot decode %s record %s: %w", k, id, err)
	}
	if b.ref == nil {
		b.ref = map[schema.RefKind]*RefRows{}
	}
	rows, ok := b.ref[k]
	if !ok {
		r := newRefRows(b.db, k)
		rows = &r
		b.ref[k] = rows
	}
	rows.rows = append(rows.rows, refRow{v: v, importedAt: acceptedAt, version: uint64(offset)})
	b.refCount++
	return nil
}

// phasesJSON is the phases column of ref_deployments: the phases as stored, empty for none.
func phasesJSON(ps []schema.Phase) string {
	if len(ps) == 0 {
		return ""
	}
	b, err := json.Marshal(ps)
	if err != nil {
		panic("BUG: cannot encode decoded phases: " + err.Error())
	}
	return string(b)
}

func boolByte(v bool) uint8 {
	if v {
		return 1
	}
	return 0
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
