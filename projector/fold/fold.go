// Package fold turns decoded reports into the rows the projector writes: the raw log (one row
// per report, its messages in arrays: raw_reports, ddl/0014) and the current state per key.
// It is pure (no I/O, no clock) and deterministic — the same records give the same rows in
// the same order — so a replayed batch writes identical rows and
// the store's ReplacingMergeTree tables make replays and duplicates change nothing.
//
// Folding rule (DESIGN §3, rule 1): the current state of a key (client, topic_type, topic_id)
// is the message with the greatest serial; time never orders. Within a batch the fold keeps
// only the greatest serial per key; across batches the store keeps the greatest (the table's
// version column is serial). Full reports emit markers (rule 2: the report's smallest serial per
// full type) that the live-state view applies; Not-required inference is the reports' (rule 3)
// and resync the projector's tracker (rule 5).
package fold

import (
	"crypto/sha256"
	"encoding/binary"
	"math"
	"slices"
	"time"

	"github.com/statepipe/statepipe/schema"
)

// Record is one Kafka record's report with where and when it was accepted.
type Record struct {
	Partition  int
	Offset     int64
	AcceptedAt int64 // Unix ms, the record's timestamp set by ingest
	Report     *schema.Report
}

// Batch accumulates the rows of many records.
type Batch struct {
	Raw     ReportRows // the raw log: one row per report (ddl/0014)
	Current CurrentRows
	Full    FullRows                              // full-report markers (rule 2)
	Clients ClientRows                            // one row per record: the client and its greatest serial
	Scans   ScanRows                              // successful scans (501 state 3 or 6), for Not-required inference
	Latest  LatestScanRows                        // the same scans into client_scans, which keeps each client's latest
	Offsets OffsetRows                            // per partition, the greatest offset processed (folded or dead-lettered)
	Begun   OffsetRows                            // the same into batches_begun: inserted first, Offsets last
	index   map[stateKey]int                      // key → position in Current
	serials map[clientSerial]*schema.StateMessage // (client, serial) → its message: a serial is one message
	msgs    int                                   // state messages in Raw

	db       string
	ref      map[schema.RefKind]*RefRows
	refCount int
}

type stateKey struct {
	client  string
	topic   schema.TopicType
	topicID string
}

type clientSerial struct {
	client string
	serial uint64
}

// NewBatch returns an empty batch writing to database db.
func NewBatch(db string) *Batch {
	return &Batch{
		db:      db,
		Raw:     ReportRows{table: db + ".raw_reports"},
		Current: CurrentRows{table: db + ".current_state"},
		Full:    FullRows{table: db + ".full_reports"},
		Clients: ClientRows{table: db + ".clients"},
		Scans:   ScanRows{table: db + ".scan_history"},
		Latest:  LatestScanRows{table: db + ".client_scans"},
		Offsets: OffsetRows{table: db + ".offsets", max: map[int32]int64{}},
		Begun:   OffsetRows{table: db + ".batches_begun"},
		index:   map[stateKey]int{},
		serials: map[clientSerial]*schema.StateMessage{},
	}
}

// Messages returns how many state messages the batch holds.
func (b *Batch) Messages() int { return b.msgs }

// Tables returns the batch's row sets in insert order: reference data first, so a report that
// arrives with its catalog sees it.
func (b *Batch) Tables() []schema.Rows {
	var out []schema.Rows
	if len(b.Offsets.max) > 0 {
		// First: a restore reading the store meanwhile learns that this batch is in flight.
		b.Offsets.parts = b.Offsets.parts[:0]
		for p := range b.Offsets.max {
			b.Offsets.parts = append(b.Offsets.parts, p)
		}
		slices.Sort(b.Offsets.parts)
		b.Begun.max, b.Begun.parts = b.Offsets.max, b.Offsets.parts
		out = append(out, &b.Begun)
	}
	for _, k := range schema.FoldedRefKinds {
		if r, ok := b.ref[k]; ok && r.Len() > 0 {
			out = append(out, r)
		}
	}
	b.Latest.rows = b.Scans.rows
	out = append(out, &b.Raw, &b.Current, &b.Full, &b.Clients, &b.Scans, &b.Latest)
	if len(b.Offsets.max) > 0 {
		out = append(out, &b.Offsets) // last
	}
	return out
}

// Processed records that the state-topic record at offset of partition was handled (folded
// or dead-lettered).
func (b *Batch) Processed(partition int, offset int64) {
	p := int32(partition)
	if o, ok := b.Offsets.max[p]; !ok || offset > o {
		b.Offsets.max[p] = offset
	}
}

