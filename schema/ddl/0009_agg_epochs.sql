-- 0009: ownership of aggregate cells. Only the projector process the consumer group assigned
-- a partition of state.<site> to writes that partition's cells, and it writes them under an
-- epoch of its own: when a process gains a partition it restores its view from the store,
-- writes every cell of the partition under a new epoch, checks with the group coordinator
-- that it still holds the partition, and then records the epoch here. Readers count, per
-- partition, only the cells of the partition's greatest epoch (v_agg_fences), so whatever a
-- process that lost the partition writes afterwards (a member evicted while it was still
-- busy: a zombie) is never counted, whatever the order in which the writes land.
--
-- epoch = (per-partition counter << 32) | the group generation that claimed it: the counter
-- is one more than the greatest recorded before the claim (so epochs grow even when the
-- group's generations start again), and of two claims that read the same counter the later
-- generation is the greater. Epoch 0 is the cells written before 0009.
ALTER TABLE {db}.agg_states ADD COLUMN IF NOT EXISTS epoch UInt64, MODIFY ORDER BY (scope, topic_type, topic_id, state, partition, epoch);
ALTER TABLE {db}.agg_errors ADD COLUMN IF NOT EXISTS epoch UInt64, MODIFY ORDER BY (scope, topic_type, topic_id, error, partition, epoch);
ALTER TABLE {db}.agg_lists ADD COLUMN IF NOT EXISTS epoch UInt64, MODIFY ORDER BY (scope, list, status, partition, epoch);
ALTER TABLE {db}.agg_scans ADD COLUMN IF NOT EXISTS epoch UInt64, MODIFY ORDER BY (scope, last_scan, partition, epoch);

CREATE TABLE IF NOT EXISTS {db}.agg_fences
(
    partition   Int32,
    epoch       UInt64,
    generation  Int32 COMMENT 'the consumer-group generation that claimed the partition',
    member      String COMMENT 'the group member id of the claiming process',
    at          DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY (partition, epoch);

-- The cells written before 0009 stay counted until a process claims their partition.
INSERT INTO {db}.agg_fences (partition, epoch, member)
SELECT DISTINCT partition, 0, 'before 0009' FROM (
    SELECT partition FROM {db}.agg_states UNION ALL SELECT partition FROM {db}.agg_errors
    UNION ALL SELECT partition FROM {db}.agg_lists UNION ALL SELECT partition FROM {db}.agg_scans);

-- The epoch readers count, per partition.
CREATE VIEW IF NOT EXISTS {db}.v_agg_fences AS
SELECT partition, max(epoch) AS epoch FROM {db}.agg_fences GROUP BY partition;

CREATE OR REPLACE VIEW {db}.v_agg_states AS
SELECT scope, topic_type, topic_id, state, sum(clients) AS clients, sum(scanned) AS scanned
FROM {db}.agg_states FINAL
WHERE (partition, epoch) IN (SELECT partition, epoch FROM {db}.v_agg_fences)
GROUP BY scope, topic_type, topic_id, state;

CREATE OR REPLACE VIEW {db}.v_agg_errors AS
SELECT scope, topic_type, topic_id, error, sum(clients) AS clients
FROM {db}.agg_errors FINAL
WHERE (partition, epoch) IN (SELECT partition, epoch FROM {db}.v_agg_fences)
GROUP BY scope, topic_type, topic_id, error;

CREATE OR REPLACE VIEW {db}.v_agg_lists AS
SELECT scope, list, status, multiIf(status = 1, 'Compliant', status = 2, 'Non-compliant', 'Unknown') AS status_name,
       sum(clients) AS clients
FROM {db}.agg_lists FINAL
WHERE (partition, epoch) IN (SELECT partition, epoch FROM {db}.v_agg_fences)
GROUP BY scope, list, status;

CREATE OR REPLACE VIEW {db}.v_agg_scans AS
SELECT scope, last_scan, sum(clients) AS clients
FROM {db}.agg_scans FINAL
WHERE (partition, epoch) IN (SELECT partition, epoch FROM {db}.v_agg_fences)
GROUP BY scope, last_scan
HAVING clients != 0;
