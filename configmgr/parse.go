package configmgr

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/statepipe/statepipe/schema"
)

// parser reads Report documents from a stream of XML tokens, one pass, without reflection.
// Element walkers consume an element through its end tag. The first problem of a document is
// kept in err and the document is still read to its end, so that TranslateBatch can go on
// with the next one; a problem that stops the reading (malformed XML) is fatal.
type parser struct {
	x     *xml.Decoder
	start xml.StartElement // the element child or nextTop read last
	// stack holds the open elements, outermost first; root is the index of the Report
	// element in it (-1 outside a document).
	stack []frame
	root  int
	fatal *Error // the body cannot be read further
	err   *Error // first problem of the document being read
	buf   []byte // text being collected
	site  string
	lim   schema.Limits
	doc   docState
}

// frame is an open element: its name, the prefix it was written with, and for StateMessage
// elements their number (0 for others).
type frame struct {
	name, prefix string
	index        int
}

// docState is what a document read so far translates to.
type docState struct {
	machine  Machine
	full     bool
	msgs     []schema.StateMessage
	pos      []int          // StateMessage index of each of msgs
	serials  map[uint64]int // serial → StateMessage index, once serials stop increasing
	skipped  map[int]int
	states   map[string]int // messages skipped for a state ConfigMgr added later, by "type/state"
	elements int            // StateMessage elements seen
}

func newParser(input []byte, site string) (*parser, *Error) {
	text, err := toUTF8(input)
	if err != nil {
		return nil, err
	}
	x := xml.NewDecoder(bytes.NewReader(text))
	x.CharsetReader = charsetReader
	return &parser{x: x, root: -1, site: site, lim: schema.DefaultLimits}, nil
}

// next returns the next token, keeping the stack of open elements and checking their depth.
// It returns false at the end of the input or once the input cannot be read (p.fatal).
//
// It reads raw tokens and matches end tags to start tags itself: Token does that too but
// boxes every element twice and resolves name spaces, which the documents do not use; that
// was a fifth of the allocations.
func (p *parser) next() (xml.Token, bool) {
	if p.fatal != nil {
		return nil, false
	}
	tok, err := p.x.RawToken()
	if err != nil {
		switch {
		case err != io.EOF:
			p.fatal = p.errAt(p.path(), "", ErrMalformed, "%s", xmlReason(err))
		case len(p.stack) > 0:
			line, _ := p.x.InputPos()
			p.fatalf(ErrMalformed, "malformed XML at line %d: the input ends inside <%s>", line, p.stack[len(p.stack)-1].name)
		}
		return nil, false
	}
	switch t := tok.(type) {
	case xml.StartElement:
		p.stack = append(p.stack, frame{name: t.Name.Local, prefix: t.Name.Space})
		if p.root >= 0 && len(p.stack)-p.root > MaxDepth {
			// Fatal, not a problem of the document only: reading on to its end would grow
			// the stack by a frame per element of a nest as deep as the input is long.
			p.fatalf(ErrTooLarge, "elements nest deeper than %d levels (MaxDepth)", MaxDepth)
			return nil, false
		}
	case xml.EndElement:
		n := len(p.stack)
		if n == 0 || p.stack[n-1].name != t.Name.Local || p.stack[n-1].prefix != t.Name.Space {
			line, _ := p.x.InputPos()
			open := "no element"
			if n > 0 {
				open = "<" + qname(p.stack[n-1].prefix, p.stack[n-1].name) + ">"
			}
			p.fatalf(ErrMalformed, "malformed XML at line %d: </%s> closes %s", line, qname(t.Name.Space, t.Name.Local), open)
			return nil, false
		}
		p.stack = p.stack[:n-1]
	}
	return tok, true
}

// qname is an element name as written.
func qname(prefix, local string) string {
	if prefix == "" {
		return local
	}
	return prefix + ":" + local
}

// xmlReason describes an error of the XML decoder.
func xmlReason(err error) string {
	var se *xml.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("malformed XML at line %d: %s", se.Line, se.Msg)
	}
	return strings.TrimPrefix(err.Error(), "xml: ")
}

