-- 0011: the site hierarchy. A site's replicator sends its counted aggregate cells (v_agg_*) up
-- to its parent as absolute values keyed by (origin site, cell), and a middle site passes its
-- descendants' cells on unchanged, so every ancestor holds the latest cells of every site below
-- it, here. {site} is this database's site code.

-- The latest value of each cell of each descendant site. version = (the origin replicator's
-- epoch << 32) | the sequence number of the record that carried the value: it only grows, so
-- the greatest version is the latest value however often and in whatever order records
-- arrive (readers use FINAL). A cell that dropped to nothing arrives as 0.
CREATE TABLE IF NOT EXISTS {db}.hier_cells
(
    origin      String COMMENT 'the site whose projector counted the cell',
    kind        Enum8('states' = 1, 'errors' = 2, 'lists' = 3, 'scans' = 4),
    scope       String COMMENT 'empty for the whole origin site, or a collection id',
    topic_type  UInt16 COMMENT 'states, errors: the topic type (0 with topic_id empty: clients heard from)',
    topic_id    String COMMENT 'states, errors: update, deployment or scan source id; lists: the list id',
    code        Int64 COMMENT 'states: state; errors: HRESULT; lists: status; scans: latest successful scan, Unix ms',
    clients     Int64,
    scanned     Int64 COMMENT 'states of topic 500: how many of the clients scanned after the update first synchronised',
    version     UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (origin, kind, scope, topic_type, topic_id, code);

-- What each descendant site's replicator last said about itself (a heartbeat, sent every
-- interval whether or not a cell changed): the greatest version wins. sweep is the version at
-- which the origin's latest complete sweep began — every cell it holds was sent since, so
-- cells of the origin with a smaller version are gone there. watermark: every report the
-- origin accepted before it is counted in the cells sent.
CREATE TABLE IF NOT EXISTS {db}.hier_origins
(
    origin          String,
    parent          String COMMENT 'the site the origin replicates to',
    version         UInt64,
    sweep           UInt64,
    watermark       DateTime64(3, 'UTC'),
    sent_at         DateTime64(3, 'UTC') COMMENT 'origin clock: when the heartbeat was sent',
    received_at     DateTime64(3, 'UTC') COMMENT 'when the record reached this site''s broker',
    lag_records     Int64 COMMENT 'records accepted at the origin and not yet folded there',
    backlog_records Int64 COMMENT 'records accepted at the origin and not yet counted in the cells sent',
    cells           Int64 COMMENT 'cells the origin holds'
)
ENGINE = ReplacingMergeTree(version)
ORDER BY origin;

-- Analyst surfaces: each descendant's latest heartbeat (its watermark: the latest it sent, a
-- restarted replicator's heartbeats before it knows one do not hide it), and its counted cells.
CREATE VIEW IF NOT EXISTS {db}.v_hier_origins AS
SELECT origin, argMax(parent, version) AS parent, argMax(sweep, version) AS sweep,
       argMaxIf(watermark, version, watermark > toDateTime64(0, 3, 'UTC')) AS watermark, argMax(sent_at, version) AS sent_at,
       max(received_at) AS received_at, argMax(lag_records, version) AS lag_records,
       argMax(backlog_records, version) AS backlog_records, argMax(cells, version) AS cells
FROM {db}.hier_origins
GROUP BY origin;

CREATE VIEW IF NOT EXISTS {db}.v_hier_cells AS
SELECT c.origin AS origin, c.kind AS kind, c.scope AS scope, c.topic_type AS topic_type, c.topic_id AS topic_id,
       c.code AS code, c.clients AS clients, c.scanned AS scanned
FROM {db}.hier_cells AS c FINAL
INNER JOIN (SELECT origin, argMax(sweep, version) AS sweep FROM {db}.hier_origins GROUP BY origin) AS o ON o.origin = c.origin
WHERE c.version >= o.sweep AND (c.clients != 0 OR c.scanned != 0);

-- The aggregates of this site and every site below it, one row per cell and origin_site: what
-- a report over the hierarchy sums (filter origin_site to narrow it to a subtree).
CREATE VIEW IF NOT EXISTS {db}.v_tree_agg_states AS
SELECT '{site}' AS origin_site, scope, topic_type, topic_id, state, clients, scanned FROM {db}.v_agg_states
UNION ALL
SELECT origin, scope, topic_type, topic_id, toInt16(code), clients, scanned FROM {db}.v_hier_cells WHERE kind = 'states';

CREATE VIEW IF NOT EXISTS {db}.v_tree_agg_errors AS
SELECT '{site}' AS origin_site, scope, topic_type, topic_id, error, clients FROM {db}.v_agg_errors
UNION ALL
SELECT origin, scope, topic_type, topic_id, toInt32(code), clients FROM {db}.v_hier_cells WHERE kind = 'errors';

CREATE VIEW IF NOT EXISTS {db}.v_tree_agg_lists AS
SELECT '{site}' AS origin_site, scope, list, status, status_name, clients FROM {db}.v_agg_lists
UNION ALL
SELECT origin, scope, topic_id, toInt8(code), multiIf(code = 1, 'Compliant', code = 2, 'Non-compliant', 'Unknown'), clients
FROM {db}.v_hier_cells WHERE kind = 'lists';

CREATE VIEW IF NOT EXISTS {db}.v_tree_agg_scans AS
SELECT '{site}' AS origin_site, scope, last_scan, clients FROM {db}.v_agg_scans
UNION ALL
SELECT origin, scope, fromUnixTimestamp64Milli(code, 'UTC'), clients FROM {db}.v_hier_cells WHERE kind = 'scans';

-- Each rebuild of this site's hierarchy tables from its incoming topic (statepipe projector
-- rebuild empties hier_cells and hier_origins and adds a row): the fold then reads hier.<site>
-- again from its start under a consumer group of its own (statepipe-hier-<site>-r<rows>).
CREATE TABLE IF NOT EXISTS {db}.hier_rebuilds
(
    at  DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = MergeTree
ORDER BY at;