// RefRecords returns how many reference-data records the batch holds.
func (b *Batch) RefRecords() int { return b.refCount }

// Size returns how many rows the batch will write for its records (messages and reference
// records), the measure batching flushes on.
func (b *Batch) Size() int { return b.msgs + b.refCount }

// Add folds one record into the batch.
func (b *Batch) Add(rec Record) {
	r := rec.Report
	minSerial, maxSerial := r.LowestSerial(), r.Messages[0].Serial
	for i := range r.Messages {
		maxSerial = max(maxSerial, r.Messages[i].Serial)
	}
	for _, t := range r.FullTypes {
		// Every key the report carries has serial >= minSerial; every key of an earlier report
		// has a smaller one. Markers only grow, so order of arrival does not matter.
		b.Full.rows = append(b.Full.rows, fullRow{client: r.Client, topic: t, serial: minSerial, acceptedAt: rec.AcceptedAt})
	}
	b.Clients.rows = append(b.Clients.rows, clientRow{client: r.Client, serial: maxSerial, acceptedAt: rec.AcceptedAt, partition: int32(rec.Partition)})
	b.Raw.add(rec, minSerial)
	b.msgs += len(r.Messages)
	for i := range r.Messages {
		m := &r.Messages[i]
		if m.IsSuccessfulScan() {
			b.Scans.rows = append(b.Scans.rows, scanRow{client: r.Client, msg: m})
		}
		b.serials[clientSerial{r.Client, m.Serial}] = m
		if !m.TopicType.Keyed() {
			continue
		}
		k := stateKey{r.Client, m.TopicType, m.TopicID}
		row := currentRow{client: r.Client, msg: m, acceptedAt: rec.AcceptedAt}
		if j, ok := b.index[k]; ok {
			// <=: of two messages with the same serial (a conflict; identical duplicates are the
			// usual case) the later record wins, as ReplacingMergeTree keeps the last inserted.
			if b.Current.rows[j].msg.Serial <= m.Serial {
				b.Current.rows[j] = row
			}
			continue
		}
		b.index[k] = len(b.Current.rows)
		b.Current.rows = append(b.Current.rows, row)
	}
}

// State returns the message the batch folds for (client, tt, topicID), if it has one.
func (b *Batch) State(client string, tt schema.TopicType, topicID string) (*schema.StateMessage, bool) {
	j, ok := b.index[stateKey{client, tt, topicID}]
	if !ok {
		return nil, false
	}
	return b.Current.rows[j].msg, true
}

// AtSerial returns the message the batch holds at (client, serial), if any: a client's serial
// names one message, so another message at it is a conflict.
func (b *Batch) AtSerial(client string, serial uint64) (*schema.StateMessage, bool) {
	m, ok := b.serials[clientSerial{client, serial}]
	return m, ok
}

// SameMessage reports whether a and b are the same message (a duplicate delivery): every
// field but the serial equal.
func SameMessage(a, b *schema.StateMessage) bool {
	return a.TopicType == b.TopicType && a.TopicID == b.TopicID && a.State == b.State && a.Error == b.Error &&
		a.Time == b.Time && slices.Equal(a.Params, b.Params)
}

// MessageHash is the raw log's message_hash of m (ddl/0010, an element of message_hashes since 0014): with (client, serial) it keys
// the row, so two different messages a client sent under one serial are both kept, and
// deliveries of the same message collapse. The first 16 bytes of SHA-256 over the fields
// SameMessage compares (strings length-prefixed, so field boundaries cannot move): a client
// cannot craft two messages that collapse into one. scratch is reused between calls.
func MessageHash(m *schema.StateMessage, scratch *[]byte) [16]byte {
	b := (*scratch)[:0]
	b = binary.LittleEndian.AppendUint16(b, uint16(m.TopicType))
	b = binary.LittleEndian.AppendUint32(b, uint32(m.State))
	b = binary.LittleEndian.AppendUint32(b, uint32(m.Error))
	b = binary.LittleEndian.AppendUint64(b, uint64(m.Time))
	b = appendLengthPrefixed(b, m.TopicID)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(m.Params)))
	for _, p := range m.Params {
		b = appendLengthPrefixed(b, p)
	}
	*scratch = b
	sum := sha256.Sum256(b)
	return [16]byte(sum[:16])
}

func appendLengthPrefixed(b []byte, s string) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// Reset empties the batch for reuse.
func (b *Batch) Reset() {
	b.Raw.reset()
	b.msgs = 0
	b.Current.rows = b.Current.rows[:0]
	b.Full.rows = b.Full.rows[:0]
	b.Clients.rows = b.Clients.rows[:0]
	b.Scans.rows = b.Scans.rows[:0]
	for _, r := range b.ref {
		r.rows = r.rows[:0]
	}
	b.refCount = 0
	clear(b.index)
	clear(b.serials)
	clear(b.Offsets.max)
}

