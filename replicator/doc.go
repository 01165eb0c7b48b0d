// Package replicator makes a site hierarchy: aggregates up, reference data down, through Kafka
// only (no site reads another's store).
//
//   - topology.go: the topology file, read strictly; Root, Parent, Children, Descendants.
//   - up.go: Up, a site's replicator. Every interval it reads how far the site's projector has
//     folded (watermark.go: the end offsets of its topics, and when its consumer group passed
//     them), reads the counted cells (cells.go: v_agg_*), and sends the parent the cells that
//     changed since the last acknowledged send as absolute values, then a heartbeat with the
//     watermark; a sweep of every cell periodically and first after a start. Messages
//     (wire.go) are keyed by origin, versioned (epoch << 32 | sequence, the epoch greater than
//     any the site's replicator used before) and vouched for with the site key.
//   - fold.go: Fold, at a parent, writes what the sites below send into hier_cells and
//     hier_origins (schema/ddl/0011), checking each message's vouch against its origin's key;
//     readers keep the greatest version per cell, so nothing needs ordering or exclusivity
//     there. FoldGroup and ResetFold let a rebuilt parent read its incoming topic again.
//   - forward.go: Forward, at a middle site, passes its descendants' messages on unchanged.
//   - down.go: Down copies the parent's reference data into the site's own reference topic,
//     checked with the parent's key, re-vouched with the site's, with the owning site named.
//
// The watermark holds because Kafka keeps each origin's messages in order within a partition;
// duplicates, replays and reordering across sends change no count (greatest version wins), and
// a cell that dropped to nothing is sent as 0 and disappears above at the next sweep anyway.
package replicator
