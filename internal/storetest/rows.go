package storetest

import (
	"github.com/statepipe/statepipe/projector/fold"
	"github.com/statepipe/statepipe/schema"
)

// CurrentRow is one row of <db>.current_state, with times in Unix milliseconds.
type CurrentRow struct {
	TopicType  uint16
	TopicID    string
	Client     string
	Serial     uint64
	State      int16
	Error      int32
	Time       int64
	AcceptedAt int64
}

// CurrentRows is a schema.Rows batch for <db>.current_state, written independently of the
// projector's encoder so the contract suite checks the adapters, not one caller.
type CurrentRows struct {
	DB   string
	Rows []CurrentRow
}

var _ schema.Rows = (*CurrentRows)(nil)

func (r *CurrentRows) Table() string { return r.DB + ".current_state" }
func (r *CurrentRows) Columns() []string {
	return []string{"topic_type", "topic_id", "client", "serial", "state", "error", "time", "accepted_at"}
}
func (r *CurrentRows) Len() int { return len(r.Rows) }

func (r *CurrentRows) AppendRowBinary(b []byte, i int) []byte {
	w := &r.Rows[i]
	b = schema.AppendUInt16(b, w.TopicType)
	b = schema.AppendString(b, w.TopicID)
	b = schema.AppendString(b, w.Client)
	b = schema.AppendUInt64(b, w.Serial)
	b = schema.AppendInt16(b, w.State)
	b = schema.AppendInt32(b, w.Error)
	b = schema.AppendInt64(b, w.Time)
	return schema.AppendInt64(b, w.AcceptedAt)
}

func (r *CurrentRows) Values(i int) []any {
	w := &r.Rows[i]
	return []any{w.TopicType, w.TopicID, w.Client, w.Serial, w.State, w.Error,
		schema.MillisTime(w.Time), schema.MillisTime(w.AcceptedAt)}
}

// rawReports is the raw log's rows (<db>.raw_reports, one per report) of recs, as the
// projector writes them; the state_messages view reads them back one row per message.
func rawReports(db string, recs ...fold.Record) schema.Rows {
	b := fold.NewBatch(db)
	for _, r := range recs {
		b.Add(r)
	}
	return &b.Raw
}