type reportRow struct {
	rec          Record
	reportSerial uint64
	reportHash   [16]byte
	first        int // index of its first message hash in ReportRows.hashes
}

// ReportRows are rows of the raw_reports table (ddl/0014): one per report, its messages in
// array columns. The state_messages view unrolls them, one row per message.
type ReportRows struct {
	table   string
	rows    []reportRow
	hashes  [][16]byte // every message's MessageHash, in report order
	scratch []byte     // MessageHash's
}

var reportColumns = []string{"client", "report_serial", "report_hash", "accepted_at", "partition", "offset", "full_types",
	"serials", "times", "topic_types", "topic_ids", "states", "errors", "params", "message_hashes", "first_delivery"}

// firstDelivery is raw_reports' version of a delivery accepted at acceptedMs: the earliest
// accepted is the greatest, and the one the engine keeps.
func firstDelivery(acceptedMs int64) uint64 { return math.MaxUint64 - uint64(acceptedMs) }

func (r *ReportRows) Table() string     { return r.table }
func (r *ReportRows) Columns() []string { return reportColumns }
func (r *ReportRows) Len() int          { return len(r.rows) }

// Messages returns how many state messages the rows hold.
func (r *ReportRows) Messages() int { return len(r.hashes) }

// add appends rec's row: its messages' hashes, and the report's hash over its full types and
// its messages' serials and hashes (both length-prefixed), so that no two different reports share a key.
func (r *ReportRows) add(rec Record, reportSerial uint64) {
	first := len(r.hashes)
	for i := range rec.Report.Messages {
		r.hashes = append(r.hashes, MessageHash(&rec.Report.Messages[i], &r.scratch))
	}
	b := r.scratch[:0]
	b = binary.LittleEndian.AppendUint32(b, uint32(len(rec.Report.FullTypes)))
	for _, t := range rec.Report.FullTypes {
		b = binary.LittleEndian.AppendUint16(b, uint16(t))
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(r.hashes)-first))
	for i, h := range r.hashes[first:] {
		// The serial too: the message hash leaves it out, and two reports with the same
		// messages under different serials are two reports.
		b = binary.LittleEndian.AppendUint64(b, rec.Report.Messages[i].Serial)
		b = append(b, h[:]...)
	}
	r.scratch = b
	sum := sha256.Sum256(b)
	r.rows = append(r.rows, reportRow{rec: rec, reportSerial: reportSerial, reportHash: [16]byte(sum[:16]), first: first})
}

func (r *ReportRows) reset() {
	clear(r.rows) // drop the reports they point to
	r.rows, r.hashes = r.rows[:0], r.hashes[:0]
}

func (r *ReportRows) AppendRowBinary(b []byte, i int) []byte {
	w := &r.rows[i]
	rep := w.rec.Report
	ms := rep.Messages
	b = schema.AppendString(b, rep.Client)
	b = schema.AppendUInt64(b, w.reportSerial)
	b = append(b, w.reportHash[:]...) // FixedString(16)
	b = schema.AppendInt64(b, w.rec.AcceptedAt)
	b = schema.AppendInt32(b, int32(w.rec.Partition))
	b = schema.AppendInt64(b, w.rec.Offset)
	b = schema.AppendUInt16s(b, rep.FullTypes)
	b = appendEach(b, ms, func(b []byte, m *schema.StateMessage) []byte { return schema.AppendUInt64(b, m.Serial) })
	b = appendEach(b, ms, func(b []byte, m *schema.StateMessage) []byte { return schema.AppendInt64(b, m.Time) })
	b = appendEach(b, ms, func(b []byte, m *schema.StateMessage) []byte { return schema.AppendUInt16(b, uint16(m.TopicType)) })
	b = appendEach(b, ms, func(b []byte, m *schema.StateMessage) []byte { return schema.AppendString(b, m.TopicID) })
	b = appendEach(b, ms, func(b []byte, m *schema.StateMessage) []byte { return schema.AppendInt16(b, int16(m.State)) })
	b = appendEach(b, ms, func(b []byte, m *schema.StateMessage) []byte { return schema.AppendInt32(b, m.Error) })
	b = appendEach(b, ms, func(b []byte, m *schema.StateMessage) []byte { return schema.AppendStrings(b, m.Params) })
	b = binary.AppendUvarint(b, uint64(len(ms)))
	for _, h := range r.hashes[w.first : w.first+len(ms)] {
		b = append(b, h[:]...)
	}
	return schema.AppendUInt64(b, firstDelivery(w.rec.AcceptedAt))
}