// nextTop reads up to the next element at the current level outside documents and reports
// whether there is one (p.start). It returns false at the end of the input, of an enclosing
// wrapper or when the input cannot be read. Only white space may lie between documents.
func (p *parser) nextTop() bool { return p.nextElement(false) }

// child reads up to the next child element of the element being read and reports whether
// there is one (p.start); false at the element's end tag or when the input cannot be read.
// Text and comments between children are skipped.
func (p *parser) child() bool { return p.nextElement(true) }

// nextElement reads up to the next start tag at the current level (p.start), or returns false
// at an end tag or when the input cannot be read; text other than white space is an error
// unless textAllowed.
func (p *parser) nextElement(textAllowed bool) bool {
	for {
		tok, ok := p.next()
		if !ok {
			return false
		}
		switch t := tok.(type) {
		case xml.StartElement:
			p.start = t
			return true
		case xml.EndElement:
			return false
		case xml.CharData:
			if !textAllowed && len(bytes.Trim(t, " \t\r\n\uFEFF")) > 0 {
				p.fatalf(ErrMalformed, "text %q outside the Report element", clip(string(t)))
				return false
			}
		}
	}
}

// skip reads the element just opened through its end tag.
func (p *parser) skip() {
	for n := 1; n > 0; {
		tok, ok := p.next()
		if !ok {
			return
		}
		switch tok.(type) {
		case xml.StartElement:
			n++
		case xml.EndElement:
			n--
		}
	}
}

// text reads the element just opened through its end tag and returns its text. The element
// must hold text only: w names it in the error if not.
func (p *parser) text(w where) string {
	p.buf = p.buf[:0]
	for {
		tok, ok := p.next()
		if !ok {
			return ""
		}
		switch t := tok.(type) {
		case xml.CharData:
			p.buf = append(p.buf, t...)
		case xml.StartElement:
			p.fail(w.String(), "", ErrInvalid, "holds the element <%s>: want text", t.Name.Local)
			p.skip()
		case xml.EndElement:
			return string(p.buf)
		}
	}
}

// where names an element for an error without making its path until it is needed (the path
// of a StateMessage child is made for errors only).
type where struct {
	path string // a fixed path, when n is 0
	n    int    // StateMessage n …
	sub  string // … or its child sub (when not "") …
	k    int    // … number k (when > 0)
}

// at is where for a fixed path.
func at(path string) where { return where{path: path} }

// in is where for StateMessage n's child sub ("" for the StateMessage itself).
func in(n int, sub string) where { return where{n: n, sub: sub} }

func (w where) String() string {
	if w.n == 0 {
		return w.path
	}
	if w.k > 0 {
		return msgPath(w.n, w.sub+"["+strconv.Itoa(w.k)+"]")
	}
	return msgPath(w.n, w.sub)
}

// once reports whether the element w is seen for the first time, failing (and skipping it) if
// not.
func (p *parser) once(seen *bool, w where) bool {
	if *seen {
		p.fail(w.String(), "", ErrInvalid, "appears more than once")
		p.skip()
		return false
	}
	*seen = true
	return true
}

// document reads the Report element just opened (p.start) through its end tag.
func (p *parser) document() (Result, *Error) {
	p.root, p.err, p.doc = len(p.stack)-1, nil, docState{}
	defer func() { p.root = -1 }()
	var header, body bool
	for p.child() {
		switch p.start.Name.Local {
		case "ReportHeader":
			if p.once(&header, at("ReportHeader")) {
				p.header()
			}
		case "ReportBody":
			if p.once(&body, at("ReportBody")) {
				p.body()
			}
		default:
			p.skip()
		}
	}
	switch {
	case p.fatal != nil:
		return Result{}, p.fatal
	case !header:
		p.fail("ReportHeader", "", ErrMissing, "required element is missing")
	case !body:
		p.fail("ReportBody", "", ErrMissing, "required element is missing")
	}
	if p.err != nil {
		return Result{}, p.err
	}
	return p.result()
}

