package schema

import (
	"bytes"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
)

// The msgpack encoding of a Report is a map keyed by the same field names as the JSON form
// (schema/README.md): self-describing, so fields can be added within a version and unknown
// keys are skipped. Encoding and decoding are written by hand against msgpack's streaming
// API: no reflection and no map[string]any per message on the hot path.

var (
	_ msgpack.CustomEncoder = (*Report)(nil)
	_ msgpack.CustomDecoder = (*Report)(nil)
)

// EncodeMsgpack implements msgpack.CustomEncoder.
func (r *Report) EncodeMsgpack(e *msgpack.Encoder) error {
	n := 4
	if len(r.FullTypes) > 0 {
		n++
	}
	if err := e.EncodeMapLen(n); err != nil {
		return err
	}
	_ = e.EncodeString("v")
	_ = e.EncodeInt(int64(r.V))
	_ = e.EncodeString("client")
	_ = e.EncodeString(r.Client)
	_ = e.EncodeString("site")
	_ = e.EncodeString(r.Site)
	if len(r.FullTypes) > 0 {
		_ = e.EncodeString("full_types")
		_ = e.EncodeArrayLen(len(r.FullTypes))
		for _, t := range r.FullTypes {
			_ = e.EncodeUint(uint64(t))
		}
	}
	_ = e.EncodeString("messages")
	if err := e.EncodeArrayLen(len(r.Messages)); err != nil {
		return err
	}
	for i := range r.Messages {
		if err := r.Messages[i].encode(e); err != nil {
			return err
		}
	}
	return nil
}

func (m *StateMessage) encode(e *msgpack.Encoder) error {
	n := 6
	if len(m.Params) > 0 {
		n++
	}
	_ = e.EncodeMapLen(n)
	_ = e.EncodeString("serial")
	_ = e.EncodeUint(m.Serial)
	_ = e.EncodeString("time")
	_ = e.EncodeInt(m.Time)
	_ = e.EncodeString("topic_type")
	_ = e.EncodeUint(uint64(m.TopicType))
	_ = e.EncodeString("topic_id")
	_ = e.EncodeString(m.TopicID)
	_ = e.EncodeString("state")
	_ = e.EncodeInt(int64(m.State))
	_ = e.EncodeString("error")
	err := e.EncodeInt(int64(m.Error))
	if len(m.Params) > 0 {
		_ = e.EncodeString("params")
		_ = e.EncodeArrayLen(len(m.Params))
		for _, p := range m.Params {
			err = e.EncodeString(p)
		}
	}
	return err
}

// DecodeMsgpack implements msgpack.CustomDecoder. Type errors name the field.
func (r *Report) DecodeMsgpack(d *msgpack.Decoder) error {
	n, err := d.DecodeMapLen()
	if err != nil {
		return &FieldError{Field: "report", Reason: "must be a map: " + err.Error()}
	}
	*r = Report{Messages: r.Messages[:0]}
	var kb keyBuf
	for i := 0; i < n; i++ {
		key, err := decodeKey(d, &kb)
		if err != nil {
			return &FieldError{Field: "report", Reason: "keys must be strings"}
		}
		switch string(key) {
		case "v":
			v, err := d.DecodeInt()
			if err != nil {
				return fieldErr("v", err)
			}
			r.V = v
		case "client":
			if r.Client, err = d.DecodeString(); err != nil {
				return fieldErr("client", err)
			}
		case "site":
			if r.Site, err = d.DecodeString(); err != nil {
				return fieldErr("site", err)
			}
		case "full_types":
			l, err := d.DecodeArrayLen()
			if err != nil {
				return fieldErr("full_types", err)
			}
			r.FullTypes = nil
			if l > 0 {
				r.FullTypes = make([]TopicType, 0, untrusted(l))
			}
			for j := 0; j < l; j++ {
				t, err := d.DecodeUint16()
				if err != nil {
					return fieldErr(fmt.Sprintf("full_types[%d]", j), err)
				}
				r.FullTypes = append(r.FullTypes, TopicType(t))
			}
		case "messages":
			l, err := d.DecodeArrayLen()
			if err != nil {
				return fieldErr("messages", err)
			}
			if cap(r.Messages) < untrusted(l) {
				r.Messages = make([]StateMessage, 0, untrusted(l))
			}
			r.Messages = r.Messages[:0]
			for j := 0; j < l; j++ {
				r.Messages = append(r.Messages, StateMessage{})
				if err := r.Messages[j].decode(d, j); err != nil {
					return err
				}
			}
		default:
			if err := d.Skip(); err != nil {
				return fieldErr(string(key), err)
			}
		}
	}
	return nil
}

