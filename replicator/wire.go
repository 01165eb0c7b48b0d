package replicator

import (
	"bytes"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/statepipe/statepipe/schema"
)

// Message is one record of a parent's incoming topic (hier.<parent>), keyed by its origin site
// so that every record of an origin lands in one partition, in the order it was sent. It
// carries cells, a heartbeat, or both; a middle site passes its descendants' messages on
// unchanged.
type Message struct {
	V      int    `msgpack:"v"`
	Origin string `msgpack:"origin"`
	// Epoch and Seq make the message's version (Version): Epoch is fixed when the origin's
	// replicator starts and greater than any it used before, Seq counts its messages.
	Epoch     uint32     `msgpack:"epoch"`
	Seq       uint32     `msgpack:"seq"`
	Cells     CellList   `msgpack:"cells,omitempty"`
	Heartbeat *Heartbeat `msgpack:"hb,omitempty"`
}

// Cell is one cell's absolute value, as sent.
type Cell struct {
	_msgpack  struct{} `msgpack:",as_array"`
	Kind      Kind
	Scope     string
	TopicType uint16
	TopicID   string
	Code      int64
	Clients   int64
	Scanned   int64
}

// CellList is a message's cells. It decodes itself: a declared length is checked against
// MaxWireCells before anything is allocated for it, and each cell is read in turn (msgpack's
// own slice decoding spun for minutes on a 33-byte record declaring 2^28 cells).
type CellList []Cell

// MaxWireCells bounds the cells of one message (a replicator sends at most
// UpConfig.MaxCellsPerMessage, 2,000 by default).
const MaxWireCells = 100_000

// DecodeMsgpack implements msgpack.CustomDecoder.
func (l *CellList) DecodeMsgpack(d *msgpack.Decoder) error {
	n, err := d.DecodeArrayLen()
	if err != nil {
		return err
	}
	if n < 0 {
		*l = nil
		return nil
	}
	if n > MaxWireCells {
		return fmt.Errorf("cells: %d cells, at most %d", n, MaxWireCells)
	}
	out := make(CellList, 0, min(n, 1024))
	for i := 0; i < n; i++ {
		var c Cell
		if err := d.Decode(&c); err != nil {
			return fmt.Errorf("cells[%d]: %w", i, err)
		}
		out = append(out, c)
	}
	*l = out
	return nil
}

// Heartbeat is what an origin says about itself every interval, changed cells or not.
type Heartbeat struct {
	Parent string `msgpack:"parent"`
	// Sweep is the version of the first message of the origin's latest complete sweep: the
	// origin holds no cell it has not sent since, so older cells of it are gone.
	Sweep uint64 `msgpack:"sweep"`
	// Watermark (Unix ms): every report the origin accepted before it is counted in the cells
	// sent up to this heartbeat.
	Watermark      int64 `msgpack:"watermark"`
	SentAt         int64 `msgpack:"sent_at"`         // Unix ms, origin clock
	LagRecords     int64 `msgpack:"lag_records"`     // accepted at the origin, not folded there yet
	BacklogRecords int64 `msgpack:"backlog_records"` // accepted at the origin, not yet counted in what was sent
	Cells          int64 `msgpack:"cells"`           // cells the origin holds
	// Pacing is the origin's pacing controller (JSON, at most MaxPacingBytes; empty: none),
	// kept as the sites above received it for their backlog reports.
	Pacing string `msgpack:"pacing,omitempty"`
}

// MaxPacingBytes bounds a heartbeat's pacing state.
const MaxPacingBytes = 4096

// Version is the message's version: it only grows for one origin.
func (m *Message) Version() uint64 { return Version(m.Epoch, m.Seq) }

// Version composes a version from an epoch and a sequence number.
func Version(epoch, seq uint32) uint64 { return uint64(epoch)<<32 | uint64(seq) }

// wireVersion is the version of the message format.
const wireVersion = 1

// Encode encodes m.
func Encode(m *Message) ([]byte, error) {
	var b bytes.Buffer
	enc := msgpack.NewEncoder(&b)
	enc.UseCompactInts(true)
	if err := enc.Encode(m); err != nil {
		return nil, fmt.Errorf("cannot encode a message of %s: %w", m.Origin, err)
	}
	return b.Bytes(), nil
}

// Decode decodes and checks a message; its error names the field.
func Decode(b []byte) (*Message, error) {
	var m Message
	if err := msgpack.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("cannot decode a replicated message: %w", err)
	}
	switch {
	case m.V != wireVersion:
		return nil, fmt.Errorf("cannot use a replicated message: v is %d, want %d", m.V, wireVersion)
	case !schema.ValidSiteCode(m.Origin):
		return nil, fmt.Errorf("cannot use a replicated message: origin %q: %s", m.Origin, schema.SiteCodeRule)
	case m.Epoch == 0:
		return nil, fmt.Errorf("cannot use a replicated message of %s: epoch is 0", m.Origin)
	}
	for i := range m.Cells {
		c := &m.Cells[i]
		if c.Kind < KindStates || c.Kind > KindScans {
			return nil, fmt.Errorf("cannot use a replicated message of %s: cells[%d].kind %d is not 1–4", m.Origin, i, c.Kind)
		}
		if !schema.PrintableID(c.Scope) || !schema.PrintableID(c.TopicID) {
			return nil, fmt.Errorf("cannot use a replicated message of %s: cells[%d] has an id with control characters or invalid UTF-8", m.Origin, i)
		}
	}
	if h := m.Heartbeat; h != nil && !schema.ValidSiteCode(h.Parent) {
		return nil, fmt.Errorf("cannot use a replicated message of %s: hb.parent %q: %s", m.Origin, h.Parent, schema.SiteCodeRule)
	}
	if h := m.Heartbeat; h != nil && (len(h.Pacing) > MaxPacingBytes || !utf8.ValidString(h.Pacing)) {
		return nil, fmt.Errorf("cannot use a replicated message of %s: hb.pacing is over %d bytes or not UTF-8", m.Origin, MaxPacingBytes)
	}
	return &m, nil
}

// unixMs is t in Unix milliseconds.
func unixMs(t time.Time) int64 { return t.UnixMilli() }
