package storetest

import (
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

// MessageRow is one row of <db>.state_messages, with times in Unix milliseconds.
type MessageRow struct {
	Client     string
	Serial     uint64
	Time       int64
	TopicType  uint16
	TopicID    string
	State      int16
	Error      int32
	Params     []string
	Full       uint8
	AcceptedAt int64
	Partition  int32
	Offset     int64
}

// MessageRows is a schema.Rows batch for <db>.state_messages.
type MessageRows struct {
	DB   string
	Rows []MessageRow
}

var _ schema.Rows = (*MessageRows)(nil)

func (r *MessageRows) Table() string { return r.DB + ".state_messages" }
func (r *MessageRows) Columns() []string {
	return []string{"client", "serial", "time", "topic_type", "topic_id", "state", "error", "params", "full", "accepted_at", "partition", "offset"}
}
func (r *MessageRows) Len() int { return len(r.Rows) }

func (r *MessageRows) AppendRowBinary(b []byte, i int) []byte {
	w := &r.Rows[i]
	b = schema.AppendString(b, w.Client)
	b = schema.AppendUInt64(b, w.Serial)
	b = schema.AppendInt64(b, w.Time)
	b = schema.AppendUInt16(b, w.TopicType)
	b = schema.AppendString(b, w.TopicID)
	b = schema.AppendInt16(b, w.State)
	b = schema.AppendInt32(b, w.Error)
	b = schema.AppendStrings(b, w.Params)
	b = schema.AppendUInt8(b, w.Full)
	b = schema.AppendInt64(b, w.AcceptedAt)
	b = schema.AppendInt32(b, w.Partition)
	return schema.AppendInt64(b, w.Offset)
}

func (r *MessageRows) Values(i int) []any {
	w := &r.Rows[i]
	params := w.Params
	if params == nil {
		params = []string{} // the native protocol's Array(String) takes an empty slice, not nil
	}
	return []any{w.Client, w.Serial, schema.MillisTime(w.Time), w.TopicType, w.TopicID, w.State,
		w.Error, params, w.Full, schema.MillisTime(w.AcceptedAt), w.Partition, w.Offset}
}
