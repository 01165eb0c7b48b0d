package ingest

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/statepipe/statepipe/schema"
)

// The label values ingest's counters start with, at 0, so that alert rules and rate() see
// every series before its first event.
var (
	// requestCodes label statepipe_ingest_requests_total: accepted, or the error code.
	requestCodes = []string{"accepted", schema.CodeMalformed, schema.CodeUnauthenticated, schema.CodeForbidden,
		schema.CodeTimeout, schema.CodeConflict, schema.CodeTooLarge, schema.CodeUnsupportedMedia, schema.CodePaced,
		schema.CodeUnavailable}
	// rejectReasons label statepipe_ingest_rejected_total: the check or limit that refused a
	// report (schema/README.md explains each).
	rejectReasons = []string{"unsigned", "bad_credential", "expired_credential", "revoked", "bad_signature",
		"wrong_client", "wrong_site", "clock_skew", "serial_range", "unknown_credential", "identity_stale",
		"rate_limited", "invalid", "body_too_large", "too_many_messages", "overloaded", "body_memory",
		"slow_body", "serial_conflict", "document_too_large"}
	// enrollOutcomes label statepipe_ingest_enrollments_total: what an enrolment, rotation or
	// revocation request did, or why it was refused.
	enrollOutcomes = []string{
		"enrolled", "renewed", "rotated", "revoked", // done
		"unauthenticated", "malformed", "wrong_site", "conflict", "needs_grant", "retired_key", // refused
		"bad_credential", "wrong_client", "credential_revoked", "bad_signature", "clock_skew", // rotation refused
		"enroll_rate", "enroll_address_rate", // paced (429)
		"identity_stale", "identity_unavailable", // unavailable (503)
	}
)

// withLabels creates the series of c for each value of its one label.
func withLabels(c *prometheus.CounterVec, values []string) *prometheus.CounterVec {
	for _, v := range values {
		c.WithLabelValues(v)
	}
	return c
}
