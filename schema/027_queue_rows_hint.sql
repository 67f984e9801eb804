-- 027_queue_rows_hint.sql: how many rows of its send queue a datastore's
-- last message carried, so that the next message of the session reads
-- about that many (twice, at least 32) instead of 500. A message of mail
-- carries about ten mails of a first sync: the 500 rows read and decoded
-- per message were 8 % of httpd's CPU in a 1,000-mail first sync
-- (docs/performance.md, "The send queue read by the last message's
-- count"). The first message of a session, and a datastore whose last
-- message carried nothing, read 500 as before.

ALTER TABLE memds.session_stores
    ADD COLUMN last_rows integer NOT NULL DEFAULT 0;
COMMENT ON COLUMN memds.session_stores.last_rows IS
  'Rows of the send queue (memds.session_queue) the last message that sent '
  'any of this datastore''s items covered (its sent_upto moved by them); a '
  'hint for how many the next message reads first. 0: none yet.';
