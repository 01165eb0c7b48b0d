-- 0004: every raw message records its report's identity, so every projection can be rebuilt
-- from the raw log alone (statepipe projector rebuild): report_serial is the smallest serial
-- of the report (the full-report marker), full_types the report's full topic types. Both are
-- the same in every delivery of a report, so duplicates collapse to identical rows.
ALTER TABLE {db}.state_messages ADD COLUMN IF NOT EXISTS report_serial UInt64 AFTER offset;
ALTER TABLE {db}.state_messages ADD COLUMN IF NOT EXISTS full_types Array(UInt16) AFTER report_serial;
