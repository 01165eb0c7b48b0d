package configmgr

import (
	"errors"
	"fmt"

	"github.com/statepipe/statepipe/schema"
)

// Bounds of what a call reads.
const (
	// MaxInputBytes is the largest document Translate reads, and the largest body
	// TranslateBatch reads, in bytes as received. A full report of a 30,000-update catalog
	// (what schema.DefaultLimits is sized for) is about 15 MiB of UTF-16 at ~520 bytes a 500
	// message, and its translation about 2.5 MiB of msgpack, within ingest's 8 MiB body; 32 MiB
	// leaves room for longer ids and params without letting one document hold much memory.
	MaxInputBytes = 32 << 20
	// MaxDepth is how deeply elements may nest, the Report element counting as 1 (a wrapper of
	// TranslateBatch does not count). A state message document needs 5.
	MaxDepth = 32
)

// Classes of *Error, for errors.Is.
var (
	// ErrMalformed: the input is not well-formed XML in UTF-8 or UTF-16, or not a Report
	// document (another root, text outside it, a second document given to Translate).
	ErrMalformed = errors.New("malformed document")
	// ErrMissing: a required element or attribute is missing or empty.
	ErrMissing = errors.New("missing element or attribute")
	// ErrInvalid: a value is not a number, out of range, repeated, or not an id schema accepts.
	ErrInvalid = errors.New("invalid value")
	// ErrTooLarge: the input exceeds MaxInputBytes, MaxDepth or the message or param limits of
	// schema.DefaultLimits.
	ErrTooLarge = errors.New("document too large")
)

// Error is a problem with a document: it names the element and attribute at fault.
type Error struct {
	// Path is the element's path from the Report element, StateMessage counted from 1:
	// "ReportBody/StateMessage[3]/State". "Report" names the document as a whole.
	Path string
	// Attr is the attribute at fault, "" when it is the element or its text.
	Attr string
	// Reason says what is wrong, with the value.
	Reason string
	// Err is the class: ErrMalformed, ErrMissing, ErrInvalid or ErrTooLarge.
	Err error
}

// Error returns "Path@Attr: Reason".
func (e *Error) Error() string {
	if e.Attr != "" {
		return e.Path + "@" + e.Attr + ": " + e.Reason
	}
	return e.Path + ": " + e.Reason
}

// Unwrap returns the class of the error.
func (e *Error) Unwrap() error { return e.Err }

// Machine is the identification of the client as the document gives it (trimmed text, ""
// when absent). Only ClientID goes into the report.
type Machine struct {
	ClientInstalled   string
	ClientType        string
	ClientID          string
	ClientVersion     string
	NetBIOSName       string
	CodePage          string
	SystemDefaultLCID string
}

// Result is the translation of one document.
type Result struct {
	// Report is the statepipe report, valid for schema.DefaultLimits; nil when every message
	// of the document was skipped.
	Report *schema.Report
	// Machine is the client as the document identifies it.
	Machine Machine
	// Skipped counts the messages of topic types statepipe does not model, by topic type; nil
	// when none was skipped.
	Skipped map[int]int
	// SkippedStates counts the messages of 301 and 402 skipped for a state a later ConfigMgr
	// added (above statepipe's range, at most MaxAddedState), by "type/state" ("301/11"); nil
	// when none was.
	SkippedStates map[string]int
	// Elements gives, for each message of Report, the number (from 1) of the StateMessage
	// element it came from: Report's messages skip the skipped ones.
	Elements []int
}

// MaxAddedState is the highest state of 301 or 402 above statepipe's range that is skipped
// rather than refused: ConfigMgr has added states to these enforcement types over its
// versions (301 11 and 12), and a feed must not fail for them; a state above it is an error.
const MaxAddedState = 63

