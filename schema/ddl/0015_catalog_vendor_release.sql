-- 0015: the catalog's vendor and release date (optional fields of catalog records), for the
-- compliance report's vendor= and released= and ConfigMgr's "Compliance 4 – Updates by
-- vendor, month, year". Versions imported before keep '' (no vendor) and the epoch (unknown).
ALTER TABLE {db}.ref_updates ADD COLUMN IF NOT EXISTS vendor String DEFAULT '' COMMENT 'who publishes the update; empty: not given' AFTER first_synced;
ALTER TABLE {db}.ref_updates ADD COLUMN IF NOT EXISTS released DateTime64(3, 'UTC') DEFAULT 0 COMMENT 'when the vendor released the update; the epoch (0): unknown' AFTER vendor;

-- v_updates as 0002 made it, with vendor and released (NULL when unknown) at the end.
CREATE OR REPLACE VIEW {db}.v_updates AS
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
          minIf(raw_imported_at, raw_expired = 1 AND version > last_unexpired), NULL) AS expired_at,
       argMax(vendor, version) AS vendor,
       nullIf(argMax(released, version), toDateTime64(0, 3, 'UTC')) AS released
FROM (SELECT *, expired AS raw_expired, imported_at AS raw_imported_at,
             max(if(expired = 0, version, 0)) OVER (PARTITION BY id) AS last_unexpired
      FROM {db}.ref_updates FINAL)
GROUP BY id;
