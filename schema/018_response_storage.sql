-- 018_response_storage.sql: a session keeps its last response (up to the
-- device's MaxMsgSize, ~150 KB for a first mail sync) to replay it byte for
-- byte on a retransmission, and rewrites it with every HTTP message. Stored
-- with PostgreSQL's default (pglz compression, then TOAST) the UPDATE spent
-- ~12 ms of CPU per message compressing it (docs/performance.md, Mail);
-- stored out of line without compression it costs ~1 ms. The bytes kept are
-- the same; only new values are stored this way (each message rewrites it).

ALTER TABLE memds.sessions ALTER COLUMN response SET STORAGE EXTERNAL;
