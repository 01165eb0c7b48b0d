package projector

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Why a record is dead-lettered (the reason label of statepipe_projector_dead_letters_total,
// and the statepipe-dlq-reason header's prefix).
const (
	reasonUndecodable    = "undecodable"     // not a report (or reference data) this projector can decode
	reasonInvalid        = "invalid"         // decoded, but breaks the contract (or keyed by another client)
	reasonUnvouched      = "unvouched"       // no valid vouch of a site key: produced behind ingest's back
	reasonSerialConflict = "serial_conflict" // reuses a serial of its client for another message
)

// Kafka operations whose failures are counted (the op label of
// statepipe_projector_kafka_errors_total).
const (
	opJoin       = "join"        // joining the consumer group
	opFetch      = "fetch"       // fetching records
	opCommit     = "commit"      // committing offsets (the batch is redelivered)
	opAlive      = "alive"       // asking the coordinator whether this member holds its generation
	opLag        = "lag"         // reading the group's lag
	opDeadLetter = "dead_letter" // producing to the dead-letter topic
	opResync     = "resync"      // producing to the resync topic
)

// Resync records published (the reason label of statepipe_projector_resync_requests_total).
const (
	resyncGap      = "gap"      // a request: a gap in the client's serials aged past ResyncAfter
	resyncAnswered = "answered" // an answer: a full report of the client arrived
)

type metrics struct {
	folded      prometheus.Counter
	records     prometheus.Counter
	batches     prometheus.Counter
	deadLetters *prometheus.CounterVec
	storeErrors prometheus.Counter
	insertTime  prometheus.Histogram
	visible     prometheus.Histogram
	offset      *prometheus.GaugeVec
	resyncs     *prometheus.CounterVec
	kafkaErrors *prometheus.CounterVec
	aggRows     prometheus.Counter
	restores    prometheus.Counter
	restoreTime prometheus.Gauge
	idxClients  prometheus.Gauge
	lag         *prometheus.GaugeVec
	owned       prometheus.Gauge
	claims      prometheus.Counter
	generations prometheus.Counter
}

// newMetrics registers the projector's metrics with reg (nil: unregistered, for tests). Every
// labelled counter starts with each of its known label values at 0, so that alert rules and
// rate() see it before its first event.
func newMetrics(reg prometheus.Registerer) metrics {
	f := promauto.With(reg)
	// 15, 20 and 45 s so that a p99 near a 30 s backlog target is read as such, not
	// interpolated across 10–30 s.
	buckets := []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2, 5, 10, 15, 20, 30, 45, 60, 120, 300, 600, 1800}
	m := metrics{
		folded:      f.NewCounter(prometheus.CounterOpts{Name: "statepipe_projector_messages_total", Help: "State messages folded and committed."}),
		records:     f.NewCounter(prometheus.CounterOpts{Name: "statepipe_projector_records_total", Help: "Kafka records (reports) folded and committed."}),
		batches:     f.NewCounter(prometheus.CounterOpts{Name: "statepipe_projector_batches_total", Help: "Batches inserted and committed."}),
		deadLetters: f.NewCounterVec(prometheus.CounterOpts{Name: "statepipe_projector_dead_letters_total", Help: "Records sent to the dead-letter topic, by reason."}, []string{"reason"}),
		storeErrors: f.NewCounter(prometheus.CounterOpts{Name: "statepipe_projector_store_errors_total", Help: "Failed insert and read attempts (retried until the store answers)."}),
		insertTime:  f.NewHistogram(prometheus.HistogramOpts{Name: "statepipe_projector_insert_duration_seconds", Help: "Time to insert one batch (all tables).", Buckets: buckets}),
		visible:     f.NewHistogram(prometheus.HistogramOpts{Name: "statepipe_projector_visible_delay_seconds", Help: "From ingest acceptance to committed in the store, per record.", Buckets: buckets}),
		kafkaErrors: f.NewCounterVec(prometheus.CounterOpts{Name: "statepipe_projector_kafka_errors_total",
			Help: "Failed group joins, fetches, commits, coordinator checks, lag reads and produces to the dead-letter and resync topics (retried; a failed commit means the batch is redelivered)."}, []string{"op"}),
		resyncs: f.NewCounterVec(prometheus.CounterOpts{Name: "statepipe_projector_resync_requests_total",
			Help: "Resync requests published (reason gap) and answered by a full report (reason answered)."}, []string{"reason"}),
		aggRows:     f.NewCounter(prometheus.CounterOpts{Name: "statepipe_projector_aggregate_rows_total", Help: "Aggregate cells written (changed values)."}),
		restores:    f.NewCounter(prometheus.CounterOpts{Name: "statepipe_projector_index_restores_total", Help: "Restores of the in-memory index from the store (start, or records another projector folded)."}),
		restoreTime: f.NewGauge(prometheus.GaugeOpts{Name: "statepipe_projector_index_restore_seconds", Help: "Duration of the last index restore."}),
		idxClients:  f.NewGauge(prometheus.GaugeOpts{Name: "statepipe_projector_index_clients", Help: "Clients in the in-memory index."}),
		lag: f.NewGaugeVec(prometheus.GaugeOpts{Name: "statepipe_projector_lag_records",
			Help: "Records the group has not committed yet, per topic (the state and reference-data topics) and partition, read from the broker (grows while the projector or the store is stuck)."}, []string{"topic", "partition"}),
		owned: f.NewGauge(prometheus.GaugeOpts{Name: "statepipe_projector_partitions_owned",
			Help: "Partitions of the state topic the consumer group assigned to this process (only their owner writes their aggregate cells)."}),
		claims: f.NewCounter(prometheus.CounterOpts{Name: "statepipe_projector_partition_claims_total",
			Help: "Partitions this process took over: restored, every cell rewritten under a new epoch, and fenced."}),
		generations: f.NewCounter(prometheus.CounterOpts{Name: "statepipe_projector_generations_total",
			Help: "Consumer-group generations this process joined (each rebalance is one)."}),
		offset: f.NewGaugeVec(prometheus.GaugeOpts{Name: "statepipe_projector_committed_offset", Help: "Next offset to consume, per topic and partition, after the last commit."}, []string{"topic", "partition"}),
	}
	for _, r := range []string{reasonUndecodable, reasonInvalid, reasonUnvouched, reasonSerialConflict} {
		m.deadLetters.WithLabelValues(r)
	}
	for _, op := range []string{opJoin, opFetch, opCommit, opAlive, opLag, opDeadLetter, opResync} {
		m.kafkaErrors.WithLabelValues(op)
	}
	for _, r := range []string{resyncGap, resyncAnswered} {
		m.resyncs.WithLabelValues(r)
	}
	return m
}
