package schema

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"time"
	"unicode/utf8"
)

// RefKind is a kind of reference data. Reference data is imported as JSON lines (one object a
// line), produced to the site's compacted topic ref.<site> keyed "<kind>/<id>", and folded
// into the ref_* tables; reports read the latest version of each id.
type RefKind string

// The kinds of reference data and the file format of each (schema/README.md).
const (
	RefCatalog     RefKind = "catalog"     // Update
	RefUpdateLists RefKind = "lists"       // UpdateList
	RefCollections RefKind = "collections" // Collection
	RefDeployments RefKind = "deployments" // Deployment
	// RefPhases are the releases of deployment phases (PhaseRelease, key "phases/<deployment>~<n>"):
	// written only by the site that decides a phased deployment, never imported.
	RefPhases RefKind = "phases"
)

// RefKinds lists every kind that is imported (POST /v1/ref/{kind}).
var RefKinds = []RefKind{RefCatalog, RefUpdateLists, RefCollections, RefDeployments}

// FoldedRefKinds lists every kind the projector folds: the imported ones and the phase
// releases a site writes itself. A record of any other kind (a newer version's) is skipped.
var FoldedRefKinds = []RefKind{RefCatalog, RefUpdateLists, RefCollections, RefDeployments, RefPhases}

// Folded reports whether k is a kind the projector folds (FoldedRefKinds).
func (k RefKind) Folded() bool {
	for _, x := range FoldedRefKinds {
		if k == x {
			return true
		}
	}
	return false
}

// Valid reports whether k is a kind that is imported (RefKinds): the phase releases are not.
func (k RefKind) Valid() bool {
	for _, x := range RefKinds {
		if k == x {
			return true
		}
	}
	return false
}

// Update is one catalog entry.
type Update struct {
	ID             string    `json:"id"`
	Article        string    `json:"article"`
	Title          string    `json:"title"`
	Classification string    `json:"classification"`
	Severity       string    `json:"severity"`
	Product        string    `json:"product"`
	Bundle         string    `json:"bundle"`
	SupersededBy   []string  `json:"superseded_by"`
	Expired        bool      `json:"expired"`
	FirstSynced    time.Time `json:"first_synced"`
	// Vendor (optional) is who publishes the update, e.g. "Microsoft": the compliance report
	// filters and groups by it exactly as written.
	Vendor string `json:"vendor,omitempty"`
	// Released (optional) is when the vendor released the update, not when it was synchronised
	// (FirstSynced); zero: unknown. Both optional fields are left out of the canonical JSON
	// when unset, so a catalog without them encodes as before.
	Released ReleaseTime `json:"released,omitzero"`
}

// ReleaseTime is when a vendor released an update: JSON an RFC 3339 time
// (2026-11-10T18:00:00Z) or an RFC 3339 full date (2026-11-10, midnight UTC); null, absent or
// the zero value is unknown. It encodes as an RFC 3339 time.
type ReleaseTime struct {
	time.Time
	given bool // read from a JSON time or date (even one that is the zero time)
}

// The range of a known release time: after the Unix epoch, which the store holds for unknown
// (ref_updates.released), and before ClickHouse's DateTime64 ends.
var (
	minReleased = time.Unix(0, 0).UTC()
	maxReleased = time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)
)

// UnmarshalJSON reads an RFC 3339 time or full date; other values are a
// *json.UnmarshalTypeError, which encoding/json completes with the field's name.
func (r *ReleaseTime) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*r = ReleaseTime{}
		return nil
	}
	bad := &json.UnmarshalTypeError{Value: clipJSON(b), Type: reflect.TypeFor[ReleaseTime]()}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return bad
	}
	for _, layout := range []string{time.RFC3339Nano, time.DateOnly} {
		if t, err := time.Parse(layout, s); err == nil {
			*r = ReleaseTime{Time: t, given: true}
			return nil
		}
	}
	return bad
}

// UnixMilli is the release time in milliseconds since the epoch as the store holds it: 0 when
// unknown.
func (r ReleaseTime) UnixMilli() int64 {
	if r.IsZero() {
		return 0
	}
	return r.Time.UnixMilli()
}

func clipJSON(b []byte) string {
	if len(b) > 40 {
		return strings.ToValidUTF8(string(b[:40]), "") + "…"
	}
	return string(b)
}

// UpdateList is a named set of updates.
type UpdateList struct {
	ID      string   `json:"id"`
	Name    string   `json:"name"`
	Updates []string `json:"updates"`
}

// Collection is a named set of clients.
type Collection struct {
	ID      string   `json:"id"`
	Name    string   `json:"name"`
	Members []string `json:"members"`
}

// Deployment targets a collection with updates between start and deadline.
type Deployment struct {
	ID         string    `json:"id"`
	Name       string    `json:"name"`
	Updates    []string  `json:"updates"`
	Collection string    `json:"collection"`
	Start      time.Time `json:"start"`
	Deadline   time.Time `json:"deadline"`
	Mandatory  bool      `json:"mandatory"`
	Site       string    `json:"site,omitempty"` // originating site; set by the importing site when empty
	// Phases, when set (at least 2), release the deployment to its collection a phase at a
	// time (phases.go): absent, the deployment is released to the whole collection at start.
	Phases []Phase `json:"phases,omitempty"`
}

