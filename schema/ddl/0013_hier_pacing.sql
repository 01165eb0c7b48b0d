-- 0013: each site's heartbeat carries its pacing controller's state (JSON: mode, decision,
-- reason, enroll_rate, report_interval_seconds, pressure, limiting, lag_seconds,
-- target_seconds, at), so that the backlog report at a site above shows the admitted rate and
-- decision of every site below. '' where the origin runs no pacing (or predates it).
ALTER TABLE {db}.hier_origins ADD COLUMN IF NOT EXISTS pacing String DEFAULT '' COMMENT 'the origin''s pacing controller, JSON; empty: none';

CREATE OR REPLACE VIEW {db}.v_hier_origins AS
SELECT origin, argMax(parent, version) AS parent, argMax(sweep, version) AS sweep,
       argMaxIf(watermark, version, watermark > toDateTime64(0, 3, 'UTC')) AS watermark, argMax(sent_at, version) AS sent_at,
       max(received_at) AS received_at, argMax(lag_records, version) AS lag_records,
       argMax(backlog_records, version) AS backlog_records, argMax(cells, version) AS cells,
       argMax(pacing, version) AS pacing
FROM {db}.hier_origins
GROUP BY origin;
