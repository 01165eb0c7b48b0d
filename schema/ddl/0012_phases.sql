-- 0012: phased deployments. A deployment may list phases (JSON, as imported, with defaults
-- filled in); the site that decides it (where it was imported) generates a collection per
-- phase (D~phase-N) and an update list (D~updates) as ordinary reference data, and writes each
-- release of a phase into ref.<site> as a record of kind phases (key phases/D~N), folded here.

ALTER TABLE {db}.ref_deployments ADD COLUMN IF NOT EXISTS phases String DEFAULT '' COMMENT 'the phases, a JSON array as stored in ref.<site>; empty: not phased';

-- Every release written (version = the record's Kafka offset; the greatest wins).
CREATE TABLE IF NOT EXISTS {db}.ref_phase_releases
(
    deployment   String,
    phase        UInt16 COMMENT 'from 1, in the order of the deployment''s phases',
    name         String,
    released_at  DateTime64(3, 'UTC'),
    reason       String COMMENT 'why it was released: the deployment''s start, or the criterion of the phase before',
    imported_at  DateTime64(3, 'UTC'),
    version      UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (deployment, phase);

-- One row per phase of every phased deployment (its latest import): the plan, the generated
-- collection and its members, and the release if there is one.
CREATE VIEW IF NOT EXISTS {db}.v_deployment_phases AS
SELECT d.id AS deployment, d.site AS site, toUInt16(n) AS phase,
       JSONExtractString(raw, 'name') AS name,
       if(JSONHas(raw, 'share'), JSONExtractFloat(raw, 'share'), NULL) AS share,
       JSONExtractString(raw, 'collection') AS collection,
       if(JSONHas(raw, 'success_pct'), JSONExtractFloat(raw, 'success_pct'), 95) AS success_pct,
       JSONExtractString(raw, 'soak') AS soak,
       concat(d.id, '~phase-', toString(n)) AS phase_collection,
       toUInt64(length(c.members)) AS members,
       toUInt8(r.deployment != '') AS released,
       if(r.deployment != '', r.released_at, NULL) AS released_at,
       r.reason AS reason
FROM (SELECT id, argMax(site, version) AS site, argMax(phases, version) AS phases
      FROM {db}.ref_deployments GROUP BY id) AS d
ARRAY JOIN JSONExtractArrayRaw(d.phases) AS raw, arrayEnumerate(JSONExtractArrayRaw(d.phases)) AS n
LEFT JOIN (SELECT id, argMax(members, version) AS members FROM {db}.ref_collections GROUP BY id) AS c
       ON c.id = concat(d.id, '~phase-', toString(n))
LEFT JOIN (SELECT deployment, phase, argMax(released_at, version) AS released_at, argMax(reason, version) AS reason
           FROM {db}.ref_phase_releases GROUP BY deployment, phase) AS r
       ON r.deployment = d.id AND r.phase = toUInt16(n);