const (
	pathIdentification = "ReportHeader/Identification"
	pathMachine        = pathIdentification + "/Machine"
	pathClientID       = pathMachine + "/ClientID"
	pathDetails        = "ReportHeader/ReportDetails"
	pathReportType     = pathDetails + "/ReportType"
	pathReportContent  = pathDetails + "/ReportContent"
)

func (p *parser) header() {
	var ident, machine, details bool
	for p.child() {
		switch p.start.Name.Local {
		case "Identification":
			if !p.once(&ident, at(pathIdentification)) {
				continue
			}
			for p.child() {
				switch {
				case p.start.Name.Local != "Machine":
					p.skip()
				case p.once(&machine, at(pathMachine)):
					p.machine()
				}
			}
		case "ReportDetails":
			if p.once(&details, at(pathDetails)) {
				p.details()
			}
		default:
			p.skip()
		}
	}
	switch {
	case p.fatal != nil:
	case !ident:
		p.fail(pathIdentification, "", ErrMissing, "required element is missing")
	case !machine:
		p.fail(pathMachine, "", ErrMissing, "required element is missing")
	case !details:
		p.fail(pathDetails, "", ErrMissing, "required element is missing")
	}
}

func (p *parser) machine() {
	m := &p.doc.machine
	var seen [7]bool
	fields := [...]struct {
		name string
		dst  *string
	}{
		{"ClientInstalled", &m.ClientInstalled}, {"ClientType", &m.ClientType},
		{"ClientID", &m.ClientID}, {"ClientVersion", &m.ClientVersion},
		{"NetBIOSName", &m.NetBIOSName}, {"CodePage", &m.CodePage},
		{"SystemDefaultLCID", &m.SystemDefaultLCID},
	}
next:
	for p.child() {
		for i, f := range fields {
			if p.start.Name.Local == f.name {
				w := at(pathMachine + "/" + f.name)
				if p.once(&seen[i], w) {
					*f.dst = strings.TrimSpace(p.text(w))
				}
				continue next
			}
		}
		p.skip()
	}
	if p.fatal != nil {
		return
	}
	id := m.ClientID
	switch {
	case !seen[2]:
		p.fail(pathClientID, "", ErrMissing, "required element is missing")
	case id == "":
		p.fail(pathClientID, "", ErrMissing, "is empty")
	case len(id) > p.lim.MaxIDBytes:
		p.fail(pathClientID, "", ErrInvalid, "%d bytes, at most %d allowed for a client id", len(id), p.lim.MaxIDBytes)
	case !schema.PrintableID(id):
		p.fail(pathClientID, "", ErrInvalid, "%q holds a control character: not a client id", id)
	}
}

func (p *parser) details() {
	var content, typ bool
	for p.child() {
		switch p.start.Name.Local {
		case "ReportContent":
			if !p.once(&content, at(pathReportContent)) {
				continue
			}
			if v := strings.TrimSpace(p.text(at(pathReportContent))); !strings.EqualFold(v, "State Message Data") {
				p.fail(pathReportContent, "", ErrInvalid, "%q: want \"State Message Data\" (this is not a state message report)", clip(v))
			}
		case "ReportType":
			if !p.once(&typ, at(pathReportType)) {
				continue
			}
			switch v := strings.TrimSpace(p.text(at(pathReportType))); {
			case strings.EqualFold(v, "Full"):
				p.doc.full = true
			case strings.EqualFold(v, "Delta"):
			default:
				p.fail(pathReportType, "", ErrInvalid, "%q: want Full or Delta", clip(v))
			}
		default:
			p.skip()
		}
	}
	if p.fatal == nil && !typ {
		p.fail(pathReportType, "", ErrMissing, "required element is missing")
	}
}

