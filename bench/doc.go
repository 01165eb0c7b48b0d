// Package bench is the capacity-planning harness and the project's proof of speed and
// exactness.
//
// RunScenario (harness.go) runs a Scenario (scenario.go, bench/scenarios/*.yaml) against a
// site it starts as a child process (site.go), as a harness object whose methods are the run's
// phases: enrol, dispatch with the sampler beside it (harness_run.go), checkpoint and
// summarise (harness_check.go). The simulator (sim.go) keeps every client as a cheap
// state machine on a simulated clock and drives it through the client SDK over HTTP with real
// serials and signatures; the oracle (oracle.go) derives every report from the clients' truth
// and compares it with the site's at checkpoints and at the end, naming the first differing
// row; the sampler (sampler.go) reads the site's Prometheus metrics and /proc once a second
// into a Timeline; MeasureCeilings (ceilings.go) measures a bare Kafka client's produce and
// consume and the engine's bulk insert of the same records; WriteResults (results.go) writes
// result.json, report.md and the plots (plots.go); console.go keeps the progress lines apart.
//
// IngestLoad (ingestload.go) is the bounded loopback load test of ingest alone, and Smoke
// (smoke.go) the quickest end-to-end number: one full scan per client.
//
// It must not open adapters: the Kafka client and the store the ceilings measure with are
// given to it (HarnessConfig.Ceilings, RawKafka, ScratchStore) by cmd/statepipe, the one
// composition root; it reaches the site only through its HTTP API and metrics.
package bench
