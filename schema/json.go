package schema

import (
	"bytes"
	"fmt"
	"math/bits"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// The JSON form of a report is read by hand from the body's bytes, like the msgpack form and
// for the same reasons: every count is known (counted) before anything is allocated for it,
// nothing recurses on the input's nesting, and what decoding allocates is charged against the
// same budget. encoding/json could not promise that: its Decoder copies the body into a buffer
// that doubles while it scans a value (an 8 MiB string cost 40 MiB), arrays grow element by
// element (an 8 MiB body of empty messages cost 771 MiB), and it decodes with reflection.

// DecodeReportJSON decodes one JSON report from b into r, reusing r's message slice; the zero
// Limits means DefaultLimits. It keeps the rules of the msgpack decoder (DecodeReportLimits):
// counts and lengths checked against their limits before anything is allocated for them
// (messages counted first, ErrTooManyMessages above lim.MaxMessages), nesting at most
// MaxDepth, allocation within AllocFactor× the body, integers exact for their field's type.
// Every error is a *FieldError:
//
//   - syntax errors name "body" and the byte offset;
//   - an unknown field is an error naming it ("messages[2].topicType"): field names match
//     exactly (encoding/json's case-insensitive matching let "Client" through as "client");
//   - a field of the wrong type is an error naming it as a path ("messages[2].state"); null
//     is an empty string or array, but never an integer or a message;
//   - a field may appear once in an object;
//   - strings must be valid UTF-8, and \u escapes must not leave half a surrogate pair
//     (encoding/json replaced both with U+FFFD);
//   - the body is exactly one JSON value: more than one, or anything but whitespace after it,
//     is an error.
func DecodeReportJSON(b []byte, r *Report, lim Limits) error {
	if lim == (Limits{}) {
		lim = DefaultLimits
	}
	d := jsonDecoder{b: b, lim: lim, budget: allocBudget(len(b)), size: len(b)}
	if err := d.report(r); err != nil {
		return err
	}
	d.ws()
	if d.off < len(b) {
		if d.kindAt() != "" {
			return &FieldError{Field: "body", Reason: "more than one JSON value"}
		}
		return d.syntax("after top-level value")
	}
	return nil
}

// jsonDecoder reads one JSON report from a byte slice.
type jsonDecoder struct {
	b      []byte
	off    int // next byte to read
	lim    Limits
	budget int // bytes decoding may still allocate
	size   int // len(b), for errors
}

// charge takes an allocation of n bytes (pointers: of a type with pointers) from the budget.
func (d *jsonDecoder) charge(n int, pointers bool) error {
	if n = allocSize(n, pointers); n > d.budget {
		return errBudget(d.size)
	}
	d.budget -= n
	return nil
}

func (d *jsonDecoder) ws() {
	for d.off < len(d.b) {
		switch d.b[d.off] {
		case ' ', '\t', '\n', '\r':
			d.off++
		default:
			return
		}
	}
}

func (d *jsonDecoder) peek() byte {
	if d.off < len(d.b) {
		return d.b[d.off]
	}
	return 0
}

// syntax is a syntax error at the current byte; context says what was expected.
func (d *jsonDecoder) syntax(context string) error {
	if d.off >= len(d.b) {
		return &FieldError{Field: "body", Reason: fmt.Sprintf("invalid JSON at byte %d: unexpected end of input", d.off)}
	}
	c := d.b[d.off]
	ch := strconv.QuoteRune(rune(c))
	if c < 0x20 || c >= utf8.RuneSelf {
		ch = fmt.Sprintf("byte 0x%02x", c)
	}
	return &FieldError{Field: "body", Reason: fmt.Sprintf("invalid JSON at byte %d: invalid character %s %s", d.off, ch, context)}
}

// kindAt names the kind of JSON value that starts at the current byte, or "" if none can.
func (d *jsonDecoder) kindAt() string {
	switch c := d.peek(); {
	case c == '{':
		return "object"
	case c == '[':
		return "array"
	case c == '"':
		return "string"
	case c == 't' || c == 'f':
		return "bool"
	case c == 'n':
		return "null"
	case c == '-' || (c >= '0' && c <= '9'):
		return "number"
	}
	return ""
}

// typeErr refuses the value at the current byte as not of the wanted type, unless it is not
// valid JSON: a syntax error comes first. depth is how many containers enclose the value.
func (d *jsonDecoder) typeErr(want string, depth int) error {
	kind := d.kindAt()
	if kind == "" {
		return d.syntax("looking for beginning of value")
	}
	start := d.off
	if err := d.skipValue(depth); err != nil {
		return err
	}
	if kind == "number" {
		kind += " " + clipLiteral(d.b[start:d.off])
	}
	return fmt.Errorf("must be %s, got JSON %s", want, kind)
}

// clip renders a literal of the input for an error, cut if long.
func clipLiteral(lit []byte) string {
	if len(lit) > 32 {
		return string(lit[:32]) + "…"
	}
	return string(lit)
}

func (d *jsonDecoder) literal(word string) error {
	for i := 0; i < len(word); i++ {
		if d.peek() != word[i] || d.off >= len(d.b) {
			return d.syntax("in literal " + word)
		}
		d.off++
	}
	return nil
}

// number reads a number literal; isInt says it has neither fraction nor exponent.
func (d *jsonDecoder) number() (lit []byte, isInt bool, err error) {
	start := d.off
	if d.peek() == '-' {
		d.off++
	}
	switch c := d.peek(); {
	case c == '0':
		d.off++
	case c >= '1' && c <= '9':
		d.digits()
	default:
		return nil, false, d.syntax("in numeric literal")
	}
	isInt = true
	if d.peek() == '.' {
		d.off++
		if c := d.peek(); c < '0' || c > '9' {
			return nil, false, d.syntax("after decimal point in numeric literal")
		}
		d.digits()
		isInt = false
	}
	if c := d.peek(); c == 'e' || c == 'E' {
		d.off++
		if c := d.peek(); c == '+' || c == '-' {
			d.off++
		}
		if c := d.peek(); c < '0' || c > '9' {
			return nil, false, d.syntax("in exponent of numeric literal")
		}
		d.digits()
		isInt = false
	}
	return d.b[start:d.off], isInt, nil
}

func (d *jsonDecoder) digits() {
	for c := d.peek(); c >= '0' && c <= '9'; c = d.peek() {
		d.off++
	}
}

// integer reads an integer of type w: u is the value, or its two's complement when neg.
// depth is how many containers enclose it.
func (d *jsonDecoder) integer(w intRange, depth int) (u uint64, neg bool, err error) {
	start := d.off
	if d.kindAt() == "number" {
		lit, isInt, err := d.number()
		if err != nil {
			return 0, false, err
		}
		if isInt {
			return parseInteger(lit, w)
		}
		d.off = start
	}
	return 0, false, d.typeErr(w.name, depth)
}

// parseInteger converts an integer literal exactly and checks it against w. As encoding/json,
// an unsigned type refuses any literal with a minus sign, even -0.
func parseInteger(lit []byte, w intRange) (uint64, bool, error) {
	neg := lit[0] == '-'
	digits := lit
	if neg {
		digits = lit[1:]
	}
	var m uint64
	for _, c := range digits {
		hi, lo := bits.Mul64(m, 10)
		var carry uint64
		m, carry = bits.Add64(lo, uint64(c-'0'), 0)
		if hi != 0 || carry != 0 {
			return 0, false, fmt.Errorf("%s is out of range for %s", clipLiteral(lit), w.name)
		}
	}
	if !neg {
		return m, false, w.check(m, false)
	}
	if w.min == 0 || m > 1<<63 {
		return 0, false, fmt.Errorf("%s is out of range for %s", clipLiteral(lit), w.name)
	}
	return -m, m != 0, w.check(-m, m != 0)
}

// scanString passes over the string literal at the current byte ('"'), checking it: it
// returns the bytes between the quotes, whether they hold escapes, and the length of the
// string they decode to.
func (d *jsonDecoder) scanString() (raw []byte, escaped bool, n int, err error) {
	d.off++
	start, b := d.off, d.b
	i, shrink := start, 0 // shrink: how much shorter escapes decode than they are
	for {
		for i < len(b) && b[i] >= 0x20 && b[i] < utf8.RuneSelf && b[i] != '"' && b[i] != '\\' {
			i++
		}
		if i >= len(b) {
			d.off = i
			return nil, false, 0, d.syntax("in string literal")
		}
		switch c := b[i]; {
		case c == '"':
			d.off = i + 1
			return b[start:i], escaped, i - start - shrink, nil
		case c == '\\':
			escaped = true
			if i+1 >= len(b) {
				d.off = i + 1
				return nil, false, 0, d.syntax("in string escape code")
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
				shrink++
			case 'u':
				r, ok := hex4(b[i+2:])
				if !ok {
					d.off = i + 2
					return nil, false, 0, d.syntax("in \\u hexadecimal character escape")
				}
				size := 6
				if utf16.IsSurrogate(r) {
					r2, ok := rune(0), false
					if r < 0xdc00 && i+12 <= len(b) && b[i+6] == '\\' && b[i+7] == 'u' {
						r2, ok = hex4(b[i+8:])
					}
					if pair := utf16.DecodeRune(r, r2); ok && pair != utf8.RuneError {
						r = pair
					} else {
						d.off = i
						return nil, false, 0, fmt.Errorf("not valid UTF-8: \\u%04x is half a surrogate pair", r)
					}
					size = 12
				}
				i += size
				shrink += size - utf8.RuneLen(r)
			default:
				d.off = i + 1
				return nil, false, 0, d.syntax("in string escape code")
			}
		case c < 0x20:
			d.off = i
			return nil, false, 0, d.syntax("in string literal")
		default:
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size == 1 {
				d.off = i
				return nil, false, 0, fmt.Errorf("not valid UTF-8 (byte 0x%02x at byte %d)", c, i)
			}
			i += size
		}
	}
}

// hex4 reads the four hexadecimal digits of a \u escape.
func hex4(p []byte) (rune, bool) {
	if len(p) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range p[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// unescape decodes the checked contents of a string literal with escapes into n bytes.
func unescape(raw []byte, n int) string {
	var sb strings.Builder
	sb.Grow(n)
	for len(raw) > 0 {
		i := bytes.IndexByte(raw, '\\')
		if i < 0 {
			sb.Write(raw)
			break
		}
		sb.Write(raw[:i])
		raw = raw[i:]
		c := raw[1]
		switch c {
		case 'u':
			r, _ := hex4(raw[2:])
			raw = raw[6:]
			if utf16.IsSurrogate(r) {
				r2, _ := hex4(raw[2:])
				r, raw = utf16.DecodeRune(r, r2), raw[6:]
			}
			sb.WriteRune(r)
			continue
		case 'b':
			c = '\b'
		case 'f':
			c = '\f'
		case 'n':
			c = '\n'
		case 'r':
			c = '\r'
		case 't':
			c = '\t'
		}
		sb.WriteByte(c)
		raw = raw[2:]
	}
	return sb.String()
}

// str reads a string (null is ""), refusing one longer than max before allocating it.
func (d *jsonDecoder) str(max, depth int) (string, error) {
	switch d.peek() {
	case '"':
	case 'n':
		return "", d.literal("null")
	default:
		return "", d.typeErr("string", depth)
	}
	raw, escaped, n, err := d.scanString()
	switch {
	case err != nil:
		return "", err
	case n > max:
		return "", fmt.Errorf("longer than %d bytes", max)
	}
	if err := d.charge(n, false); err != nil {
		return "", err
	}
	if !escaped {
		return string(raw), nil
	}
	return unescape(raw, n), nil
}

// more moves to the next element of an array or member of an object, past the comma that
// separates it from the i before it; false past the closing bracket.
func (d *jsonDecoder) more(closing byte, i int) (bool, error) {
	d.ws()
	switch c := d.peek(); {
	case c == closing:
		d.off++
		return false, nil
	case i == 0:
		return true, nil
	case c != ',':
		if closing == '}' {
			return false, d.syntax("after object key:value pair")
		}
		return false, d.syntax("after array element")
	}
	d.off++
	d.ws()
	return true, nil
}

// member moves to the value of the next member of an object, returning its key; false past
// the closing brace. A key is read without allocating unless it holds escapes.
func (d *jsonDecoder) member(i int) (key []byte, ok bool, err error) {
	if ok, err = d.more('}', i); !ok || err != nil {
		return nil, false, err
	}
	if key, err = d.key(); err != nil {
		return nil, false, err
	}
	d.ws()
	if d.peek() != ':' {
		return nil, false, d.syntax("after object key")
	}
	d.off++
	d.ws()
	return key, true, nil
}

func (d *jsonDecoder) key() ([]byte, error) {
	if d.peek() != '"' {
		return nil, d.syntax("looking for beginning of object key string")
	}
	raw, escaped, n, err := d.scanString()
	if err != nil || !escaped {
		return raw, err
	}
	if err := d.charge(n, false); err != nil {
		return nil, err
	}
	return []byte(unescape(raw, n)), nil
}

// count counts the elements of the array at the current byte ('['), checking their syntax,
// without moving: it stops at max+1. depth is how many containers enclose the elements. An
// error names no field but the element's index.
func (d *jsonDecoder) count(max, depth int) (n int, err error) {
	start := d.off
	d.off++
	for ; ; n++ {
		more, err := d.more(']', n)
		if err != nil || !more {
			d.off = start
			return n, err
		}
		if n == max {
			d.off = start
			return n + 1, nil
		}
		if err := d.skipValue(depth); err != nil {
			d.off = start
			return n, err
		}
	}
}

// skipValue passes over one value of any kind, checking its syntax, iteratively. depth is how
// many containers enclose it; it may open MaxDepth-depth more. Bit i of objects says whether
// the i-th container skip opened is an object.
func (d *jsonDecoder) skipValue(depth int) error {
	var objects uint64
	open := 0
	for {
		d.ws()
		switch c := d.peek(); c {
		case '{', '[':
			if depth+open+1 > MaxDepth {
				return fmt.Errorf("nested deeper than %d levels", MaxDepth)
			}
			d.off++
			objects &^= 1 << open
			if c == '{' {
				objects |= 1 << open
			}
			open++
			d.ws()
			if d.peek() != c+2 { // '{'+2 is '}', '['+2 is ']'
				if c == '{' {
					if err := d.skipKey(); err != nil {
						return err
					}
				}
				continue
			}
			d.off++
			open--
		case '"':
			if _, _, _, err := d.scanString(); err != nil {
				return err
			}
		case 't':
			if err := d.literal("true"); err != nil {
				return err
			}
		case 'f':
			if err := d.literal("false"); err != nil {
				return err
			}
		case 'n':
			if err := d.literal("null"); err != nil {
				return err
			}
		default:
			if c != '-' && (c < '0' || c > '9') {
				return d.syntax("looking for beginning of value")
			}
			if _, _, err := d.number(); err != nil {
				return err
			}
		}
		// After a value: close containers until a comma starts the next value.
		for {
			if open == 0 {
				return nil
			}
			inObject := objects>>(open-1)&1 == 1
			closing := byte(']')
			if inObject {
				closing = '}'
			}
			more, err := d.more(closing, 1)
			if err != nil {
				return err
			}
			if more {
				if inObject {
					if err := d.skipKey(); err != nil {
						return err
					}
				}
				break
			}
			open--
		}
	}
}

func (d *jsonDecoder) skipKey() error {
	if d.peek() != '"' {
		return d.syntax("looking for beginning of object key string")
	}
	if _, _, _, err := d.scanString(); err != nil {
		return err
	}
	d.ws()
	if d.peek() != ':' {
		return d.syntax("after object key")
	}
	d.off++
	return nil
}

func (d *jsonDecoder) report(r *Report) error {
	d.ws()
	if d.peek() != '{' {
		return asField("report", d.typeErr("an object", 0))
	}
	d.off++
	*r = Report{Messages: r.Messages[:0]}
	seen := 0
	for i := 0; ; i++ {
		key, ok, err := d.member(i)
		if err != nil {
			return asField("report", err)
		}
		if !ok {
			return nil
		}
		k := reportKey(key)
		switch {
		case k == 0:
			return &FieldError{Field: keyName(key), Reason: "unknown field"}
		case seen&k != 0:
			return &FieldError{Field: string(key), Reason: "repeated field"}
		}
		seen |= k
		switch k {
		case keyV:
			var u uint64
			u, _, err = d.integer(rangeInt, 1)
			r.V = int(u)
		case keyClient:
			r.Client, err = d.str(d.lim.MaxIDBytes, 1)
		case keySite:
			r.Site, err = d.str(d.lim.MaxIDBytes, 1)
		case keyFullTypes:
			err = d.fullTypes(r)
		case keyMessages:
			err = d.messages(r)
		case keyVia:
			r.Via, err = d.str(d.lim.MaxIDBytes, 1)
		}
		if err != nil {
			return asField(string(key), err)
		}
	}
}

// array starts reading an array of at most max elements at depth (the containers enclosing
// its elements), counted first: it returns the count, or -1 for null. An error about an
// element names the element, after field (called only then: paths cost allocations).
func (d *jsonDecoder) array(field func() string, max, depth int) (int, error) {
	switch d.peek() {
	case '[':
	case 'n':
		return -1, d.literal("null")
	default:
		return 0, d.typeErr("an array", depth-1)
	}
	n, err := d.count(max, depth)
	if err != nil {
		return n, asField(field()+"["+strconv.Itoa(n)+"]", err)
	}
	d.off++ // past '['
	return n, nil
}

// element moves to element i < n of an array that count has checked.
func (d *jsonDecoder) element(i, n int) error {
	more, err := d.more(']', i)
	if err == nil && more != (i < n) {
		panic("BUG: an array counted " + strconv.Itoa(n) + " elements has another count")
	}
	return err
}

func (d *jsonDecoder) fullTypes(r *Report) error {
	n, err := d.array(func() string { return "full_types" }, MaxFullTypes, 2)
	switch {
	case err != nil:
		return err
	case n > MaxFullTypes:
		return fmt.Errorf("more than the %d full types allowed", MaxFullTypes)
	case n < 0:
		return nil
	}
	if err := d.charge(n*sizeofTopicType, false); err != nil {
		return err
	}
	if n > 0 {
		r.FullTypes = make([]TopicType, n)
	}
	for j := 0; j <= n; j++ {
		if err := d.element(j, n); err != nil || j == n {
			return err
		}
		u, _, err := d.integer(rangeUint16, 2)
		if err != nil {
			return asField("full_types["+strconv.Itoa(j)+"]", err)
		}
		r.FullTypes[j] = TopicType(u)
	}
	return nil
}

func (d *jsonDecoder) messages(r *Report) error {
	n, err := d.array(func() string { return "messages" }, d.lim.MaxMessages, 2)
	switch {
	case err != nil:
		return err
	case n > d.lim.MaxMessages:
		return tooManyMessages(-1, d.lim)
	case n < 0:
		return nil
	}
	if err := d.charge(n*sizeofMessage, true); err != nil {
		return err
	}
	if cap(r.Messages) < n {
		r.Messages = make([]StateMessage, n)
	}
	r.Messages = r.Messages[:n]
	for i := 0; i <= n; i++ {
		if err := d.element(i, n); err != nil || i == n {
			return err
		}
		if err := d.message(&r.Messages[i], i); err != nil {
			return err
		}
	}
	return nil
}

func (d *jsonDecoder) message(m *StateMessage, i int) error {
	if d.peek() != '{' {
		return asField(messagePath(i), d.typeErr("an object", 2))
	}
	d.off++
	*m = StateMessage{}
	seen := 0
	for j := 0; ; j++ {
		key, ok, err := d.member(j)
		if err != nil {
			return asField(messagePath(i), err)
		}
		if !ok {
			return nil
		}
		k := messageKey(key)
		switch {
		case k == 0:
			return &FieldError{Field: messageField(i, key), Reason: "unknown field"}
		case seen&k != 0:
			return &FieldError{Field: messageField(i, key), Reason: "repeated field"}
		}
		seen |= k
		var u uint64
		switch k {
		case keySerial:
			m.Serial, _, err = d.integer(rangeUint64, 3)
		case keyTime:
			u, _, err = d.integer(rangeInt64, 3)
			m.Time = int64(u)
		case keyTopicType:
			u, _, err = d.integer(rangeUint16, 3)
			m.TopicType = TopicType(u)
		case keyTopicID:
			m.TopicID, err = d.str(d.lim.MaxIDBytes, 3)
		case keyState:
			u, _, err = d.integer(rangeInt32, 3)
			m.State = int32(u)
		case keyError:
			u, _, err = d.integer(rangeInt32, 3)
			m.Error = int32(u)
		case keyParams:
			err = d.params(m, i)
		}
		if err != nil {
			return asField(messageField(i, key), err)
		}
	}
}

func (d *jsonDecoder) params(m *StateMessage, i int) error {
	n, err := d.array(func() string { return messagePath(i) + ".params" }, d.lim.MaxParams, 4)
	switch {
	case err != nil:
		return err
	case n > d.lim.MaxParams:
		return fmt.Errorf("more than the %d params allowed", d.lim.MaxParams)
	case n < 0:
		return nil
	}
	if err := d.charge(n*sizeofString, true); err != nil {
		return err
	}
	if n > 0 {
		m.Params = make([]string, n)
	}
	for j := 0; j <= n; j++ {
		if err := d.element(j, n); err != nil || j == n {
			return err
		}
		if m.Params[j], err = d.str(d.lim.MaxParamBytes, 4); err != nil {
			return asField(messagePath(i)+".params["+strconv.Itoa(j)+"]", err)
		}
	}
	return nil
}
