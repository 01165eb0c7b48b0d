package schema

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"
	"unsafe"

	"github.com/vmihailenco/msgpack/v5"
)

// The msgpack encoding of a Report is a map keyed by the same field names as the JSON form
// (schema/README.md): self-describing, so fields can be added within a version and unknown
// keys are skipped. Both are written by hand, with no reflection and no map[string]any per
// message on the hot path: encoding against msgpack's streaming API, decoding straight from
// the body's bytes (DecodeReportLimits), because every length and count in a body is the
// sender's claim and only a decoder that sees the whole body can check each claim against
// what is left of it before acting on it, and skip what it does not know without recursing.

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
	if r.Via != "" {
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
	if r.Via != "" {
		_ = e.EncodeString("via")
		_ = e.EncodeString(r.Via)
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

// EncodeReport appends the msgpack encoding of r to buf.
func EncodeReport(buf *bytes.Buffer, r *Report) error {
	e := msgpack.GetEncoder()
	defer msgpack.PutEncoder(e)
	e.Reset(buf)
	return r.EncodeMsgpack(e)
}

// DecodeMsgpack implements msgpack.CustomDecoder by refusing, so that msgpack.Unmarshal into
// a Report fails loudly rather than falling back to reflection. Decode a report from its bytes
// with DecodeReportLimits: msgpack's streaming decoder cannot tell how much input is left, and
// its Skip recurses once per level of nesting (a 6 MiB body overflowed the stack).
func (r *Report) DecodeMsgpack(*msgpack.Decoder) error {
	return errors.New("cannot decode a report from a msgpack stream: use schema.DecodeReportLimits on the body")
}

// DecodeReport decodes one msgpack report from b into r under DefaultLimits: see
// DecodeReportLimits.
func DecodeReport(b []byte, r *Report) error { return DecodeReportLimits(b, r, DefaultLimits) }

// DecodeReportLimits decodes one msgpack report from b into r, reusing r's message slice; the
// zero Limits means DefaultLimits. Every error is a *FieldError naming the field as a path
// ("messages[3].state"). Any byte string decodes or is refused, in time linear in its length
// and without recursion:
//
//   - a body is exactly one map; bytes after it are an error;
//   - maps and arrays nest at most MaxDepth deep, values under unknown keys included (they are
//     skipped, iteratively);
//   - every count and length is checked against the bytes left before anything is read or
//     allocated for it (an element takes at least one byte), and against its limit: more
//     than lim.MaxMessages messages is ErrTooManyMessages, more than lim.MaxParams params,
//     MaxFullTypes full types, or an id or param longer than its limit is refused before it
//     is allocated;
//   - what decoding allocates is charged against AllocFactor times the body's size: a body
//     that would decode to more is refused;
//   - integers are exact: whatever msgpack width carries them, a value outside its field's
//     type (v int, serial uint64, time int64, topic_type and full_types uint16, state and
//     error int32) is refused rather than wrapped, and nil, bools, floats and strings are not
//     integers;
//   - strings are str or bin (nil is ""); arrays may be nil (empty); the report and each
//     message must be maps; a known key may appear once.
//
// Validate checks the values.
func DecodeReportLimits(b []byte, r *Report, lim Limits) error {
	if lim == (Limits{}) {
		lim = DefaultLimits
	}
	d := mpDecoder{b: b, lim: lim, budget: allocBudget(len(b)), size: len(b)}
	if err := d.report(r); err != nil {
		return err
	}
	if n := d.left(); n != 0 {
		return &FieldError{Field: "report", Reason: fmt.Sprintf("%d bytes after the end of the report", n)}
	}
	return nil
}

// AllocFactor bounds decoding's memory: a body is decoded into at most AllocFactor times its
// size (plus allocSlack), in either encoding. The decoders charge every allocation of decoded
// data (the messages, params and full types arrays, each string) before making it and refuse
// a body that would take more. A report of real messages takes about 1.2× (a 72-byte
// StateMessage per 60 or more bytes of encoded message, strings 1×), 3× with 16 one-byte
// params to every message; only bodies of nearly empty messages or params come near 4×.
const AllocFactor = 4

// allocSlack lets the smallest bodies decode: one message's 72 bytes exceed 4× a 15-byte body.
const allocSlack = 1024

func allocBudget(size int) int { return AllocFactor*size + allocSlack }

// Sizes charged against the allocation budget.
const (
	sizeofMessage   = int(unsafe.Sizeof(StateMessage{}))
	sizeofString    = int(unsafe.Sizeof(""))
	sizeofTopicType = int(unsafe.Sizeof(TopicType(0)))
)

// sizeClasses are the Go runtime's (internal/runtime/gc/sizeclasses.go in Go 1.26): an
// allocation of up to 32 KiB takes the least class that holds it. Should they drift,
// TestDecodeAllocationIsBounded notices.
var sizeClasses = [...]int{8, 16, 24, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224,
	240, 256, 288, 320, 352, 384, 416, 448, 480, 512, 576, 640, 704, 768, 896, 1024, 1152, 1280,
	1408, 1536, 1792, 2048, 2304, 2688, 3072, 3200, 3456, 4096, 4864, 5376, 6144, 6528, 6784,
	6912, 8192, 9472, 9728, 10240, 10880, 12288, 13568, 14336, 16384, 18432, 19072, 20480, 21760,
	24576, 27264, 28672, 32768}

// allocSize is what the runtime takes to allocate n bytes, so that the budget charges what
// decoding really uses: strings under 16 bytes share 16-byte blocks (4 bytes or less packing
// densely, 5 to 8 two to a block), objects with pointers above 512 bytes carry an 8-byte
// header, small objects take their size class, large ones whole 8 KiB pages.
func allocSize(n int, pointers bool) int {
	switch {
	case n == 0:
		return 0
	case !pointers && n <= 4:
		return n
	case !pointers && n <= 8:
		return 8
	case !pointers && n < 16:
		return 16
	case pointers && n > 512:
		n += 8
	}
	if n > sizeClasses[len(sizeClasses)-1] {
		return (n + 8191) &^ 8191
	}
	lo, hi := 0, len(sizeClasses)-1
	for lo < hi {
		if mid := (lo + hi) / 2; sizeClasses[mid] < n {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return sizeClasses[lo]
}

// errBudget is the reason a body that would decode to more than AllocFactor× its size is
// refused.
func errBudget(size int) error {
	return fmt.Errorf("would decode to more than %d× the body's %d bytes (too many nearly empty elements)", AllocFactor, size)
}

// tooManyMessages refuses n messages (n < 0: more than the limit, not all counted).
func tooManyMessages(n int, lim Limits) *FieldError {
	reason := fmt.Sprintf("%d messages, more than the %d allowed", n, lim.MaxMessages)
	if n < 0 {
		reason = fmt.Sprintf("more than the %d messages allowed", lim.MaxMessages)
	}
	return &FieldError{Field: "messages", Reason: reason, Err: ErrTooManyMessages}
}

// intRange is the declared type of an integer field, for exact range checks in both
// encodings.
type intRange struct {
	name string
	min  int64  // least value: 0 for unsigned types
	max  uint64 // greatest value
}

var (
	rangeInt    = intRange{"int", math.MinInt, math.MaxInt}
	rangeUint64 = intRange{"uint64", 0, math.MaxUint64}
	rangeInt64  = intRange{"int64", math.MinInt64, math.MaxInt64}
	rangeUint16 = intRange{"uint16", 0, math.MaxUint16}
	rangeInt32  = intRange{"int32", math.MinInt32, math.MaxInt32}
)

// check refuses a value outside the type: u is the value, or its two's complement when neg.
func (w intRange) check(u uint64, neg bool) error {
	switch {
	case neg && int64(u) < w.min:
		return fmt.Errorf("%d is out of range for %s", int64(u), w.name)
	case !neg && u > w.max:
		return fmt.Errorf("%d is out of range for %s", u, w.name)
	}
	return nil
}

// mpDecoder reads one msgpack report from a byte slice.
type mpDecoder struct {
	b      []byte
	off    int // next byte to read
	lim    Limits
	budget int // bytes decoding may still allocate
	size   int // len(b), for errors
}

var errEnd = errors.New("truncated: the body ends inside it")

func (d *mpDecoder) left() int { return len(d.b) - d.off }

// charge takes an allocation of n bytes (pointers: of a type with pointers) from the budget.
func (d *mpDecoder) charge(n int, pointers bool) error {
	if n = allocSize(n, pointers); n > d.budget {
		return errBudget(d.size)
	}
	d.budget -= n
	return nil
}

func (d *mpDecoder) code() (byte, error) {
	if d.off >= len(d.b) {
		return 0, errEnd
	}
	c := d.b[d.off]
	d.off++
	return c, nil
}

// take returns the next n bytes, n being a length read from the input.
func (d *mpDecoder) take(n uint64) ([]byte, error) {
	if n > uint64(d.left()) {
		return nil, fmt.Errorf("truncated: claims %d bytes, %d left", n, d.left())
	}
	p := d.b[d.off : d.off+int(n)]
	d.off += int(n)
	return p, nil
}

// be reads a big-endian unsigned integer of n (1, 2, 4 or 8) bytes.
func (d *mpDecoder) be(n int) (uint64, error) {
	if n > d.left() {
		return 0, errEnd
	}
	p := d.b[d.off : d.off+n]
	d.off += n
	switch n {
	case 1:
		return uint64(p[0]), nil
	case 2:
		return uint64(binary.BigEndian.Uint16(p)), nil
	case 4:
		return uint64(binary.BigEndian.Uint32(p)), nil
	}
	return binary.BigEndian.Uint64(p), nil
}

// mpKind names what a msgpack code starts, for errors.
func mpKind(c byte) string {
	switch {
	case c <= 0x7f || c >= 0xe0 || (c >= 0xcc && c <= 0xd3):
		return "integer"
	case c <= 0x8f || c == 0xde || c == 0xdf:
		return "map"
	case c <= 0x9f || c == 0xdc || c == 0xdd:
		return "array"
	case c <= 0xbf || (c >= 0xd9 && c <= 0xdb):
		return "string"
	case c == 0xc0:
		return "nil"
	case c == 0xc2 || c == 0xc3:
		return "bool"
	case c >= 0xc4 && c <= 0xc6:
		return "binary"
	case c == 0xca || c == 0xcb:
		return "float"
	case c == 0xc1:
		return "the never-used code 0xc1"
	}
	return "extension"
}

// mapLen reads a map header. Each of its n entries takes at least two of the bytes left.
func (d *mpDecoder) mapLen() (int, error) {
	c, err := d.code()
	if err != nil {
		return 0, err
	}
	var n uint64
	switch {
	case c >= 0x80 && c <= 0x8f:
		n = uint64(c & 0x0f)
	case c == 0xde:
		n, err = d.be(2)
	case c == 0xdf:
		n, err = d.be(4)
	default:
		return 0, fmt.Errorf("must be a map, got msgpack %s", mpKind(c))
	}
	if err != nil {
		return 0, err
	}
	if n > uint64(d.left()/2) {
		return 0, fmt.Errorf("truncated: claims %d entries, %d bytes left", n, d.left())
	}
	return int(n), nil
}

// arrayLen reads an array header; nil is an empty array. Each of its n elements takes at
// least one of the bytes left.
func (d *mpDecoder) arrayLen() (int, error) {
	c, err := d.code()
	if err != nil {
		return 0, err
	}
	var n uint64
	switch {
	case c >= 0x90 && c <= 0x9f:
		n = uint64(c & 0x0f)
	case c == 0xdc:
		n, err = d.be(2)
	case c == 0xdd:
		n, err = d.be(4)
	case c == 0xc0:
	default:
		return 0, fmt.Errorf("must be an array, got msgpack %s", mpKind(c))
	}
	if err != nil {
		return 0, err
	}
	if n > uint64(d.left()) {
		return 0, fmt.Errorf("truncated: claims %d elements, %d bytes left", n, d.left())
	}
	return int(n), nil
}

// strLen reads the header of a str or bin; nil is the empty string unless key.
func (d *mpDecoder) strLen(key bool) (uint64, error) {
	c, err := d.code()
	if err != nil {
		return 0, err
	}
	switch {
	case c >= 0xa0 && c <= 0xbf:
		return uint64(c & 0x1f), nil
	case c == 0xd9 || c == 0xc4:
		return d.be(1)
	case c == 0xda || c == 0xc5:
		return d.be(2)
	case c == 0xdb || c == 0xc6:
		return d.be(4)
	case c == 0xc0 && !key:
		return 0, nil
	case key:
		return 0, fmt.Errorf("keys must be strings, got msgpack %s", mpKind(c))
	}
	return 0, fmt.Errorf("must be a string, got msgpack %s", mpKind(c))
}

// key reads a map key without allocating: it aliases the body.
func (d *mpDecoder) key() ([]byte, error) {
	n, err := d.strLen(true)
	if err != nil {
		return nil, err
	}
	return d.take(n)
}

// str reads a string, refusing one longer than max before allocating it.
func (d *mpDecoder) str(max int) (string, error) {
	n, err := d.strLen(false)
	if err != nil {
		return "", err
	}
	if n > uint64(max) {
		return "", fmt.Errorf("longer than %d bytes", max)
	}
	p, err := d.take(n)
	if err != nil {
		return "", err
	}
	if err := d.charge(len(p), false); err != nil {
		return "", err
	}
	return string(p), nil
}

// integer reads an integer of type w. Its sign comes from the msgpack code (positive fixint
// and uint8…uint64 are unsigned, negative fixint and int8…int64 signed), so a uint64 above
// MaxInt64 and a negative int64 are both exact; u is the value, or its two's complement when
// neg.
func (d *mpDecoder) integer(w intRange) (u uint64, neg bool, err error) {
	c, err := d.code()
	if err != nil {
		return 0, false, err
	}
	switch {
	case c <= 0x7f:
		u = uint64(c)
	case c >= 0xe0:
		u, neg = uint64(int64(int8(c))), true
	case c >= 0xcc && c <= 0xcf: // uint8, uint16, uint32, uint64
		u, err = d.be(1 << (c - 0xcc))
	case c >= 0xd0 && c <= 0xd3: // int8, int16, int32, int64
		bits := 8 << (c - 0xd0)
		if u, err = d.be(bits / 8); err == nil {
			v := int64(u<<(64-bits)) >> (64 - bits) // sign-extend
			u, neg = uint64(v), v < 0
		}
	default:
		return 0, false, fmt.Errorf("must be %s, got msgpack %s", w.name, mpKind(c))
	}
	if err == nil {
		err = w.check(u, neg)
	}
	return u, neg, err
}

// skip passes over one value of any kind, iteratively. depth is how many maps and arrays
// enclose the value; it may open MaxDepth-depth more. left[i] counts the values still to
// pass in the i-th container skip opened.
func (d *mpDecoder) skip(depth int) error {
	var left [MaxDepth]uint64
	open := 0
	for todo := uint64(1); ; {
		for todo == 0 {
			if open == 0 {
				return nil
			}
			open--
			todo = left[open]
		}
		todo--
		c, err := d.code()
		if err != nil {
			return err
		}
		var n, items uint64 // bytes of payload to pass; values inside a container
		container := false
		switch {
		case c <= 0x7f || c >= 0xe0:
		case c <= 0x8f:
			items, container = uint64(c&0x0f)*2, true
		case c <= 0x9f:
			items, container = uint64(c&0x0f), true
		case c <= 0xbf:
			n = uint64(c & 0x1f)
		default:
			switch c {
			case 0xc0, 0xc2, 0xc3:
			case 0xc4, 0xd9:
				n, err = d.be(1)
			case 0xc5, 0xda:
				n, err = d.be(2)
			case 0xc6, 0xdb:
				n, err = d.be(4)
			case 0xc7, 0xc8, 0xc9: // ext 8, 16, 32: length, type, data
				n, err = d.be(1 << (c - 0xc7))
				n++
			case 0xca, 0xce, 0xd2:
				n = 4
			case 0xcb, 0xcf, 0xd3:
				n = 8
			case 0xcc, 0xd0:
				n = 1
			case 0xcd, 0xd1:
				n = 2
			case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8: // fixext 1, 2, 4, 8, 16: type, data
				n = 1 + 1<<(c-0xd4)
			case 0xdc:
				items, err = d.be(2)
				container = true
			case 0xdd:
				items, err = d.be(4)
				container = true
			case 0xde:
				items, err = d.be(2)
				items, container = items*2, true
			case 0xdf:
				items, err = d.be(4)
				items, container = items*2, true
			default:
				return fmt.Errorf("invalid msgpack code 0x%02x", c)
			}
			if err != nil {
				return err
			}
		}
		if !container {
			if _, err := d.take(n); err != nil {
				return err
			}
			continue
		}
		if depth+open+1 > MaxDepth {
			return fmt.Errorf("nested deeper than %d levels", MaxDepth)
		}
		if items > uint64(d.left()) {
			return fmt.Errorf("truncated: claims %d values, %d bytes left", items, d.left())
		}
		left[open] = todo
		open++
		todo = items
	}
}

// Known keys, as bits of a set of the keys seen in one map: a known key may appear once.
const (
	keyV = 1 << iota
	keyClient
	keySite
	keyFullTypes
	keyMessages
	keyVia
)

const (
	keySerial = 1 << iota
	keyTime
	keyTopicType
	keyTopicID
	keyState
	keyError
	keyParams
)

func reportKey(k []byte) int {
	switch string(k) {
	case "v":
		return keyV
	case "client":
		return keyClient
	case "site":
		return keySite
	case "full_types":
		return keyFullTypes
	case "messages":
		return keyMessages
	case "via":
		return keyVia
	}
	return 0
}

func messageKey(k []byte) int {
	switch string(k) {
	case "serial":
		return keySerial
	case "time":
		return keyTime
	case "topic_type":
		return keyTopicType
	case "topic_id":
		return keyTopicID
	case "state":
		return keyState
	case "error":
		return keyError
	case "params":
		return keyParams
	}
	return 0
}

// keyName renders a key of the input as an error's field: as it is when it is short plain
// text, else quoted and cut, so that an error never carries megabytes or control bytes back.
func keyName(k []byte) string {
	const max = 64
	plain := len(k) <= max && utf8.Valid(k)
	for _, c := range k {
		plain = plain && c >= 0x20 && c != 0x7f && c != '"'
	}
	switch {
	case plain && len(k) > 0:
		return string(k)
	case len(k) > max:
		return strconv.Quote(string(k[:max])) + "…"
	}
	return strconv.Quote(string(k))
}

// asField returns err as a *FieldError, naming field unless it names one already.
func asField(field string, err error) error {
	var fe *FieldError
	if errors.As(err, &fe) {
		return err
	}
	return &FieldError{Field: field, Reason: err.Error()}
}

func (d *mpDecoder) report(r *Report) error {
	n, err := d.mapLen()
	if err != nil {
		return &FieldError{Field: "report", Reason: err.Error()}
	}
	*r = Report{Messages: r.Messages[:0]}
	seen := 0
	for range n {
		key, err := d.key()
		if err != nil {
			return &FieldError{Field: "report", Reason: err.Error()}
		}
		k := reportKey(key)
		if seen&k != 0 {
			return &FieldError{Field: string(key), Reason: "repeated key"}
		}
		seen |= k
		switch k {
		case keyV:
			var u uint64
			if u, _, err = d.integer(rangeInt); err == nil {
				r.V = int(u)
			}
		case keyClient:
			r.Client, err = d.str(d.lim.MaxIDBytes)
		case keySite:
			r.Site, err = d.str(d.lim.MaxIDBytes)
		case keyFullTypes:
			err = d.fullTypes(r)
		case keyMessages:
			err = d.messages(r)
		case keyVia:
			r.Via, err = d.str(d.lim.MaxIDBytes)
		default:
			err = d.skip(1)
		}
		if err != nil {
			return asField(keyName(key), err)
		}
	}
	return nil
}

func (d *mpDecoder) fullTypes(r *Report) error {
	n, err := d.arrayLen()
	if err == nil && n > MaxFullTypes {
		err = fmt.Errorf("%d full types, at most %d allowed", n, MaxFullTypes)
	}
	if err == nil {
		err = d.charge(n*sizeofTopicType, false)
	}
	if err != nil || n == 0 {
		return err
	}
	r.FullTypes = make([]TopicType, n)
	for j := range r.FullTypes {
		u, _, err := d.integer(rangeUint16)
		if err != nil {
			return &FieldError{Field: "full_types[" + strconv.Itoa(j) + "]", Reason: err.Error()}
		}
		r.FullTypes[j] = TopicType(u)
	}
	return nil
}

func (d *mpDecoder) messages(r *Report) error {
	n, err := d.arrayLen()
	if err != nil {
		return err
	}
	if n > d.lim.MaxMessages {
		return tooManyMessages(n, d.lim)
	}
	if err := d.charge(n*sizeofMessage, true); err != nil {
		return err
	}
	if cap(r.Messages) < n {
		r.Messages = make([]StateMessage, n)
	}
	r.Messages = r.Messages[:n]
	for i := range r.Messages {
		if err := d.message(&r.Messages[i], i); err != nil {
			return err
		}
	}
	return nil
}

func (d *mpDecoder) message(m *StateMessage, i int) error {
	n, err := d.mapLen()
	if err != nil {
		return &FieldError{Field: messagePath(i), Reason: err.Error()}
	}
	*m = StateMessage{}
	seen := 0
	for range n {
		key, err := d.key()
		if err != nil {
			return &FieldError{Field: messagePath(i), Reason: err.Error()}
		}
		k := messageKey(key)
		if seen&k != 0 {
			return &FieldError{Field: messageField(i, key), Reason: "repeated key"}
		}
		seen |= k
		var u uint64
		switch k {
		case keySerial:
			m.Serial, _, err = d.integer(rangeUint64)
		case keyTime:
			u, _, err = d.integer(rangeInt64)
			m.Time = int64(u)
		case keyTopicType:
			u, _, err = d.integer(rangeUint16)
			m.TopicType = TopicType(u)
		case keyTopicID:
			m.TopicID, err = d.str(d.lim.MaxIDBytes)
		case keyState:
			u, _, err = d.integer(rangeInt32)
			m.State = int32(u)
		case keyError:
			u, _, err = d.integer(rangeInt32)
			m.Error = int32(u)
		case keyParams:
			err = d.params(m, i)
		default:
			err = d.skip(3)
		}
		if err != nil {
			return asField(messageField(i, key), err)
		}
	}
	return nil
}

func messagePath(i int) string { return "messages[" + strconv.Itoa(i) + "]" }

func messageField(i int, key []byte) string { return messagePath(i) + "." + keyName(key) }

func (d *mpDecoder) params(m *StateMessage, i int) error {
	n, err := d.arrayLen()
	if err == nil && n > d.lim.MaxParams {
		err = fmt.Errorf("%d params, at most %d allowed", n, d.lim.MaxParams)
	}
	if err == nil {
		err = d.charge(n*sizeofString, true)
	}
	if err != nil || n == 0 {
		return err
	}
	m.Params = make([]string, n)
	for j := range m.Params {
		if m.Params[j], err = d.str(d.lim.MaxParamBytes); err != nil {
			return &FieldError{Field: messagePath(i) + ".params[" + strconv.Itoa(j) + "]", Reason: err.Error()}
		}
	}
	return nil
}
