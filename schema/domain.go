package schema

import (
	"strconv"
	"strings"
	"time"
)

// The domain rules that more than one part of statepipe applies, in Go and in SQL: the folding
// (projector/fold, projector/index), the rebuild from the raw log, the views (ddl/) and the
// reports. Go code calls these; SQL built in Go renders them (ErrorTopicsSQL, SuccessfulScanSQL);
// the DDL cannot, and TestSQLAgreesWithDomain checks that its literals say the same.

// DefaultExpiredCleanup is how long an expired update stays in update lists and reports
// (--reports.expired-cleanup): long enough for a site to see the machines still missing it
// for a week after it was expired, short enough that the lists stop carrying it.
const DefaultExpiredCleanup = 7 * 24 * time.Hour

// errorTopics are the topic types whose messages carry an HRESULT the errors report counts:
// deployment enforcement (301) and update enforcement (402). Sorted.
var errorTopics = [...]TopicType{TopicDeploymentEnforcement, TopicUpdateEnforcement}

// successfulScanStates are the scan (501) states that count as a successful scan (folding
// rule 3): 3 Completed and 6 Completed with errors. Sorted.
var successfulScanStates = [...]int32{ScanCompleted, ScanCompletedWithErrors}

// CarriesErrors reports whether t's messages carry an HRESULT the errors report counts as an
// enforcement error (301, 402).
func (t TopicType) CarriesErrors() bool {
	for _, e := range errorTopics {
		if t == e {
			return true
		}
	}
	return false
}

// CountsErrors reports whether the HRESULTs of t's messages are counted at all: the
// enforcement errors (CarriesErrors) and the scan (501) errors, a failed scan's code, which
// the errors report counts apart (topic=scan).
func (t TopicType) CountsErrors() bool { return t.CarriesErrors() || t == TopicScan }

// ErrorTopics returns the topic types that carry errors (CarriesErrors), in ascending order.
func ErrorTopics() []TopicType { return errorTopics[:] }

// SuccessfulScan reports whether a scan (501) message in state is a successful scan.
func SuccessfulScan(state int32) bool {
	for _, s := range successfulScanStates {
		if state == s {
			return true
		}
	}
	return false
}

// SuccessfulScanStates returns the scan states SuccessfulScan accepts, in ascending order.
func SuccessfulScanStates() []int32 { return successfulScanStates[:] }

// IsSuccessfulScan reports whether m is a successful scan: topic type 501 in a state
// SuccessfulScan accepts.
func (m *StateMessage) IsSuccessfulScan() bool {
	return m.TopicType == TopicScan && SuccessfulScan(m.State)
}

// LowestSerial returns the smallest serial of the report's messages (0 without messages). It
// identifies the report: a full report's marker is its lowest serial (every key it carries
// has at least this serial, every key of an earlier report a smaller one), and the raw log
// stores it as report_serial.
func (r *Report) LowestSerial() uint64 {
	if len(r.Messages) == 0 {
		return 0
	}
	lowest := r.Messages[0].Serial
	for i := range r.Messages[1:] {
		lowest = min(lowest, r.Messages[i+1].Serial)
	}
	return lowest
}

// ErrorTopicsSQL is the SQL condition on a topic_type column that CarriesErrors says:
// "topic_type IN (301, 402)".
func ErrorTopicsSQL() string { return "topic_type IN " + sqlList(errorTopics[:]) }

// SuccessfulScanSQL is the SQL condition on topic_type and state columns that
// IsSuccessfulScan says: "topic_type = 501 AND state IN (3, 6)".
func SuccessfulScanSQL() string {
	return "topic_type = " + strconv.Itoa(int(TopicScan)) + " AND state IN " + sqlList(successfulScanStates[:])
}

// sqlList renders integers as an SQL list: (1, 2).
func sqlList[T TopicType | int32](vs []T) string {
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = strconv.FormatInt(int64(v), 10)
	}
	return "(" + strings.Join(parts, ", ") + ")"
}