func (p *parser) body() {
	for p.child() {
		if p.start.Name.Local != "StateMessage" {
			p.skip()
			continue
		}
		p.doc.elements++
		n := p.doc.elements
		p.stack[len(p.stack)-1].index = n
		switch {
		case n > p.lim.MaxMessages:
			p.fail(msgPath(n, ""), "", ErrTooLarge, "more than %d state messages (schema.DefaultLimits.MaxMessages)", p.lim.MaxMessages)
			p.skip()
		case p.err != nil: // the document is refused: only read on
			p.skip()
		default:
			p.message(n)
		}
	}
	if p.fatal == nil && p.doc.elements == 0 {
		p.fail("ReportBody/StateMessage", "", ErrMissing, "at least one StateMessage is required")
	}
}

// rawMessage is a StateMessage element as read, before its values are checked.
type rawMessage struct {
	time, serial, topicID, topicType, state   string
	hasTime, hasSerial, hasTopicID, hasType   bool
	hasTopic, hasState, hasStateID, hasParams bool
	params                                    []string
	tooLong                                   int // index+1 of the first param over the limit
}

func (p *parser) message(n int) {
	var m rawMessage
	p.attrs(in(n, ""), attr{"MessageTime", &m.time, &m.hasTime}, attr{"SerialNumber", &m.serial, &m.hasSerial})
	for p.child() {
		switch p.start.Name.Local {
		case "Topic":
			if p.once(&m.hasTopic, in(n, "Topic")) {
				p.attrs(in(n, "Topic"), attr{"ID", &m.topicID, &m.hasTopicID}, attr{"Type", &m.topicType, &m.hasType})
				p.skip()
			}
		case "State":
			if p.once(&m.hasState, in(n, "State")) {
				p.attrs(in(n, "State"), attr{"ID", &m.state, &m.hasStateID})
				p.skip()
			}
		case "UserParameters":
			if p.once(&m.hasParams, in(n, "UserParameters")) {
				p.params(n, &m)
			}
		default: // StateDetails and anything else
			p.skip()
		}
	}
	if p.fatal == nil && p.err == nil {
		p.translate(n, &m)
	}
}

// params reads UserParameters, keeping up to one Param more than the limit (to say so).
func (p *parser) params(n int, m *rawMessage) {
	for p.child() {
		if p.start.Name.Local != "Param" {
			p.skip()
			continue
		}
		if len(m.params) > p.lim.MaxParams {
			p.skip()
			continue
		}
		v := p.text(where{n: n, sub: "UserParameters/Param", k: len(m.params) + 1})
		if len(v) > p.lim.MaxParamBytes && m.tooLong == 0 {
			m.tooLong = len(m.params) + 1
		}
		m.params = append(m.params, v)
	}
}

// attr is an attribute to read: its value and whether it was there.
type attr struct {
	name string
	val  *string
	has  *bool
}

// attrs reads the attributes of p.start (the element w) named in want; a repeated one is an
// error.
func (p *parser) attrs(w where, want ...attr) {
	for _, a := range p.start.Attr {
		if a.Name.Space != "" {
			continue
		}
		for _, x := range want {
			if a.Name.Local == x.name {
				if *x.has {
					p.fail(w.String(), x.name, ErrInvalid, "appears more than once")
				}
				*x.val, *x.has = a.Value, true
			}
		}
	}
}

