-- 0001: the raw message log and the current state per key.
-- {db} is the site's database (statepipe_<site>, e.g. statepipe_p01).

-- Every accepted state message, once per (client, serial) however often it is delivered:
-- ReplacingMergeTree collapses redeliveries on merge, and readers that must be exact use FINAL.
CREATE TABLE IF NOT EXISTS {db}.state_messages
(
    client       String,
    serial       UInt64,
    time         DateTime64(3, 'UTC') COMMENT 'client clock; shown, never used to order',
    topic_type   UInt16,
    topic_id     String,
    state        Int16,
    error        Int32 COMMENT 'HRESULT as signed 32-bit integer, 0 if none',
    params       Array(String),
    full         UInt8 COMMENT '1 when the report was full for this topic type',
    accepted_at  DateTime64(3, 'UTC') COMMENT 'when ingest accepted it (the Kafka record timestamp)',
    partition    Int32,
    offset       Int64
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(accepted_at)
ORDER BY (client, serial);

-- Current state of each key (client, topic_type, topic_id): the row with the greatest serial.
-- Replaying a message re-inserts an identical row, so replays and duplicates change nothing.
CREATE TABLE IF NOT EXISTS {db}.current_state
(
    topic_type   UInt16,
    topic_id     String,
    client       String,
    serial       UInt64,
    state        Int16,
    error        Int32,
    time         DateTime64(3, 'UTC'),
    accepted_at  DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(serial)
ORDER BY (topic_type, topic_id, client);

-- Analyst surface: the current state of every key, exact (deduplicated at read).
CREATE VIEW IF NOT EXISTS {db}.v_current_state AS
SELECT topic_type, topic_id, client, serial, state, error, time, accepted_at
FROM {db}.current_state FINAL;

-- Analyst surface: current update compliance (topic 500) per client and update.
CREATE VIEW IF NOT EXISTS {db}.v_update_compliance AS
SELECT topic_id AS update_id, client, state,
       multiIf(state = 3, 'Installed', state = 2, 'Required', state = 1, 'Not required', 'Unknown') AS state_name,
       time, serial
FROM {db}.current_state FINAL
WHERE topic_type = 500;
