package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"

	"github.com/statepipe/statepipe/schema"
)

// mp writes msgpack by hand, so that every width, sign and length the attacks need can be
// chosen (the SDK's encoder always picks the canonical one).
type mp struct{ b []byte }

func (m *mp) bytes() []byte { return m.b }

func (m *mp) mapLen(n int) *mp { return m.header(n, 0x80, 0xde, 0xdf) }

func (m *mp) arrLen(n int) *mp { return m.header(n, 0x90, 0xdc, 0xdd) }

// header writes a map or array header of n entries in its shortest form: fix (n < 16), 16 or
// 32 bits.
func (m *mp) header(n int, fix, c16, c32 byte) *mp {
	switch {
	case n < 16:
		m.b = append(m.b, fix|byte(n))
	case n <= math.MaxUint16:
		m.b = append(m.b, c16)
		m.b = binary.BigEndian.AppendUint16(m.b, uint16(n))
	default:
		m.b = append(m.b, c32)
		m.b = binary.BigEndian.AppendUint32(m.b, uint32(n))
	}
	return m
}

// arr32 writes an array32 header whatever n is.
func (m *mp) arr32(n uint32) *mp {
	m.b = append(m.b, 0xdd)
	m.b = binary.BigEndian.AppendUint32(m.b, n)
	return m
}

func (m *mp) str(s string) *mp {
	n := len(s)
	switch {
	case n < 32:
		m.b = append(m.b, 0xa0|byte(n))
	case n <= math.MaxUint8:
		m.b = append(m.b, 0xd9, byte(n))
	case n <= math.MaxUint16:
		m.b = append(m.b, 0xda)
		m.b = binary.BigEndian.AppendUint16(m.b, uint16(n))
	default:
		m.b = append(m.b, 0xdb)
		m.b = binary.BigEndian.AppendUint32(m.b, uint32(n))
	}
	m.b = append(m.b, s...)
	return m
}

// bin32 writes n zero bytes as bin32 (padding under an unknown key).
func (m *mp) bin32(n int) *mp {
	m.b = append(m.b, 0xc6)
	m.b = binary.BigEndian.AppendUint32(m.b, uint32(n))
	m.b = append(m.b, make([]byte, n)...)
	return m
}

func (m *mp) uint(u uint64) *mp {
	switch {
	case u < 128:
		m.b = append(m.b, byte(u))
	case u <= math.MaxUint8:
		m.b = append(m.b, 0xcc, byte(u))
	case u <= math.MaxUint16:
		m.b = append(m.b, 0xcd)
		m.b = binary.BigEndian.AppendUint16(m.b, uint16(u))
	case u <= math.MaxUint32:
		m.b = append(m.b, 0xce)
		m.b = binary.BigEndian.AppendUint32(m.b, uint32(u))
	default:
		m.b = append(m.b, 0xcf)
		m.b = binary.BigEndian.AppendUint64(m.b, u)
	}
	return m
}

func (m *mp) u32(u uint32) *mp {
	m.b = append(m.b, 0xce)
	m.b = binary.BigEndian.AppendUint32(m.b, u)
	return m
}

func (m *mp) u64(u uint64) *mp {
	m.b = append(m.b, 0xcf)
	m.b = binary.BigEndian.AppendUint64(m.b, u)
	return m
}

func (m *mp) int(i int64) *mp {
	if i >= 0 {
		return m.uint(uint64(i))
	}
	switch {
	case i >= -32:
		m.b = append(m.b, byte(i))
	case i >= math.MinInt8:
		m.b = append(m.b, 0xd0, byte(i))
	case i >= math.MinInt16:
		m.b = append(m.b, 0xd1)
		m.b = binary.BigEndian.AppendUint16(m.b, uint16(i))
	case i >= math.MinInt32:
		m.b = append(m.b, 0xd2)
		m.b = binary.BigEndian.AppendUint32(m.b, uint32(i))
	default:
		m.b = append(m.b, 0xd3)
		m.b = binary.BigEndian.AppendUint64(m.b, uint64(i))
	}
	return m
}

func (m *mp) i64(i int64) *mp {
	m.b = append(m.b, 0xd3)
	m.b = binary.BigEndian.AppendUint64(m.b, uint64(i))
	return m
}

