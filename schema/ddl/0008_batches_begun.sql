-- 0008: per partition of state.<site>, the greatest offset of a batch the projector has begun
-- to insert. A batch inserts this row before any of its base tables and its `offsets` row
-- after all of them, so a restore that reads `offsets` first and this table last knows every
-- batch that was in flight while it read the tables one after another: such a partition is
-- torn (its rows may be partly newer than its offsets) and restored again before its cells
-- are written. Without it a restore could not see a batch still being inserted at its end.
CREATE TABLE IF NOT EXISTS {db}.batches_begun
(
    partition  Int32,
    offset     Int64
)
ENGINE = ReplacingMergeTree(offset)
ORDER BY partition;
