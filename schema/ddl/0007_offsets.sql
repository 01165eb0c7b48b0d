-- 0007: how far the projector has processed each partition of state.<site> (the greatest
-- offset folded or dead-lettered), written with every batch's base tables. A projector
-- restoring its index reads it to know which offsets its view covers: aggregate cells are
-- written at that version, and a process writes a partition's cells only when the group's
-- committed offset is within it (otherwise another member is ahead).
CREATE TABLE IF NOT EXISTS {db}.offsets
(
    partition  Int32,
    offset     Int64
)
ENGINE = ReplacingMergeTree(offset)
ORDER BY partition;