// Translate translates exactly one Report document (UTF-16 or UTF-8, see the package doc)
// into a report for site. A problem in the document is an *Error and gives a zero Result; an
// invalid site (not an id schema accepts) is a plain error, the caller's.
func Translate(doc []byte, site string) (Result, error) {
	if err := checkSite(site); err != nil {
		return Result{}, err
	}
	if len(doc) > MaxInputBytes {
		return Result{}, tooLarge(len(doc))
	}
	p, err := newParser(doc, site)
	if err != nil {
		return Result{}, err
	}
	if !p.nextTop() {
		if p.fatal != nil {
			return Result{}, p.fatal
		}
		return Result{}, &Error{Path: "Report", Reason: "no Report element", Err: ErrMissing}
	}
	if name := p.start.Name.Local; name != "Report" {
		return Result{}, &Error{Path: "Report", Reason: fmt.Sprintf("the root element is <%s>, want <Report>", name), Err: ErrMalformed}
	}
	res, derr := p.document()
	switch {
	case p.fatal != nil:
		return Result{}, p.fatal
	case derr != nil:
		return Result{}, derr
	case p.nextTop():
		return Result{}, &Error{Path: "Report", Reason: fmt.Sprintf("the element <%s> follows the Report element: Translate reads one document, TranslateBatch several", p.start.Name.Local), Err: ErrMalformed}
	case p.fatal != nil:
		return Result{}, p.fatal
	}
	return res, nil
}

// TranslateBatch translates a body of one or more Report documents for site: concatenated
// (each may have its own XML declaration, and BOM when UTF-16) or children of one wrapper
// element of any name (<Reports><Report>…</Report>…</Reports>). The body has one encoding.
// The answers are index-aligned, one per document in body order: errs[i] is nil when
// results[i] holds document i's translation, else an *Error and results[i] is zero. A problem
// that stops the reading of the body (malformed XML, a stray element, elements nested deeper
// than MaxDepth) is the answer of the document it is in, or an entry of its own between
// documents, and the last: the documents after it are not read. A body without a document,
// over MaxInputBytes, or an invalid site gives one entry with the error.
func TranslateBatch(body []byte, site string) ([]Result, []error) {
	if err := checkSite(site); err != nil {
		return []Result{{}}, []error{err}
	}
	if len(body) > MaxInputBytes {
		return []Result{{}}, []error{tooLarge(len(body))}
	}
	p, err := newParser(body, site)
	if err != nil {
		return []Result{{}}, []error{err}
	}
	var (
		results []Result
		errs    []error
	)
	add := func(res Result, err *Error) {
		results = append(results, res)
		if err != nil {
			errs = append(errs, err)
		} else {
			errs = append(errs, nil)
		}
	}
	// document reads one Report; a syntax error inside it is its answer and ends the body.
	document := func() bool {
		add(p.document())
		return p.fatal == nil
	}
	wrapped := false
top:
	for p.nextTop() {
		switch name := p.start.Name.Local; {
		case name == "Report":
			if !document() {
				return results, errs
			}
		case !wrapped && len(results) == 0:
			wrapped = true
			for p.nextTop() {
				if p.start.Name.Local != "Report" {
					p.fatalf(ErrMalformed, "the element <%s> is inside <%s>: want only <Report> elements", p.start.Name.Local, name)
					break top
				}
				if !document() {
					return results, errs
				}
			}
		default:
			p.fatalf(ErrMalformed, "the top-level element <%s> is not a <Report>", name)
			break top
		}
	}
	if p.fatal != nil {
		add(Result{}, p.fatal)
	}
	if len(results) == 0 {
		add(Result{}, &Error{Path: "Report", Reason: "no Report element", Err: ErrMissing})
	}
	return results, errs
}

// checkSite refuses a site schema would not accept.
func checkSite(site string) error {
	if site == "" || len(site) > schema.DefaultLimits.MaxIDBytes || !schema.PrintableID(site) {
		return fmt.Errorf("cannot translate ConfigMgr documents for site %q: not a valid site id (1–%d bytes, no control characters)", site, schema.DefaultLimits.MaxIDBytes)
	}
	return nil
}

func tooLarge(n int) *Error {
	return &Error{Path: "Report", Reason: fmt.Sprintf("%d bytes exceed the limit of %d bytes (MaxInputBytes)", n, MaxInputBytes), Err: ErrTooLarge}
}
