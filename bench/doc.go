// Package bench is the capacity-planning harness and the project's proof of speed and
// exactness.
//
// RunScenario (harness.go) runs a Scenario (scenario.go, bench/scenarios/*.yaml) against a
// site it starts as a child process: the simulator (sim.go) keeps every client as a cheap
// state machine on a simulated clock and drives it through the client SDK over HTTP with real
// serials and signatures; the oracle (oracle.go) derives every report from the clients' truth
// and compares it with the site's at checkpoints and at the end, naming the first differing
// row; the sampler (sampler.go) reads the site's Prometheus metrics and /proc once a second
// into a Timeline; MeasureCeilings (ceilings.go) measures kafka-go produce and consume and the
// engine's bulk insert of the same records; WriteResults (results.go) writes result.json,
// report.md and the plots (plots.go).
//
// IngestLoad (ingestload.go) is the bounded loopback load test of ingest alone, and Smoke
// (smoke.go) the quickest end-to-end number: one full scan per client.
package bench
