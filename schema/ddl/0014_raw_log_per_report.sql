-- 0014: the raw log is written one row per report, its messages in array columns, instead of
-- one row per message. A 300-message scan was 300 rows, each sorted on insert and re-sorted by
-- every merge; it is now one row whose arrays are copied as they are: the engine's work for
-- the raw log fell by about 4× (bench/results/store-cost-*). Analysts keep state_messages,
-- now a view with the same columns and the same rows: one per message, deliveries of the same
-- report collapsed (FINAL inside the view; a reader's own FINAL is accepted and changes
-- nothing). The rows written before 0014 stay in state_messages_before_0014 and show through
-- the same view.

-- One row per report a client was acknowledged for. report_hash (the first 16 bytes of
-- SHA-256 over the report's full types and its messages' serials and hashes, in order) keys the row with
-- (client, report_serial): redeliveries of a report collapse, two different reports are both
-- kept. Of the deliveries of one report the first accepted stays (first_delivery, the
-- engine's version, is greatest for the earliest accepted_at): a client's retry after a lost
-- answer does not move its report later. Each message_hashes element is the message's own
-- hash (ddl/0010).
CREATE TABLE IF NOT EXISTS {db}.raw_reports
(
    client         String,
    report_serial  UInt64 COMMENT 'the smallest serial of the report (its full-report marker)',
    report_hash    FixedString(16) COMMENT 'SHA-256 (first 16 bytes) of full_types and message_hashes: with (client, report_serial), the row key',
    accepted_at    DateTime64(3, 'UTC') COMMENT 'when ingest accepted it',
    partition      Int32,
    offset         Int64,
    full_types     Array(UInt16),
    serials        Array(UInt64),
    times          Array(DateTime64(3, 'UTC')) COMMENT 'client clock; shown, never used to order',
    topic_types    Array(UInt16),
    topic_ids      Array(String),
    states         Array(Int16),
    errors         Array(Int32) COMMENT 'HRESULTs as signed 32-bit integers, 0 if none',
    params         Array(Array(String)),
    message_hashes Array(FixedString(16)),
    first_delivery UInt64 COMMENT '18446744073709551615 minus accepted_at in Unix ms: the version, so that the first delivery stays'
)
ENGINE = ReplacingMergeTree(first_delivery)
PARTITION BY toYYYYMM(accepted_at)
ORDER BY (client, report_serial, report_hash);

-- The per-message table keeps what was written before 0014 (a migration interrupted after this
-- statement skips it when it runs again: its target exists).
RENAME TABLE {db}.state_messages TO {db}.state_messages_before_0014;

CREATE VIEW IF NOT EXISTS {db}.state_messages AS
SELECT client, serial, time, topic_type, topic_id, state, error, params,
       toUInt8(has(full_types, topic_type)) AS full, accepted_at, partition, offset, report_serial, full_types,
       message_hash
FROM {db}.raw_reports FINAL
ARRAY JOIN serials AS serial, times AS time, topic_types AS topic_type, topic_ids AS topic_id, states AS state,
           errors AS error, params, message_hashes AS message_hash
UNION ALL
SELECT client, serial, time, topic_type, topic_id, state, error, params, full, accepted_at, partition, offset,
       report_serial, full_types, message_hash
FROM {db}.state_messages_before_0014 FINAL;