func (m *StateMessage) decode(d *msgpack.Decoder, idx int) error {
	n, err := d.DecodeMapLen()
	if err != nil {
		return &FieldError{Field: fmt.Sprintf("messages[%d]", idx), Reason: "must be a map: " + err.Error()}
	}
	*m = StateMessage{}
	var kb keyBuf
	for i := 0; i < n; i++ {
		key, err := decodeKey(d, &kb)
		if err != nil {
			return &FieldError{Field: fmt.Sprintf("messages[%d]", idx), Reason: "keys must be strings"}
		}
		switch string(key) {
		case "serial":
			m.Serial, err = d.DecodeUint64()
		case "time":
			m.Time, err = d.DecodeInt64()
		case "topic_type":
			var t uint16
			t, err = d.DecodeUint16()
			m.TopicType = TopicType(t)
		case "topic_id":
			m.TopicID, err = d.DecodeString()
		case "state":
			m.State, err = d.DecodeInt32()
		case "error":
			m.Error, err = d.DecodeInt32()
		case "params":
			var l int
			if l, err = d.DecodeArrayLen(); err == nil && l > 0 {
				m.Params = make([]string, 0, untrusted(l))
				for j := 0; j < l && err == nil; j++ {
					var p string
					p, err = d.DecodeString()
					m.Params = append(m.Params, p)
				}
			}
		default:
			err = d.Skip()
		}
		if err != nil {
			return fieldErr(fmt.Sprintf("messages[%d].%s", idx, string(key)), err)
		}
	}
	return nil
}

// untrusted bounds what a length read from the input may allocate before the elements it
// announces have actually been read: a 30-byte body can claim four billion messages (found by
// FuzzDecodeReport; it ran the process out of memory). Slices grow as elements decode.
func untrusted(n int) int { return max(min(n, 1024), 0) }

// keyBuf holds a map key read without allocating: field names are short fixstr.
type keyBuf [32]byte

// decodeKey reads a map key. A fixstr (every field name of ours) is read into buf; anything
// else falls back to DecodeString.
func decodeKey(d *msgpack.Decoder, buf *keyBuf) ([]byte, error) {
	c, err := d.PeekCode()
	if err != nil {
		return nil, err
	}
	if c >= 0xa0 && c <= 0xbf { // fixstr: 0b101xxxxx, length in the low five bits
		n := int(c & 0x1f)
		if err := d.ReadFull(buf[:n+1]); err != nil {
			return nil, err
		}
		return buf[1 : n+1], nil
	}
	s, err := d.DecodeString()
	return []byte(s), err
}

func fieldErr(field string, err error) error {
	return &FieldError{Field: field, Reason: "wrong type: " + err.Error()}
}

// EncodeReport appends the msgpack encoding of r to buf.
func EncodeReport(buf *bytes.Buffer, r *Report) error {
	e := msgpack.GetEncoder()
	defer msgpack.PutEncoder(e)
	e.Reset(buf)
	return r.EncodeMsgpack(e)
}

// DecodeReport decodes one msgpack report from b into r, reusing r's message slice. Trailing
// bytes are an error: a body is exactly one report.
func DecodeReport(b []byte, r *Report) error {
	rd := bytes.NewReader(b)
	d := msgpack.GetDecoder()
	d.Reset(rd)
	if err := r.DecodeMsgpack(d); err != nil {
		// Not returned to the pool: reading a string or extension whose claimed length the
		// body does not hold grows the decoder's buffer by up to 1 MiB and keeps it (msgpack
		// v5 readNGrow), so a pooled decoder fed such bodies grew without bound — 10 GiB in
		// half a minute of fuzzing, and the same from an ingest node's bad requests.
		return err
	}
	msgpack.PutDecoder(d)
	if rd.Len() != 0 {
		return &FieldError{Field: "report", Reason: fmt.Sprintf("%d bytes after the end of the report", rd.Len())}
	}
	return nil
}
