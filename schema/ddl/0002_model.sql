-- 0002: the full state model — full-report markers, clients, scan history, reference data.

-- Full reports (folding rule 2). A full report for a topic type replaces the client's key set
-- of that type: a key is live only if its serial is at least the greatest marker of its
-- (client, topic_type). The marker is the smallest serial of the full report, so every key the
-- report carries (serial >= marker) survives and every older key is removed as of it, in any
-- arrival order. Replays re-insert identical rows.
CREATE TABLE IF NOT EXISTS {db}.full_reports
(
    client       String,
    topic_type   UInt16,
    serial       UInt64 COMMENT 'smallest serial of the full report',
    accepted_at  DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(serial)
ORDER BY (client, topic_type);

-- Every client the site has heard from (any report), with the greatest serial seen.
CREATE TABLE IF NOT EXISTS {db}.clients
(
    client       String,
    last_serial  UInt64,
    last_seen    DateTime64(3, 'UTC') COMMENT 'acceptance time of the report with last_serial'
)
ENGINE = ReplacingMergeTree(last_serial)
ORDER BY client;

-- Successful scans (501 state 3 Completed or 6 Completed with errors), kept as history: the
-- latest one decides Not-required inference (folding rule 3).
CREATE TABLE IF NOT EXISTS {db}.scan_history
(
    client       String,
    serial       UInt64,
    source       String COMMENT 'update source id (501 topic_id)',
    state        Int16,
    time         DateTime64(3, 'UTC') COMMENT 'client clock: when the scan completed'
)
ENGINE = ReplacingMergeTree
ORDER BY (client, serial);

-- Reference data, imported through the compacted Kafka topic ref.<site> (key kind/id). Each
-- table keeps every imported version (version = the record's Kafka offset; a key always lands
-- in one partition, so later imports have greater offsets); the v_* views below show the
-- latest. Replays re-insert identical versions.
CREATE TABLE IF NOT EXISTS {db}.ref_updates
(
    id              String,
    article         String,
    title           String,
    classification  String,
    severity        String,
    product         String,
    bundle          String,
    superseded_by   Array(String),
    expired         UInt8,
    first_synced    DateTime64(3, 'UTC'),
    imported_at     DateTime64(3, 'UTC'),
    version         UInt64
)
ENGINE = ReplacingMergeTree
ORDER BY (id, version);

CREATE TABLE IF NOT EXISTS {db}.ref_update_lists
(
    id           String,
    name         String,
    updates      Array(String),
    imported_at  DateTime64(3, 'UTC'),
    version      UInt64
)
ENGINE = ReplacingMergeTree
ORDER BY (id, version);

CREATE TABLE IF NOT EXISTS {db}.ref_collections
(
    id           String,
    name         String,
    members      Array(String),
    imported_at  DateTime64(3, 'UTC'),
    version      UInt64
)
ENGINE = ReplacingMergeTree
ORDER BY (id, version);

CREATE TABLE IF NOT EXISTS {db}.ref_deployments
(
    id           String,
    name         String,
    updates      Array(String),
    collection   String,
    start        DateTime64(3, 'UTC'),
    deadline     DateTime64(3, 'UTC'),
    mandatory    UInt8,
    site         String COMMENT 'originating site',
    imported_at  DateTime64(3, 'UTC'),
    version      UInt64
)
ENGINE = ReplacingMergeTree
ORDER BY (id, version);

-- Latest version of each catalog entry; expired_at is when it was first imported as expired
-- since it last was not (reports drop expired updates after the cleanup age).
CREATE VIEW IF NOT EXISTS {db}.v_updates AS
SELECT id,
       argMax(article, version) AS article,
       argMax(title, version) AS title,
       argMax(classification, version) AS classification,
       argMax(severity, version) AS severity,
       argMax(product, version) AS product,
       argMax(bundle, version) AS bundle,
       argMax(superseded_by, version) AS superseded_by,
       argMax(expired, version) AS expired,
       argMax(first_synced, version) AS first_synced,
       if(argMax(raw_expired, version) = 1,
          minIf(raw_imported_at, raw_expired = 1 AND version > last_unexpired), NULL) AS expired_at
FROM (SELECT *, expired AS raw_expired, imported_at AS raw_imported_at,
             max(if(expired = 0, version, 0)) OVER (PARTITION BY id) AS last_unexpired
      FROM {db}.ref_updates FINAL)
GROUP BY id;

CREATE VIEW IF NOT EXISTS {db}.v_update_lists AS
SELECT id, argMax(name, version) AS name, argMax(updates, version) AS updates
FROM {db}.ref_update_lists GROUP BY id;

CREATE VIEW IF NOT EXISTS {db}.v_collections AS
SELECT id, argMax(name, version) AS name, argMax(members, version) AS members
FROM {db}.ref_collections GROUP BY id;

CREATE VIEW IF NOT EXISTS {db}.v_collection_members AS
SELECT id AS collection, name, arrayJoin(members) AS client FROM {db}.v_collections;

CREATE VIEW IF NOT EXISTS {db}.v_deployments AS
SELECT id, argMax(name, version) AS name, argMax(updates, version) AS updates,
       argMax(collection, version) AS collection, argMax(start, version) AS start,
       argMax(deadline, version) AS deadline, argMax(mandatory, version) AS mandatory,
       argMax(site, version) AS site
FROM {db}.ref_deployments GROUP BY id;

-- Live current state (rules 1 and 2): the greatest serial per key, minus keys a later full
-- report removed. Every report reads through this view.
CREATE VIEW IF NOT EXISTS {db}.v_live_state AS
SELECT c.topic_type AS topic_type, c.topic_id AS topic_id, c.client AS client, c.serial AS serial,
       c.state AS state, c.error AS error, c.time AS time, c.accepted_at AS accepted_at
FROM {db}.current_state AS c FINAL
LEFT JOIN (SELECT client, topic_type, max(serial) AS marker FROM {db}.full_reports GROUP BY client, topic_type) AS f
    ON c.client = f.client AND c.topic_type = f.topic_type
WHERE c.serial >= f.marker;

-- The analysts' update compliance now reads live state (full reports remove keys).
CREATE OR REPLACE VIEW {db}.v_update_compliance AS
SELECT topic_id AS update_id, client, state,
       multiIf(state = 3, 'Installed', state = 2, 'Required', state = 1, 'Not required', 'Unknown') AS state_name,
       time, serial
FROM {db}.v_live_state
WHERE topic_type = 500;