// RefRecord is one validated line: its id and its canonical JSON encoding.
type RefRecord struct {
	Line  int
	ID    string
	Value []byte
}

// Key is the record's Kafka key.
func (r RefRecord) Key(k RefKind) string { return string(k) + "/" + r.ID }

// LineError is a rejected line of a reference-data file.
type LineError struct {
	Line   int    `json:"line"`
	Field  string `json:"field,omitempty"`
	Reason string `json:"reason"`
}

func (e LineError) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("line %d: field %s: %s", e.Line, e.Field, e.Reason)
	}
	return fmt.Sprintf("line %d: %s", e.Line, e.Reason)
}

// MaxRefLineBytes bounds one line of a reference-data file (a collection of 100,000 members
// is about 4 MB).
const MaxRefLineBytes = 16 << 20

// ParseRefLines validates every line of a reference-data file of kind k. It returns the valid
// records and every error (by line number); callers import nothing when any line is bad.
// Blank lines are skipped; an id appearing twice is an error.
func ParseRefLines(k RefKind, r io.Reader) ([]RefRecord, []LineError) {
	var recs []RefRecord
	var errs []LineError
	seen := map[string]int{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), MaxRefLineBytes)
	line := 0
	for sc.Scan() {
		line++
		raw := bytes.TrimSpace(sc.Bytes())
		if len(raw) == 0 {
			continue
		}
		id, value, err := parseRef(k, raw)
		if err != nil {
			err.Line = line
			errs = append(errs, *err)
			continue
		}
		if first, dup := seen[id]; dup {
			errs = append(errs, LineError{Line: line, Field: "id", Reason: fmt.Sprintf("%q already appears on line %d", id, first)})
			continue
		}
		seen[id] = line
		recs = append(recs, RefRecord{Line: line, ID: id, Value: value})
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, LineError{Line: line + 1, Reason: "cannot read: " + err.Error()})
	}
	return recs, errs
}

// DecodeRef decodes a canonical value of kind k (as stored in Kafka) into its struct.
func DecodeRef(k RefKind, value []byte) (any, error) {
	var v any
	switch k {
	case RefCatalog:
		v = new(Update)
	case RefUpdateLists:
		v = new(UpdateList)
	case RefCollections:
		v = new(Collection)
	case RefDeployments:
		v = new(Deployment)
	case RefPhases:
		v = new(PhaseRelease)
	default:
		return nil, fmt.Errorf("unknown reference kind %q", k)
	}
	if err := json.Unmarshal(value, v); err != nil {
		return nil, err
	}
	return v, nil
}

