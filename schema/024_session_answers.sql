-- 024_session_answers.sql: a session's last answer moves to an UNLOGGED
-- table of its own.
--
-- A session keeps its last answer (up to the device's MaxMsgSize, ~150 KB
-- for a first mail sync) only to replay it byte for byte when the device
-- sends the same message again, and rewrites it with every HTTP message.
-- In memds.sessions every byte of it went to the WAL as well: an UPDATE
-- and COMMIT of 150 KB took 1.46-1.50 ms, against 0.62-0.79 ms unlogged
-- (pgbench, this machine; docs/performance.md). Not being in the WAL, the
-- answers are emptied when PostgreSQL recovers from a crash (and are not on
-- a promoted standby): a device that then sends its last message again is
-- told that the session cannot go on (MEMDS00626) and starts a new
-- session from the committed state, as when a device gives up on a lost
-- answer instead of resending it (docs/crash-recovery.md).

CREATE UNLOGGED TABLE memds.session_answers (
    session_pk bigint PRIMARY KEY
               REFERENCES memds.sessions ON DELETE CASCADE,
    response   bytea  NOT NULL
);
ALTER TABLE memds.session_answers ALTER COLUMN response SET STORAGE EXTERNAL;
INSERT INTO memds.session_answers (session_pk, response)
    SELECT session_pk, response FROM memds.sessions;
ALTER TABLE memds.sessions DROP COLUMN response;

COMMENT ON TABLE memds.session_answers IS
  'The last answer of each session (memds.sessions), replayed byte for byte '
  'when the same message arrives again. UNLOGGED: emptied by crash '
  'recovery; a session whose answer is gone cannot answer a resend and '
  'ends (schema/024).';
COMMENT ON COLUMN memds.session_answers.session_pk IS 'The session.';
COMMENT ON COLUMN memds.session_answers.response IS
  'The last answer sent (stored out of line without compression, as '
  'schema/018 did in memds.sessions).';
