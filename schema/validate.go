package schema

import (
	"fmt"
	"strconv"
)

// FieldError is a rejection of input that names the field (a JSON path such as
// "messages[3].state") and the reason. Ingest turns it into a 400 with the field set.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return "field " + e.Field + ": " + e.Reason }

// Limits bound what one report may carry. The zero value means DefaultLimits.
type Limits struct {
	MaxMessages   int // messages per report
	MaxParams     int // params per message
	MaxParamBytes int // bytes per param
	MaxIDBytes    int // bytes of client, site and topic ids
}

// DefaultLimits are generous for a real agent (a full scan of a 30,000-update catalog fits)
// and small enough that one report cannot take a broker's record size limit.
var DefaultLimits = Limits{MaxMessages: 50000, MaxParams: 16, MaxParamBytes: 1024, MaxIDBytes: 128}

// Validate checks a decoded report against DESIGN §3: version, ids, known topic types and
// states within each type's range, serials present. The first problem found is returned as a
// *FieldError.
func (r *Report) Validate(lim Limits) error {
	if lim == (Limits{}) {
		lim = DefaultLimits
	}
	switch {
	case r.V != Version:
		return &FieldError{"v", fmt.Sprintf("unsupported version %d (this server speaks %d)", r.V, Version)}
	case r.Client == "":
		return &FieldError{"client", "required"}
	case len(r.Client) > lim.MaxIDBytes:
		return &FieldError{"client", fmt.Sprintf("longer than %d bytes", lim.MaxIDBytes)}
	case r.Site == "":
		return &FieldError{"site", "required"}
	case len(r.Site) > lim.MaxIDBytes:
		return &FieldError{"site", fmt.Sprintf("longer than %d bytes", lim.MaxIDBytes)}
	case len(r.Messages) == 0:
		return &FieldError{"messages", "at least one message is required"}
	}
	for i, t := range r.FullTypes {
		if !t.Known() || !t.Keyed() {
			return &FieldError{"full_types[" + strconv.Itoa(i) + "]", fmt.Sprintf("%d is not a keyed topic type", t)}
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
				return &FieldError{"messages[" + strconv.Itoa(i) + "].serial",
					fmt.Sprintf("%d repeats the serial of messages[%d]: every message has its own serial", r.Messages[i].Serial, j)}
			}
			seen[r.Messages[i].Serial] = i
		}
	}
	return nil
}

func (m *StateMessage) validate(lim Limits) *FieldError {
	switch {
	case m.Serial == 0:
		return &FieldError{"serial", "required and must be > 0"}
	case !m.TopicType.Known():
		return &FieldError{"topic_type", fmt.Sprintf("unknown topic type %d (known: 300, 301, 302, 402, 500, 501, 700, 701)", m.TopicType)}
	case m.State < 0 || int(m.State) >= m.TopicType.StateCount():
		return &FieldError{"state", fmt.Sprintf("%d is out of range for topic type %d (0..%d)", m.State, m.TopicType, m.TopicType.StateCount()-1)}
	case m.TopicType.Keyed() && m.TopicID == "":
		return &FieldError{"topic_id", fmt.Sprintf("required for topic type %d", m.TopicType)}
	case len(m.TopicID) > lim.MaxIDBytes:
		return &FieldError{"topic_id", fmt.Sprintf("longer than %d bytes", lim.MaxIDBytes)}
	case len(m.Params) > lim.MaxParams:
		return &FieldError{"params", fmt.Sprintf("%d params, at most %d allowed", len(m.Params), lim.MaxParams)}
	}
	for j, p := range m.Params {
		if len(p) > lim.MaxParamBytes {
			return &FieldError{"params[" + strconv.Itoa(j) + "]", fmt.Sprintf("longer than %d bytes", lim.MaxParamBytes)}
		}
	}
	return nil
}