func parseRef(k RefKind, raw []byte) (string, []byte, *LineError) {
	if !utf8.Valid(raw) {
		// encoding/json would replace the bytes with U+FFFD and import another id than sent.
		return "", nil, &LineError{Reason: "not valid UTF-8"}
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.DisallowUnknownFields()
	var v any
	var id string
	var check func() *LineError
	switch k {
	case RefCatalog:
		u := new(Update)
		v, check = u, func() *LineError {
			id = u.ID
			switch {
			case u.FirstSynced.IsZero():
				return &LineError{Field: "first_synced", Reason: "required (RFC 3339)"}
			case u.Title == "":
				return &LineError{Field: "title", Reason: "required"}
			}
			if le := texts("article", u.Article, "title", u.Title, "classification", u.Classification,
				"severity", u.Severity, "product", u.Product, "bundle", u.Bundle, "vendor", u.Vendor); le != nil {
				return le
			}
			switch {
			case len(u.Vendor) > DefaultLimits.MaxIDBytes:
				// The compliance report's vendor= takes at most as many bytes.
				return &LineError{Field: "vendor", Reason: fmt.Sprintf("longer than %d bytes", DefaultLimits.MaxIDBytes)}
			case u.Vendor != strings.TrimSpace(u.Vendor):
				return &LineError{Field: "vendor", Reason: "must not begin or end with white space (reports match it exactly)"}
			case (u.Released.given || !u.Released.IsZero()) && (u.Released.UnixMilli() <= minReleased.UnixMilli() || !u.Released.Before(maxReleased)):
				// UnixMilli: a time within the epoch's first millisecond would be stored as unknown.
				return &LineError{Field: "released", Reason: fmt.Sprintf("%s is out of range: after 1970-01-01T00:00:00Z and before 2300-01-01 (absent: unknown)",
					u.Released.Format(time.RFC3339Nano))}
			}
			return ids("superseded_by", u.SupersededBy)
		}
	case RefUpdateLists:
		l := new(UpdateList)
		v, check = l, func() *LineError {
			id = l.ID
			if le := notReserved(id); le != nil {
				return le
			}
			if len(l.Updates) == 0 {
				return &LineError{Field: "updates", Reason: "at least one update id is required"}
			}
			if le := texts("name", l.Name); le != nil {
				return le
			}
			return distinctIDs("updates", l.Updates)
		}
	case RefCollections:
		c := new(Collection)
		v, check = c, func() *LineError {
			id = c.ID
			if le := notReserved(id); le != nil {
				return le
			}
			if le := texts("name", c.Name); le != nil {
				return le
			}
			return ids("members", c.Members)
		}
	case RefDeployments:
		dp := new(Deployment)
		// checkPhases canonicalises the phases (defaults filled in) before the value is encoded.
		v, check = dp, func() *LineError {
			id = dp.ID
			switch {
			case len(dp.Updates) == 0:
				return &LineError{Field: "updates", Reason: "at least one update id is required"}
			case dp.Collection == "":
				return &LineError{Field: "collection", Reason: "required"}
			case dp.Start.IsZero():
				return &LineError{Field: "start", Reason: "required (RFC 3339)"}
			case dp.Deadline.IsZero():
				return &LineError{Field: "deadline", Reason: "required (RFC 3339)"}
			case dp.Deadline.Before(dp.Start):
				return &LineError{Field: "deadline", Reason: "is before start"}
			}
			if le := texts("name", dp.Name, "collection", dp.Collection, "site", dp.Site); le != nil {
				return le
			}
			if le := distinctIDs("updates", dp.Updates); le != nil {
				return le
			}
			return checkPhases(dp)
		}
	default:
		return "", nil, &LineError{Reason: fmt.Sprintf("unknown reference kind %q", k)}
	}
	if err := d.Decode(v); err != nil {
		return "", nil, jsonLineError(err)
	}
	if d.More() {
		return "", nil, &LineError{Reason: "more than one JSON value on the line"}
	}
	if le := check(); le != nil {
		return "", nil, le
	}
	switch {
	case id == "":
		return "", nil, &LineError{Field: "id", Reason: "required"}
	case len(id) > DefaultLimits.MaxIDBytes:
		return "", nil, &LineError{Field: "id", Reason: fmt.Sprintf("longer than %d bytes", DefaultLimits.MaxIDBytes)}
	case !PrintableID(id):
		return "", nil, &LineError{Field: "id", Reason: "must not hold control characters"}
	}
	value, err := json.Marshal(v)
	if err != nil {
		panic("BUG: cannot encode a decoded reference record: " + err.Error())
	}
	return id, value, nil
}

func ids(field string, list []string) *LineError {
	for i, s := range list {
		if strings.TrimSpace(s) == "" || len(s) > DefaultLimits.MaxIDBytes || !PrintableID(s) {
			return &LineError{Field: fmt.Sprintf("%s[%d]", field, i), Reason: "must be a non-empty id of at most 128 bytes, without control characters"}
		}
	}
	return nil
}

// distinctIDs is ids, refusing an id listed twice: an update counted once per listing would
// be counted twice in a deployment's per-update states.
func distinctIDs(field string, list []string) *LineError {
	if le := ids(field, list); le != nil {
		return le
	}
	first := make(map[string]int, len(list))
	for i, s := range list {
		if j, ok := first[s]; ok {
			return &LineError{Field: fmt.Sprintf("%s[%d]", field, i), Reason: fmt.Sprintf("%s is listed already (%s[%d])", s, field, j)}
		}
		first[s] = i
	}
	return nil
}

// texts refuses control characters (C0 with tab and newline, DEL, C1) in the free-text fields
// of a line, given as field name, value, …: titles and names are shown in report headers and
// tables, where a newline or an escape sequence would forge rows or drive the terminal.
func texts(fieldValues ...string) *LineError {
	for i := 0; i+1 < len(fieldValues); i += 2 {
		if fe := checkText(fieldValues[i], fieldValues[i+1], 0); fe != nil {
			return &LineError{Field: fe.Field, Reason: fe.Reason}
		}
	}
	return nil
}

func jsonLineError(err error) *LineError {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	var pe *time.ParseError
	switch {
	case errors.As(err, &te) && te.Type == reflect.TypeFor[ReleaseTime]():
		return &LineError{Field: te.Field, Reason: fmt.Sprintf("must be an RFC 3339 time (2026-11-10T18:00:00Z) or date (2026-11-10), got JSON %s", te.Value)}
	case errors.As(err, &te):
		return &LineError{Field: te.Field, Reason: fmt.Sprintf("must be %s, got JSON %s", te.Type, te.Value)}
	case errors.As(err, &se):
		return &LineError{Reason: fmt.Sprintf("invalid JSON at byte %d: %v", se.Offset, err)}
	case errors.As(err, &pe):
		return &LineError{Reason: "time must be RFC 3339 (2026-11-10T18:00:00Z): " + err.Error()}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return &LineError{Field: strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`), Reason: "unknown field"}
	}
	return &LineError{Reason: err.Error()}
}