// translate checks a StateMessage and adds it to the document's messages, or counts it as
// skipped.
func (p *parser) translate(n int, m *rawMessage) {
	if !m.hasTopic {
		p.fail(msgPath(n, "Topic"), "", ErrMissing, "required element is missing")
		return
	}
	if !m.hasType || m.topicType == "" {
		p.fail(msgPath(n, "Topic"), "Type", ErrMissing, "required attribute is missing")
		return
	}
	tt, err := strconv.ParseUint(m.topicType, 10, 32)
	if err != nil {
		p.fail(msgPath(n, "Topic"), "Type", ErrInvalid, "%q is not a topic type (a decimal uint32)", clip(m.topicType))
		return
	}
	t := schema.TopicType(tt)
	if tt > 0xFFFF || !t.Known() {
		if p.doc.skipped == nil {
			p.doc.skipped = make(map[int]int)
		}
		p.doc.skipped[int(tt)]++
		return
	}
	out := schema.StateMessage{TopicType: t}

	switch {
	case !m.hasSerial || m.serial == "":
		p.fail(msgPath(n, ""), "SerialNumber", ErrMissing, "required attribute is missing")
		return
	default:
		s, err := strconv.ParseUint(m.serial, 10, 64)
		if err != nil || s == 0 || s >= schema.RelaySpan {
			p.fail(msgPath(n, ""), "SerialNumber", ErrInvalid, "%q is not a serial number (a decimal integer from 1 to 2^40 − 1)", clip(m.serial))
			return
		}
		out.Serial = s
	}

	if !m.hasTime || m.time == "" {
		p.fail(msgPath(n, ""), "MessageTime", ErrMissing, "required attribute is missing")
		return
	}
	ms, reason := parseTime(m.time)
	if reason != "" {
		p.fail(msgPath(n, ""), "MessageTime", ErrInvalid, "%q: %s", clip(m.time), reason)
		return
	}
	out.Time = ms

	if t.Keyed() {
		id := m.topicID
		switch {
		case id == "":
			p.fail(msgPath(n, "Topic"), "ID", ErrMissing, "required for topic type %d", t)
			return
		case len(id) > p.lim.MaxIDBytes:
			p.fail(msgPath(n, "Topic"), "ID", ErrInvalid, "%d bytes, at most %d allowed for a topic id", len(id), p.lim.MaxIDBytes)
			return
		case !schema.PrintableID(id):
			p.fail(msgPath(n, "Topic"), "ID", ErrInvalid, "%q holds a control character: not a topic id", clip(id))
			return
		}
		out.TopicID = id
	} // unkeyed types (700, 701) carry no topic id

	switch {
	case !m.hasState:
		p.fail(msgPath(n, "State"), "", ErrMissing, "required element is missing")
		return
	case !m.hasStateID || m.state == "":
		p.fail(msgPath(n, "State"), "ID", ErrMissing, "required attribute is missing")
		return
	}
	count := t.StateCount()
	st, err := strconv.ParseInt(m.state, 10, 64)
	switch {
	case err != nil && errors.Is(err, strconv.ErrSyntax):
		p.fail(msgPath(n, "State"), "ID", ErrInvalid, "%q is not a number", clip(m.state))
		return
	case err == nil && st >= int64(count) && st <= MaxAddedState && t.CarriesErrors():
		// A state a later ConfigMgr added to an enforcement type (301 11 "Waiting for
		// orchestration", 12 "Waiting for superseding update"; 402 beyond 14): not modelled,
		// so skipped and counted, and the type is not marked full (package doc).
		if p.doc.states == nil {
			p.doc.states = make(map[string]int)
		}
		p.doc.states[strconv.Itoa(int(t))+"/"+strconv.FormatInt(st, 10)]++
		return
	case err != nil || st < 0 || st >= int64(count):
		added := ""
		if t.CarriesErrors() {
			added = fmt.Sprintf("; %d–%d, states later ConfigMgr versions added, are skipped", count, MaxAddedState)
		}
		p.fail(msgPath(n, "State"), "ID", ErrInvalid, "%s is out of range for topic type %d (0–%d%s)", clip(m.state), t, count-1, added)
		return
	}
	out.State = int32(st)

	switch {
	case len(m.params) > p.lim.MaxParams:
		p.fail(msgPath(n, "UserParameters"), "", ErrTooLarge, "more than %d Param elements (schema.DefaultLimits.MaxParams)", p.lim.MaxParams)
		return
	case m.tooLong > 0:
		p.fail(msgPath(n, "UserParameters/Param["+strconv.Itoa(m.tooLong)+"]"), "", ErrTooLarge, "%d bytes, at most %d allowed (schema.DefaultLimits.MaxParamBytes)", len(m.params[m.tooLong-1]), p.lim.MaxParamBytes)
		return
	}
	if len(m.params) > 0 {
		out.Params = m.params
	}
	if t.CountsErrors() {
		out.Error = firstHRESULT(m.params)
	}

	if !p.uniqueSerial(n, out.Serial) {
		return
	}
	p.doc.msgs = append(p.doc.msgs, out)
	p.doc.pos = append(p.doc.pos, n)
}

