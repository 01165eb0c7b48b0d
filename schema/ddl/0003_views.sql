-- 0003: the analysts' views over live state and reference data, named after the ConfigMgr views
-- they replace. Read-only surfaces: their names and columns are a contract (schema/README.md).
-- State names are those of schema.TopicType.StateName (array index = state + 1).

-- v_UpdateComplianceStatus: every client the site has heard from × every catalog update that is
-- not expired, with folding rule 3 applied: a live 500 state of 1/2/3 wins; otherwise Not
-- required when the client's latest successful scan is newer than the update's first
-- synchronisation; otherwise 0 (Detection state unknown). last_scan_time is that latest
-- successful scan (NULL if the client never scanned successfully).
CREATE VIEW IF NOT EXISTS {db}.v_update_compliance_status AS
SELECT c.client AS client,
       u.id AS update_id,
       toInt16(multiIf(s.state IN (1, 2, 3), s.state, h.last_scan_time > u.first_synced, 1, 0)) AS state,
       ['Detection state unknown', 'Not required', 'Required', 'Installed'][state + 1] AS state_name,
       h.last_scan_time AS last_scan_time
FROM (SELECT DISTINCT client FROM {db}.clients) AS c
CROSS JOIN (SELECT id, first_synced FROM {db}.v_updates WHERE expired = 0) AS u
LEFT JOIN (SELECT client, topic_id, state FROM {db}.v_live_state WHERE topic_type = 500) AS s
    ON s.client = c.client AND s.topic_id = u.id
LEFT JOIN (SELECT client, CAST(argMax(time, serial) AS Nullable(DateTime64(3, 'UTC'))) AS last_scan_time
           FROM {db}.scan_history GROUP BY client) AS h
    ON h.client = c.client;

-- v_UpdateAssignmentStatus: deployment enforcement (301) of every client a deployment targets
-- (the members of its collection). Targeted clients with no 301 state appear as state 0 with
-- error 0 and a NULL time (folding rule 4); 301 states of clients outside the target
-- collection are not shown, so counts here equal the deployment report's.
CREATE VIEW IF NOT EXISTS {db}.v_deployment_state AS
SELECT t.deployment_id AS deployment_id,
       t.client AS client,
       toInt16(ifNull(s.state, 0)) AS state,
       ['Enforcement state unknown', 'Installing update(s)', 'Waiting for restart',
        'Waiting for another installation', 'Successfully installed', 'Pending system restart',
        'Failed to install update(s)', 'Downloading update(s)', 'Downloaded update(s)',
        'Failed to download update(s)', 'Waiting for maintenance window'][state + 1] AS state_name,
       toInt32(ifNull(s.error, 0)) AS error,
       s.time AS time
FROM (SELECT DISTINCT d.id AS deployment_id, m.client AS client
      FROM {db}.v_deployments AS d
      INNER JOIN {db}.v_collection_members AS m ON m.collection = d.collection) AS t
LEFT JOIN (SELECT topic_id, client, state, error, CAST(time AS Nullable(DateTime64(3, 'UTC'))) AS time
           FROM {db}.v_live_state WHERE topic_type = 301) AS s
    ON s.topic_id = t.deployment_id AND s.client = t.client;

-- v_UpdateScanStatus: the live scan state (501) of each client and update source, with the
-- client-clock time of that state and of the latest successful scan (501 = 3 or 6) of the
-- source (NULL if none). Clients that never reported a scan have no row.
CREATE VIEW IF NOT EXISTS {db}.v_update_scan_status AS
SELECT l.client AS client,
       l.topic_id AS source,
       l.state AS state,
       ['Unknown', 'Waiting for catalog location', 'Running', 'Completed', 'Pending retry',
        'Failed', 'Completed with errors'][l.state + 1] AS state_name,
       l.time AS last_scan_time,
       h.last_successful_scan_time AS last_successful_scan_time
FROM {db}.v_live_state AS l
LEFT JOIN (SELECT client, source, CAST(argMax(time, serial) AS Nullable(DateTime64(3, 'UTC'))) AS last_successful_scan_time
           FROM {db}.scan_history GROUP BY client, source) AS h
    ON h.client = l.client AND h.source = l.topic_id
WHERE l.topic_type = 501;

-- Enforcement errors: every live update (402) or deployment (301) enforcement state that
-- carries an HRESULT, with the code as Windows shows it (0x%08X of the unsigned value).
CREATE VIEW IF NOT EXISTS {db}.v_enforcement_errors AS
SELECT client,
       topic_type,
       topic_id,
       error,
       printf('0x%08X', toUInt32(bitAnd(toInt64(error), 0xFFFFFFFF))) AS hex,
       time
FROM {db}.v_live_state
WHERE topic_type IN (301, 402) AND error != 0;