// appendEach appends, as one RowBinary Array, f of every message of ms.
func appendEach(b []byte, ms []schema.StateMessage, f func([]byte, *schema.StateMessage) []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(ms)))
	for i := range ms {
		b = f(b, &ms[i])
	}
	return b
}

func (r *ReportRows) Values(i int) []any {
	w := &r.rows[i]
	rep := w.rec.Report
	ms := rep.Messages
	fullTypes := make([]uint16, len(rep.FullTypes))
	for j, t := range rep.FullTypes {
		fullTypes[j] = uint16(t)
	}
	serials, times, topicTypes := make([]uint64, len(ms)), make([]time.Time, len(ms)), make([]uint16, len(ms))
	topicIDs, states, errs := make([]string, len(ms)), make([]int16, len(ms)), make([]int32, len(ms))
	params, hashes := make([][]string, len(ms)), make([]string, len(ms))
	for j := range ms {
		m := &ms[j]
		serials[j], times[j], topicTypes[j] = m.Serial, schema.MillisTime(m.Time), uint16(m.TopicType)
		topicIDs[j], states[j], errs[j] = m.TopicID, int16(m.State), m.Error
		params[j] = m.Params
		if params[j] == nil {
			params[j] = []string{} // the native protocol's Array(String) takes an empty slice, not nil
		}
		h := r.hashes[w.first+j]
		hashes[j] = string(h[:])
	}
	return []any{rep.Client, w.reportSerial, string(w.reportHash[:]), schema.MillisTime(w.rec.AcceptedAt),
		int32(w.rec.Partition), w.rec.Offset, fullTypes, serials, times, topicTypes, topicIDs, states, errs, params, hashes,
		firstDelivery(w.rec.AcceptedAt)}
}

type currentRow struct {
	client     string
	msg        *schema.StateMessage
	acceptedAt int64
}

// CurrentRows are rows of the current_state table: one per key, its greatest serial.
type CurrentRows struct {
	table string
	rows  []currentRow
}

var currentColumns = []string{"topic_type", "topic_id", "client", "serial", "state", "error", "time", "accepted_at"}

// CurrentRowsIn returns c's rows for the current_state table of database db (the same rows,
// shared): the harness's insert ceilings write them to a scratch database of their own.
func CurrentRowsIn(c *CurrentRows, db string) *CurrentRows {
	return &CurrentRows{table: db + ".current_state", rows: c.rows}
}

func (c *CurrentRows) Table() string     { return c.table }
func (c *CurrentRows) Columns() []string { return currentColumns }
func (c *CurrentRows) Len() int          { return len(c.rows) }

func (c *CurrentRows) AppendRowBinary(b []byte, i int) []byte {
	w := &c.rows[i]
	m := w.msg
	b = schema.AppendUInt16(b, uint16(m.TopicType))
	b = schema.AppendString(b, m.TopicID)
	b = schema.AppendString(b, w.client)
	b = schema.AppendUInt64(b, m.Serial)
	b = schema.AppendInt16(b, int16(m.State))
	b = schema.AppendInt32(b, m.Error)
	b = schema.AppendInt64(b, m.Time)
	return schema.AppendInt64(b, w.acceptedAt)
}

func (c *CurrentRows) Values(i int) []any {
	w := &c.rows[i]
	m := w.msg
	return []any{uint16(m.TopicType), m.TopicID, w.client, m.Serial, int16(m.State), m.Error,
		schema.MillisTime(m.Time), schema.MillisTime(w.acceptedAt)}
}

// State is one current-state row, for tests and tools that read a batch back.
type State struct {
	Client    string           `json:"client"`
	TopicType schema.TopicType `json:"topic_type"`
	TopicID   string           `json:"topic_id"`
	Serial    uint64           `json:"serial"`
	State     int32            `json:"state"`
	Error     int32            `json:"error"`
}

// States returns the batch's current-state rows.
func (c *CurrentRows) States() []State {
	out := make([]State, len(c.rows))
	for i, w := range c.rows {
		out[i] = State{w.client, w.msg.TopicType, w.msg.TopicID, w.msg.Serial, w.msg.State, w.msg.Error}
	}
	return out
}

type fullRow struct {
	client     string
	topic      schema.TopicType
	serial     uint64
	acceptedAt int64
}

// FullRows are rows of the full_reports table.
type FullRows struct {
	table string
	rows  []fullRow
}

func (f *FullRows) Table() string { return f.table }
func (f *FullRows) Columns() []string {
	return []string{"client", "topic_type", "serial", "accepted_at"}
}
func (f *FullRows) Len() int { return len(f.rows) }

