package bench

import "time"

// Sample is what the harness measured at one moment of a run (one a second).
type Sample struct {
	At              time.Duration `json:"at"`                // wall clock since the run began
	SimTime         time.Duration `json:"sim_time"`          // simulated time since the scenario's start
	Acked           int64         `json:"acked"`             // messages acknowledged by ingest so far
	Reports         int64         `json:"reports"`           // reports acknowledged so far
	Folded          int64         `json:"folded"`            // messages the projector folded and committed so far
	FoldedRecords   int64         `json:"folded_records"`    // records (reports) the projector folded and committed so far
	InFlight        int64         `json:"in_flight"`         // reports the harness had handed to its senders and not had answered
	LagRecords      int64         `json:"lag_records"`       // the projector group's lag (records), summed over partitions
	P50             float64       `json:"p50_seconds"`       // visible delay of the records committed since the last sample
	P90             float64       `json:"p90_seconds"`       // (ingest acceptance → committed in the store); NaN when none
	P99             float64       `json:"p99_seconds"`       //
	SiteRSS         int64         `json:"site_rss_bytes"`    // resident memory of the site process
	HarnessRSS      int64         `json:"harness_rss_bytes"` // resident memory of the harness
	BrokerRSS       int64         `json:"broker_rss_bytes,omitempty"`
	CompliantPct    float64       `json:"compliant_pct"`  // of the checked list, site scope; NaN when not read
	Rate            float64       `json:"rate,omitempty"` // the swept report rate in force (0 outside a sweep's steps)
	CheckpointPause bool          `json:"checkpoint,omitempty"`
	// Enrolment and the site's pacing (rollout.go). Enrolled and Refused are the harness's
	// counts (clients enrolled; 429s its clients were answered to POST /v1/enroll), their
	// rates per second since the sample before; SiteEnrolled and SiteRefused the site's
	// statepipe_ingest_enrollments_total{outcome="enrolled"} and {outcome="enroll_rate"}.
	Enrolled     int64   `json:"enrolled,omitempty"`
	EnrolPerS    float64 `json:"enrol_per_second,omitempty"`
	Refused      int64   `json:"enrol_refused,omitempty"`
	RefusedPerS  float64 `json:"enrol_refused_per_second,omitempty"`
	SiteEnrolled int64   `json:"site_enrolled,omitempty"`
	SiteRefused  int64   `json:"site_enrol_refused,omitempty"`
	// The pacing controller's gauges (statepipe_pacing_*); nil when the site has none.
	PacingRate   *float64 `json:"pacing_enroll_rate,omitempty"`
	PacingLag    *float64 `json:"pacing_lag_seconds,omitempty"`
	PacingTarget *float64 `json:"pacing_target_seconds,omitempty"`
	PacingPaused bool     `json:"pacing_paused,omitempty"`
	// BacklogSecs is the worst of PacingLag and P99 (backlogSeconds); NaN when neither.
	BacklogSecs float64 `json:"backlog_seconds"`
}

// Timeline is a run's samples, in order.
type Timeline []Sample
