// Package replicator will forward a site's aggregates up the hierarchy (child site → parent
// site's Kafka → parent projector) and reference data down (catalog, update lists,
// collections, deployments created above), and measure replication freshness per link.
//
// Not built yet: the walking skeleton hosts one standalone site. What it will build on is in
// place — per-site topics (state.<site>), per-site databases (statepipe_<site>), and
// deterministic, idempotent rows, so a forwarded aggregate replayed after a crash changes
// nothing at the parent. It must not read a child's store directly: everything crosses sites
// through Kafka.
package replicator
