package schema

// Media types ingest accepts for POST /v1/reports.
const (
	MediaMsgpack = "application/msgpack"
	MediaJSON    = "application/json"
)

// Error codes in ErrorBody.Error.Code, one per HTTP status family (schema/README.md).
const (
	CodeMalformed        = "malformed"         // 400
	CodeUnauthenticated  = "unauthenticated"   // 401
	CodeForbidden        = "forbidden"         // 403
	CodeNotFound         = "not_found"         // 404
	CodeTimeout          = "timeout"           // 408
	CodeConflict         = "conflict"          // 409
	CodeTooLarge         = "too_large"         // 413
	CodeUnsupportedMedia = "unsupported_media" // 415
	CodePaced            = "paced"             // 429
	CodeUnavailable      = "unavailable"       // 503
	CodeInternal         = "internal"          // 500
)

// ErrorBody is every API error: {"error": {"code", "message", "field"}}.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail says what went wrong and, for input errors, which field.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

// Ack is the 200 answer to an accepted report: Kafka has it (acks=all).
type Ack struct {
	Accepted int `json:"accepted"` // state messages in the report
	// Resync asks the client for a full report of every topic type it tracks (folding rule 5):
	// the site found a gap in its serials older than resync-after, or an administrator asked.
	Resync bool `json:"resync,omitempty"`
	// Folded says the site folded the report before answering (asked with ?wait=true):
	// reports read now show it. False when not asked; Message says why when asked.
	Folded  bool   `json:"folded"`
	Message string `json:"message,omitempty"`
	// ReportInterval is how long, in seconds, the client should batch its state messages
	// before its next report (ConfigMgr's state-message reporting interval): the site's base
	// interval, stretched while its backlog (or a link above it) is over target and relaxed
	// afterwards. 0: the site does not pace (keep your own interval). Urgent reports (a
	// resync answer, a first full scan) are not held back by it.
	ReportInterval int `json:"report_interval_seconds"`
	// Released are the phased deployments whose phase holding this client is released: the
	// client may start enforcing them. A deployment without phases is not listed (it is
	// released to its whole collection at its start).
	Released []string `json:"released"`
}

// ConfigMgrAnswer answers POST /v1/configmgr/reports: an entry per ConfigMgr document of the
// body, in order. Error is the first refused document's (so that a client that reads only
// the usual error body sees it); Accepted and Refused count documents.
type ConfigMgrAnswer struct {
	Accepted  int                 `json:"accepted"`
	Refused   int                 `json:"refused"`
	Documents []ConfigMgrDocument `json:"documents"`
	Error     *ErrorDetail        `json:"error,omitempty"`
	// Folded (with ?wait=true, every document accepted) says whether the site folded every
	// accepted document before answering; Message says why not.
	Folded  bool   `json:"folded,omitempty"`
	Message string `json:"message,omitempty"`
}

// ConfigMgrDocument is the outcome of one ConfigMgr document.
type ConfigMgrDocument struct {
	// Client is the document's ClientID ("" when it could not be read).
	Client string `json:"client,omitempty"`
	// Status is 200 when the document was accepted (or held nothing statepipe models), else
	// the status it was refused with (400, 401, 403, 409, 413, 429, 503).
	Status int `json:"status"`
	// Messages counts its state messages accepted.
	Messages int `json:"messages"`
	// Skipped counts its messages of topic types statepipe does not model, by topic type;
	// SkippedStates those of 301 and 402 in a state later ConfigMgr versions added, by
	// "type/state". Both are accepted and not folded.
	Skipped       map[string]int `json:"skipped,omitempty"`
	SkippedStates map[string]int `json:"skipped_states,omitempty"`
	// Error says why it was refused; its field names the element and attribute
	// ("ReportBody/StateMessage[3]/State@ID").
	Error *ErrorDetail `json:"error,omitempty"`
}
