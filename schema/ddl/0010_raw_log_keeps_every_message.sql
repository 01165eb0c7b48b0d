-- 0010: the raw log keeps every distinct message a client was acknowledged for. Until now it
-- was keyed (client, serial) alone, so a client that sent two different messages under one
-- serial (a serial reused for another update: refused since, but not every reuse can be seen
-- at the moment it arrives) had the first silently replaced when parts merged, and a rebuild
-- lost it. message_hash (written by the projector: the first 16 bytes of SHA-256 of topic type,
-- topic id, state, error, time and params) joins the key: deliveries of the same message still
-- collapse into one row, different messages under one serial are both kept, and no client can
-- craft two that collapse. Rows from before 0010 hold zero bytes.
ALTER TABLE {db}.state_messages ADD COLUMN IF NOT EXISTS message_hash FixedString(16) COMMENT 'SHA-256 (first 16 bytes) of the message content: with (client, serial), the row key', MODIFY ORDER BY (client, serial, message_hash);