// uniqueSerial reports whether serial is new in the document, failing if not. While serials
// increase (as ConfigMgr numbers them) it compares with the last one only.
func (p *parser) uniqueSerial(n int, serial uint64) bool {
	d := &p.doc
	if d.serials == nil {
		if k := len(d.msgs); k == 0 || serial > d.msgs[k-1].Serial {
			return true
		}
		d.serials = make(map[uint64]int, 2*len(d.msgs))
		for i := range d.msgs {
			d.serials[d.msgs[i].Serial] = d.pos[i]
		}
	}
	if earlier, dup := d.serials[serial]; dup {
		p.fail(msgPath(n, ""), "SerialNumber", ErrInvalid, "%d repeats the serial of StateMessage[%d]: every message has its own", serial, earlier)
		return false
	}
	d.serials[serial] = n
	return true
}

// result builds the document's Result once it has been read without a problem.
func (p *parser) result() (Result, *Error) {
	d := &p.doc
	res := Result{Machine: d.machine, Skipped: d.skipped, SkippedStates: d.states}
	if len(d.msgs) == 0 {
		return res, nil
	}
	res.Elements = d.pos
	r := &schema.Report{V: schema.Version, Client: d.machine.ClientID, Site: p.site, Messages: d.msgs}
	if d.full {
		for i := range d.msgs {
			if t := d.msgs[i].TopicType; t.Keyed() && !slices.Contains(r.FullTypes, t) && !d.skippedState(t) {
				r.FullTypes = append(r.FullTypes, t)
			}
		}
		slices.Sort(r.FullTypes)
	}
	if err := r.Validate(p.lim); err != nil {
		// Every rule of Validate is checked above, naming the element: this is a bug here.
		return Result{}, &Error{Path: "Report", Reason: "BUG: the translated report fails validation: " + err.Error(), Err: ErrInvalid}
	}
	res.Report = r
	return res, nil
}

// skippedState reports whether a message of type t was skipped for its state.
func (d *docState) skippedState(t schema.TopicType) bool {
	prefix := strconv.Itoa(int(t)) + "/"
	for k := range d.states {
		if strings.HasPrefix(k, prefix) {
			return true
		}
	}
	return false
}

// msgPath is the path of StateMessage n, or of its child sub.
func msgPath(n int, sub string) string {
	p := "ReportBody/StateMessage[" + strconv.Itoa(n) + "]"
	if sub != "" {
		p += "/" + sub
	}
	return p
}

// path is the path of the innermost open element, from the Report element.
func (p *parser) path() string {
	if p.root < 0 || len(p.stack) <= p.root+1 {
		return "Report"
	}
	var b strings.Builder
	for i, f := range p.stack[p.root+1:] {
		if i > 0 {
			b.WriteByte('/')
		}
		b.WriteString(f.name)
		if f.index > 0 {
			b.WriteString("[" + strconv.Itoa(f.index) + "]")
		}
	}
	return b.String()
}

func (p *parser) errAt(path, attr string, class error, format string, args ...any) *Error {
	return &Error{Path: path, Attr: attr, Reason: fmt.Sprintf(format, args...), Err: class}
}

// fail records the document's first problem.
func (p *parser) fail(path, attr string, class error, format string, args ...any) {
	if p.err == nil {
		p.err = p.errAt(path, attr, class, format, args...)
	}
}

// fatalf records a problem that ends the reading of the input, at the innermost element.
func (p *parser) fatalf(class error, format string, args ...any) {
	if p.fatal == nil {
		p.fatal = p.errAt(p.path(), "", class, format, args...)
	}
}

// clip shortens a value quoted in an error.
func clip(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	i := max
	for i > 0 && s[i]&0xC0 == 0x80 { // do not cut a UTF-8 sequence
		i--
	}
	return s[:i] + "…"
}
