package schema

import "strconv"

// Version is the version of the report wire format (Report.V). Ingest rejects any other.
const Version = 1

// TopicType is the kind of state a message reports (ConfigMgr numbering).
type TopicType uint16

// Topic types of DESIGN §3.
const (
	TopicDeploymentCompliance  TopicType = 300
	TopicDeploymentEnforcement TopicType = 301
	TopicDeploymentEvaluation  TopicType = 302
	TopicUpdateEnforcement     TopicType = 402
	TopicUpdateCompliance      TopicType = 500
	TopicScan                  TopicType = 501
	TopicResync                TopicType = 700
	TopicHeartbeat             TopicType = 701
)

// Update compliance (500) states.
const (
	ComplianceUnknown     = 0
	ComplianceNotRequired = 1
	ComplianceRequired    = 2
	ComplianceInstalled   = 3
)

// Scan (501) states that count as a successful scan.
const (
	ScanCompleted           = 3
	ScanCompletedWithErrors = 6
)

// topicInfo describes one topic type: its name, whether it is keyed by a topic id, and the
// display names of its states (index = state).
type topicInfo struct {
	name   string
	keyed  bool
	states []string
}

var topics = map[TopicType]topicInfo{
	TopicDeploymentCompliance: {"deployment compliance", true, []string{
		"Unknown", "Compliant", "Non-compliant", "Conflict detected"}},
	TopicDeploymentEnforcement: {"deployment enforcement", true, []string{
		"Enforcement state unknown", "Installing update(s)", "Waiting for restart",
		"Waiting for another installation", "Successfully installed", "Pending system restart",
		"Failed to install update(s)", "Downloading update(s)", "Downloaded update(s)",
		"Failed to download update(s)", "Waiting for maintenance window"}},
	TopicDeploymentEvaluation: {"deployment evaluation", true, []string{
		"Unknown", "Evaluation activated", "Evaluation succeeded", "Evaluation failed"}},
	TopicUpdateEnforcement: {"update enforcement", true, []string{
		"Enforcement state unknown", "Enforcement started", "Waiting for content",
		"Waiting for another installation", "Waiting for maintenance window",
		"Restart required before installing", "General failure", "Pending installation",
		"Installing", "Pending system restart", "Successfully installed", "Failed to install",
		"Downloading", "Downloaded", "Failed to download"}},
	TopicUpdateCompliance: {"update compliance", true, []string{
		"Detection state unknown", "Not required", "Required", "Installed"}},
	TopicScan: {"update source scan", true, []string{
		"Unknown", "Waiting for catalog location", "Running", "Completed", "Pending retry",
		"Failed", "Completed with errors"}},
	TopicResync:    {"resync", false, []string{"Full report follows"}},
	TopicHeartbeat: {"heartbeat", false, []string{"Alive"}},
}

// topicIndex is topics indexed by type, so that a look-up does not hash: Validate makes three
// per message, and hashing took longer than checking that the message's ids are text.
var topicIndex = func() []*topicInfo {
	var n TopicType
	for t := range topics {
		n = max(n, t)
	}
	ix := make([]*topicInfo, n+1)
	for t, info := range topics {
		ix[t] = &info
	}
	return ix
}()

// info returns the topic type's entry in topics, or an empty one when it is unknown.
func (t TopicType) info() *topicInfo {
	if int(t) < len(topicIndex) && topicIndex[t] != nil {
		return topicIndex[t]
	}
	return &unknownTopic
}

var unknownTopic topicInfo

// Known reports whether t is a topic type of DESIGN §3.
func (t TopicType) Known() bool { return int(t) < len(topicIndex) && topicIndex[t] != nil }

// Keyed reports whether messages of this type carry a topic id and fold into current state.
func (t TopicType) Keyed() bool { return t.info().keyed }

// String returns the topic type's display name, or its number when unknown.
func (t TopicType) String() string {
	if t.Known() {
		return t.info().name
	}
	return "topic type " + strconv.Itoa(int(t))
}

// StateCount returns how many states the topic type has (valid states are 0..n-1).
func (t TopicType) StateCount() int { return len(t.info().states) }

// StateName returns the ConfigMgr display name of a state, or "" when out of range.
func (t TopicType) StateName(state int) string {
	s := t.info().states
	if state < 0 || state >= len(s) {
		return ""
	}
	return s[state]
}

// StateMessage is one state report of one client (DESIGN §3). Serial is per client and
// strictly increasing: it alone orders a key's states; Time (client clock, Unix ms) is shown,
// never used to order.
type StateMessage struct {
	Serial    uint64    `json:"serial"`
	Time      int64     `json:"time"`
	TopicType TopicType `json:"topic_type"`
	TopicID   string    `json:"topic_id"`
	State     int32     `json:"state"`
	Error     int32     `json:"error"`
	Params    []string  `json:"params,omitempty"`
}

// Report is the body of POST /v1/reports: one client's batch of state messages. FullTypes
// lists the topic types for which this report is a full report (it replaces the client's whole
// key set of that type); other types are deltas.
type Report struct {
	V         int            `json:"v"`
	Client    string         `json:"client"`
	Site      string         `json:"site"`
	FullTypes []TopicType    `json:"full_types,omitempty"`
	Messages  []StateMessage `json:"messages"`
	// Via names who relayed the report for its client: the gateway's id, or ViaUnsigned for a
	// relayed report the site accepted unsigned (ConfigMgr documents, POST
	// /v1/configmgr/reports). Only ingest sets it: a client's own report carrying it is
	// refused. Relayed serials are ConfigMgr's, with gaps where ConfigMgr numbered messages
	// statepipe does not model, so the site does not follow them for resync.
	Via string `json:"via,omitempty"`
}

// ViaUnsigned is Report.Via of a relayed report accepted without a gateway's signature.
const ViaUnsigned = "unsigned"

// IsFull reports whether the report is a full report for topic type t.
func (r *Report) IsFull(t TopicType) bool {
	for _, f := range r.FullTypes {
		if f == t {
			return true
		}
	}
	return false
}
