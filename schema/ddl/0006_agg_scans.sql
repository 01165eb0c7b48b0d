-- 0006: clients per latest successful scan time, maintained with the other aggregates (0005),
-- so the compliance report's Not-required inference reads the scans of the same generation as
-- the per-update counts it subtracts from (reading client_scans, which is written first, could
-- show a negative Unknown for the moment between the two inserts).
CREATE TABLE IF NOT EXISTS {db}.agg_scans
(
    scope       String,
    last_scan   DateTime64(3, 'UTC') COMMENT 'client clock: the latest successful scan',
    partition   Int32,
    clients     Int64,
    version     UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (scope, last_scan, partition);

CREATE VIEW IF NOT EXISTS {db}.v_agg_scans AS
SELECT scope, last_scan, sum(clients) AS clients
FROM {db}.agg_scans FINAL
GROUP BY scope, last_scan
HAVING clients != 0;
