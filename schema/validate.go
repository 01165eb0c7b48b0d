package schema

import (
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// FieldError is a rejection of input that names the field (a JSON path such as
// "messages[3].state") and the reason. Ingest turns it into a 400 with the field set, unless
// it wraps ErrTooManyMessages (413).
type FieldError struct {
	Field  string
	Reason string
	// Err, when set, is the class of the rejection, for errors.Is: one of the errors below.
	Err error
}

func (e *FieldError) Error() string { return "field " + e.Field + ": " + e.Reason }

// Unwrap returns the class of the rejection (nil for most).
func (e *FieldError) Unwrap() error { return e.Err }

// Rejections a caller must tell apart from malformed input. Each arrives wrapped in a
// *FieldError that names the field; test with errors.Is.
var (
	// ErrTooManyMessages: the report carries more than Limits.MaxMessages messages (field
	// "messages"). The decoders know it from the array's header (msgpack) or by counting
	// (JSON) before they decode any message. Ingest answers 413, not 400.
	ErrTooManyMessages = errors.New("too many messages")
)

// Bounds of the report's shape that are not per-site knobs.
const (
	// MaxDepth is how deeply a body may nest arrays and maps (objects), the report itself
	// counting as 1. A report needs 4 (report, messages, message, params); msgpack values
	// under unknown keys may use the rest. Deeper input is refused, naming the key, without
	// being recursed into: a 6 MiB body nesting 6 million arrays overflowed the stack of
	// msgpack's own Skip (a fatal error, not a panic).
	MaxDepth = 32
	// MaxFullTypes bounds full_types: there are six keyed topic types.
	MaxFullTypes = 16
)

// Limits bound what one report may carry. The zero value means DefaultLimits. The decoders
// check counts and lengths against them before they allocate (a claimed count is never an
// allocation); Validate checks the rest.
type Limits struct {
	MaxMessages   int // messages per report (ErrTooManyMessages above)
	MaxParams     int // params per message
	MaxParamBytes int // bytes per param
	MaxIDBytes    int // bytes of client, site and topic ids
}

// DefaultLimits are generous for a real agent (a full scan of a 30,000-update catalog fits)
// and small enough that one report cannot take a broker's record size limit.
var DefaultLimits = Limits{MaxMessages: 50000, MaxParams: 16, MaxParamBytes: 1024, MaxIDBytes: 128}

// Validate checks a decoded report against DESIGN §3: version, ids (valid UTF-8 without
// control characters), known topic types and states within each type's range, serials
// present, params valid UTF-8. The first problem found is returned as a *FieldError. It does
// not count messages: the decoders do (ErrTooManyMessages).
func (r *Report) Validate(lim Limits) error {
	if lim == (Limits{}) {
		lim = DefaultLimits
	}
	switch {
	case r.V != Version:
		return &FieldError{Field: "v", Reason: fmt.Sprintf("unsupported version %d (this server speaks %d)", r.V, Version)}
	case r.Client == "":
		return &FieldError{Field: "client", Reason: "required"}
	case r.Site == "":
		return &FieldError{Field: "site", Reason: "required"}
	case len(r.Messages) == 0:
		return &FieldError{Field: "messages", Reason: "at least one message is required"}
	case len(r.FullTypes) > MaxFullTypes:
		return &FieldError{Field: "full_types", Reason: fmt.Sprintf("%d full types, at most %d allowed", len(r.FullTypes), MaxFullTypes)}
	}
	if err := checkID("client", r.Client, lim); err != nil {
		return err
	}
	if err := checkID("site", r.Site, lim); err != nil {
		return err
	}
	if r.Via != "" {
		if err := checkID("via", r.Via, lim); err != nil {
			return err
		}
	}
	for i, t := range r.FullTypes {
		if !t.Known() || !t.Keyed() {
			return &FieldError{Field: "full_types[" + strconv.Itoa(i) + "]", Reason: fmt.Sprintf("%d is not a keyed topic type", t)}
		}
	}
	increasing := true
	for i := range r.Messages {
		if err := r.Messages[i].validate(lim); err != nil {
			err.Field = "messages[" + strconv.Itoa(i) + "]." + err.Field
			return err
		}
		increasing = increasing && (i == 0 || r.Messages[i].Serial > r.Messages[i-1].Serial)
	}
	if !increasing { // the SDK numbers in order; only other clients need the map
		seen := make(map[uint64]int, len(r.Messages))
		for i := range r.Messages {
			if j, dup := seen[r.Messages[i].Serial]; dup {
				return &FieldError{Field: "messages[" + strconv.Itoa(i) + "].serial",
					Reason: fmt.Sprintf("%d repeats the serial of messages[%d]: every message has its own serial", r.Messages[i].Serial, j)}
			}
			seen[r.Messages[i].Serial] = i
		}
	}
	return nil
}

func (m *StateMessage) validate(lim Limits) *FieldError {
	switch {
	case m.Serial == 0:
		return &FieldError{Field: "serial", Reason: "required and must be > 0"}
	case !m.TopicType.Known():
		return &FieldError{Field: "topic_type", Reason: fmt.Sprintf("unknown topic type %d (known: 300, 301, 302, 402, 500, 501, 700, 701)", m.TopicType)}
	case m.State < 0 || int(m.State) >= m.TopicType.StateCount():
		return &FieldError{Field: "state", Reason: fmt.Sprintf("%d is out of range for topic type %d (0..%d)", m.State, m.TopicType, m.TopicType.StateCount()-1)}
	case m.TopicType.Keyed() && m.TopicID == "":
		return &FieldError{Field: "topic_id", Reason: fmt.Sprintf("required for topic type %d", m.TopicType)}
	case len(m.Params) > lim.MaxParams:
		return &FieldError{Field: "params", Reason: fmt.Sprintf("%d params, at most %d allowed", len(m.Params), lim.MaxParams)}
	}
	if err := checkID("topic_id", m.TopicID, lim); err != nil {
		return err
	}
	for j, p := range m.Params {
		switch {
		case len(p) > lim.MaxParamBytes:
			return &FieldError{Field: "params[" + strconv.Itoa(j) + "]", Reason: fmt.Sprintf("longer than %d bytes", lim.MaxParamBytes)}
		case !utf8.ValidString(p):
			return &FieldError{Field: "params[" + strconv.Itoa(j) + "]", Reason: "not valid UTF-8"}
		}
	}
	return nil
}

// checkID refuses an id (client, site, topic id) that is too long, not valid UTF-8 or holds a
// control character (C0, DEL or C1): ids become Kafka keys, ClickHouse values, metric labels
// and lines of logs and terminals, and one that was not text broke a report downstream.
func checkID(field, s string, lim Limits) *FieldError {
	if len(s) > lim.MaxIDBytes {
		return &FieldError{Field: field, Reason: fmt.Sprintf("longer than %d bytes", lim.MaxIDBytes)}
	}
	for i := 0; i < len(s); i++ {
		if s[i]-0x20 >= 0x7f-0x20 { // not printable ASCII: look closer
			return checkText(field, s, i)
		}
	}
	return nil
}

// checkText is checkID's slow path, from byte i of s.
func checkText(field, s string, i int) *FieldError {
	for ; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c == 0x7f:
			return &FieldError{Field: field, Reason: fmt.Sprintf("holds the control character 0x%02X at byte %d", c, i)}
		case c == 0xc2 && i+1 < len(s) && s[i+1] >= 0x80 && s[i+1] <= 0x9f: // U+0080…U+009F
			return &FieldError{Field: field, Reason: fmt.Sprintf("holds the control character U+%04X at byte %d", s[i+1], i)}
		}
	}
	if !utf8.ValidString(s) {
		return &FieldError{Field: field, Reason: "not valid UTF-8"}
	}
	return nil
}

// PrintableID reports whether s is valid UTF-8 without control characters (C0, DEL, C1): what
// an id or a name must be to be stored, compared and shown as it was sent (the rule Validate
// applies to a report's ids).
func PrintableID(s string) bool { return checkText("", s, 0) == nil }
