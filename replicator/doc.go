// Package replicator will forward a site's aggregates up the hierarchy (child site → parent
// site's Kafka → parent projector) and reference data down (catalog, update lists,
// collections, deployments created above), and measure replication freshness per link.
//
// Built so far: the topology model only (topology.go). A Topology is read strictly from a
// topology file (LoadTopology; format in schema/README.md, example in examples/topology.yaml)
// and is valid by construction: one root, every parent a site of the file, no cycles, and in
// server mode every site's Kafka brokers and report URL. It answers the hierarchy's questions
// (Root, Parent, Children, Descendants, Ancestors, Depth).
//
// Not built yet: forwarding, reference data down, per-link freshness, and running a topology
// (the walking skeleton hosts one standalone site). What forwarding will build on is in place —
// per-site topics (state.<site>), per-site databases (statepipe_<site>), and deterministic,
// idempotent rows, so a forwarded aggregate replayed after a crash changes nothing at the
// parent. It must not read a child's store directly: everything crosses sites through Kafka.
package replicator