func (f *FullRows) AppendRowBinary(b []byte, i int) []byte {
	w := &f.rows[i]
	b = schema.AppendString(b, w.client)
	b = schema.AppendUInt16(b, uint16(w.topic))
	b = schema.AppendUInt64(b, w.serial)
	return schema.AppendInt64(b, w.acceptedAt)
}

func (f *FullRows) Values(i int) []any {
	w := &f.rows[i]
	return []any{w.client, uint16(w.topic), w.serial, schema.MillisTime(w.acceptedAt)}
}

type clientRow struct {
	client     string
	serial     uint64
	acceptedAt int64
	partition  int32
}

// ClientRows are rows of the clients table.
type ClientRows struct {
	table string
	rows  []clientRow
}

func (c *ClientRows) Table() string { return c.table }
func (c *ClientRows) Columns() []string {
	return []string{"client", "last_serial", "last_seen", "partition"}
}
func (c *ClientRows) Len() int { return len(c.rows) }

func (c *ClientRows) AppendRowBinary(b []byte, i int) []byte {
	w := &c.rows[i]
	b = schema.AppendString(b, w.client)
	b = schema.AppendUInt64(b, w.serial)
	b = schema.AppendInt64(b, w.acceptedAt)
	return schema.AppendInt32(b, w.partition)
}

func (c *ClientRows) Values(i int) []any {
	w := &c.rows[i]
	return []any{w.client, w.serial, schema.MillisTime(w.acceptedAt), w.partition}
}

type scanRow struct {
	client string
	msg    *schema.StateMessage
}

// ScanRows are rows of the scan_history table.
type ScanRows struct {
	table string
	rows  []scanRow
}

func (s *ScanRows) Table() string     { return s.table }
func (s *ScanRows) Columns() []string { return []string{"client", "serial", "source", "state", "time"} }
func (s *ScanRows) Len() int          { return len(s.rows) }

func (s *ScanRows) AppendRowBinary(b []byte, i int) []byte {
	w := &s.rows[i]
	b = schema.AppendString(b, w.client)
	b = schema.AppendUInt64(b, w.msg.Serial)
	b = schema.AppendString(b, w.msg.TopicID)
	b = schema.AppendInt16(b, int16(w.msg.State))
	return schema.AppendInt64(b, w.msg.Time)
}

func (s *ScanRows) Values(i int) []any {
	w := &s.rows[i]
	return []any{w.client, w.msg.Serial, w.msg.TopicID, int16(w.msg.State), schema.MillisTime(w.msg.Time)}
}

// LatestScanRows are rows of the client_scans table: every successful scan, of which the
// table keeps each client's greatest serial.
type LatestScanRows struct {
	table string
	rows  []scanRow
}

func (s *LatestScanRows) Table() string     { return s.table }
func (s *LatestScanRows) Columns() []string { return []string{"client", "serial", "time"} }
func (s *LatestScanRows) Len() int          { return len(s.rows) }

func (s *LatestScanRows) AppendRowBinary(b []byte, i int) []byte {
	w := &s.rows[i]
	b = schema.AppendString(b, w.client)
	b = schema.AppendUInt64(b, w.msg.Serial)
	return schema.AppendInt64(b, w.msg.Time)
}

func (s *LatestScanRows) Values(i int) []any {
	w := &s.rows[i]
	return []any{w.client, w.msg.Serial, schema.MillisTime(w.msg.Time)}
}

// OffsetRows are rows of the offsets table: one per partition of the batch.
type OffsetRows struct {
	table string
	max   map[int32]int64
	parts []int32
}

func (o *OffsetRows) Table() string     { return o.table }
func (o *OffsetRows) Columns() []string { return []string{"partition", "offset"} }
func (o *OffsetRows) Len() int          { return len(o.parts) }

func (o *OffsetRows) AppendRowBinary(b []byte, i int) []byte {
	b = schema.AppendInt32(b, o.parts[i])
	return schema.AppendInt64(b, o.max[o.parts[i]])
}

func (o *OffsetRows) Values(i int) []any { return []any{o.parts[i], o.max[o.parts[i]]} }

// Marker is one full-report marker, for tests and tools that read a batch back.
type Marker struct {
	Client    string
	TopicType schema.TopicType
	Serial    uint64
}

// Markers returns the batch's full-report markers.
func (f *FullRows) Markers() []Marker {
	out := make([]Marker, len(f.rows))
	for i, w := range f.rows {
		out[i] = Marker{w.client, w.topic, w.serial}
	}
	return out
}