func (m *mp) f64(f float64) *mp {
	m.b = append(m.b, 0xcb)
	m.b = binary.BigEndian.AppendUint64(m.b, math.Float64bits(f))
	return m
}

func (m *mp) raw(b []byte) *mp { m.b = append(m.b, b...); return m }

// field is one key of a hand-written msgpack message: its value already encoded.
type field struct {
	key string
	val []byte
}

func enc(f func(*mp)) []byte { var m mp; f(&m); return m.b }

// msgFields returns the fields of a valid 500 message; callers replace one to attack it.
func msgFields(serial uint64, topicID string, state int64) []field {
	return []field{
		{"serial", enc(func(m *mp) { m.uint(serial) })},
		{"time", enc(func(m *mp) { m.int(time.Now().UnixMilli()) })},
		{"topic_type", enc(func(m *mp) { m.uint(500) })},
		{"topic_id", enc(func(m *mp) { m.str(topicID) })},
		{"state", enc(func(m *mp) { m.int(state) })},
		{"error", enc(func(m *mp) { m.int(0) })},
	}
}

// with returns fs with key's value replaced (or added).
func with(fs []field, key string, val []byte) []field {
	out := append([]field(nil), fs...)
	for i := range out {
		if out[i].key == key {
			out[i].val = val
			return out
		}
	}
	return append(out, field{key, val})
}

func writeFields(m *mp, fs []field) {
	m.mapLen(len(fs))
	for _, f := range fs {
		m.str(f.key)
		m.raw(f.val)
	}
}

// mpReport writes a report map: v, client, site, the given extra top-level fields, and the
// messages (each a field list).
func mpReport(client, site string, extra []field, msgs ...[]field) []byte {
	top := []field{
		{"v", enc(func(m *mp) { m.uint(1) })},
		{"client", enc(func(m *mp) { m.str(client) })},
		{"site", enc(func(m *mp) { m.str(site) })},
	}
	top = append(top, extra...)
	var ms mp
	ms.arrLen(len(msgs))
	for _, f := range msgs {
		writeFields(&ms, f)
	}
	hasMessages := false
	for _, f := range top {
		hasMessages = hasMessages || f.key == "messages"
	}
	if !hasMessages {
		top = append(top, field{"messages", ms.b})
	}
	var m mp
	writeFields(&m, top)
	return m.b
}

// Resp is one answer, or the transport error instead of one.
type Resp struct {
	Status  int
	Code    string
	Field   string
	Message string
	Header  http.Header
	Body    []byte
	Err     error
	Latency time.Duration
}

// Key is how an answer is counted in an attempt's table: status, error code and field.
func (r Resp) Key() string {
	if r.Err != nil {
		return "error: " + errClass(r.Err)
	}
	k := fmt.Sprint(r.Status)
	if r.Code != "" {
		k += " " + r.Code
	}
	if r.Field != "" {
		k += " field=" + r.Field
	}
	return k
}

// errClass names a transport error briefly: what the client saw, not the whole chain.
func errClass(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "cancelled"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, syscall.EPIPE):
		return "broken pipe"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed (EOF)"
	}
	s := err.Error()
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return s
}

// do sends one request and reads the whole answer (up to 256 MiB).
func do(ctx context.Context, hc *http.Client, method, url string, body io.Reader, hdr map[string]string) Resp {
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return Resp{Err: err}
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	res, err := hc.Do(req)
	if err != nil {
		return Resp{Err: err, Latency: time.Since(start)}
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 256<<20))
	r := Resp{Status: res.StatusCode, Header: res.Header, Body: b, Latency: time.Since(start)}
	if err != nil {
		r.Err = fmt.Errorf("reading the answer after status %d: %w", res.StatusCode, err)
		return r
	}
	var eb schema.ErrorBody
	if res.StatusCode >= 400 && json.Unmarshal(b, &eb) == nil {
		r.Code, r.Field, r.Message = eb.Error.Code, eb.Error.Field, eb.Error.Message
	}
	return r
}

func bodyOf(b []byte) io.Reader { return bytes.NewReader(b) }

// clipped shortens s for a table cell.
func clipped(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }
