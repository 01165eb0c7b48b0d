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
// A scenario with an enrol wave (rollout.go) enrols its clients during the run instead of
// before it — each at a random moment within the wave, honouring the site's 429s — and
// measures the wave's completion against a capacity bound from the same run, its backlog
// against the target, with the site's closed-loop pacing on or off (Scenario.Pacing,
// HarnessConfig.Pacing and SiteArgs); CompareRollouts (rollout_plots.go) draws two such runs
// side by side.
//
// With Primaries as well, the wave is spread over the primaries, each client enrolling at
// its own, and the run samples each site's pacing rate and lag and the central site's
// freshness of each primary (hierarchy_wave.go).
//
// A scenario's phased deployment (Deployment.Phases, phased.go) is released by the site a
// phase at a time: its simulated clients start enforcing it only once an answer to their
// reports lists it as released to them (client.Client.IsReleased), polling until then; the
// oracle places each client in its phase by the site's rule (pacing.PhaseOf) and knows when
// each phase's criterion first held, and the run measures the delay from then to the site's
// release of the next phase, and whether any phase was released too early (PhasedResult;
// plots in phased_plots.go).
//
// IngestLoad (ingestload.go) is the bounded loopback load test of ingest alone, and Smoke
// (smoke.go) the quickest end-to-end number: one full scan per client.
//
// It must not open adapters: the Kafka client and the store the ceilings measure with are
// given to it (HarnessConfig.Ceilings, RawKafka, ScratchStore) by cmd/statepipe, the one
// composition root; it reaches the site only through its HTTP API and metrics.
package bench
