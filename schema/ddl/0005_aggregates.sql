-- 0005: incremental aggregates (the counts reports read instead of scanning every state, and
-- what the replicator forwards up the hierarchy), each client's latest successful scan, and
-- the Kafka partition of each client.
--
-- The projector keeps the site's live state in memory and, as each batch folds, rewrites the
-- aggregate cells the batch changed with their absolute values. Every cell is kept per Kafka
-- partition of the state topic (a client's reports all land in one partition) with version =
-- the last offset of that partition folded into it, so a replayed or redelivered batch writes
-- the same values again, a projector that took a partition over writes newer versions, and
-- readers sum the partitions' latest rows (the v_agg_* views). scope is '' for the whole
-- site or a collection id: a client counts in the site and in every collection it belongs to.

-- The partition of the client's reports; -1 on rows written before 0005.
ALTER TABLE {db}.clients ADD COLUMN IF NOT EXISTS partition Int32 DEFAULT -1;

-- Each client's latest successful scan (501 state 3 or 6): the greatest serial wins.
CREATE TABLE IF NOT EXISTS {db}.client_scans
(
    client  String,
    serial  UInt64,
    time    DateTime64(3, 'UTC') COMMENT 'client clock: when the scan completed'
)
ENGINE = ReplacingMergeTree(serial)
ORDER BY client;

-- Backfill from the scans folded before 0005 (re-running it re-inserts identical rows).
INSERT INTO {db}.client_scans SELECT client, max(serial), argMax(time, serial) FROM {db}.scan_history GROUP BY client;

-- Clients per live state of every key type: per update × compliance state (500), per update ×
-- enforcement state (402), per deployment × state (300, 301, 302), per update source × scan
-- state (501); topic_type 0 counts the clients the site has heard from. For 500 states,
-- scanned counts those of the clients whose latest successful scan is newer than the update's
-- first synchronisation (what Not-required inference subtracts).
CREATE TABLE IF NOT EXISTS {db}.agg_states
(
    scope       String,
    topic_type  UInt16,
    topic_id    String,
    state       Int16,
    partition   Int32,
    clients     Int64,
    scanned     Int64,
    version     UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (scope, topic_type, topic_id, state, partition);

-- Clients per HRESULT of live enforcement states: per update (402) and per deployment (301);
-- topic_type 0 counts distinct clients with the error on any update or deployment.
CREATE TABLE IF NOT EXISTS {db}.agg_errors
(
    scope       String,
    topic_type  UInt16,
    topic_id    String,
    error       Int32,
    partition   Int32,
    clients     Int64,
    version     UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (scope, topic_type, topic_id, error, partition);

-- Clients per compliance with each update list (folding rule 3): status 1 compliant,
-- 2 non-compliant, 0 unknown. list '' is the whole catalog. Only clients the site has heard
-- from are counted; silent members of a collection are unknown.
CREATE TABLE IF NOT EXISTS {db}.agg_lists
(
    scope       String,
    list        String,
    status      Int8,
    partition   Int32,
    clients     Int64,
    version     UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (scope, list, status, partition);

-- Analyst surfaces: the aggregates summed over partitions.
CREATE VIEW IF NOT EXISTS {db}.v_agg_states AS
SELECT scope, topic_type, topic_id, state, sum(clients) AS clients, sum(scanned) AS scanned
FROM {db}.agg_states FINAL
GROUP BY scope, topic_type, topic_id, state;

CREATE VIEW IF NOT EXISTS {db}.v_agg_errors AS
SELECT scope, topic_type, topic_id, error, sum(clients) AS clients
FROM {db}.agg_errors FINAL
GROUP BY scope, topic_type, topic_id, error;

CREATE VIEW IF NOT EXISTS {db}.v_agg_lists AS
SELECT scope, list, status, multiIf(status = 1, 'Compliant', status = 2, 'Non-compliant', 'Unknown') AS status_name,
       sum(clients) AS clients
FROM {db}.agg_lists FINAL
GROUP BY scope, list, status;
