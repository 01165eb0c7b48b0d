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
}

// Timeline is a run's samples, in order.
type Timeline []Sample
