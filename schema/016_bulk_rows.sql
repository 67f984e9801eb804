-- 016_bulk_rows.sql: the per-item rows of a sync are written a message at
-- a time (docs/performance.md): the device's maps, the slow-sync set and
-- the session's queue, one INSERT of many rows each. A foreign key checks
-- every row on its own (a lookup and a row lock of the parent, the same
-- device or session each time): for these three tables that was more than
-- half of the INSERT's cost. Their rows are only ever written by the
-- engine for the device and session it has locked, so the keys go; what
-- they did on delete (ON DELETE CASCADE) is kept by a statement-level
-- trigger on the parent, once per DELETE for all its rows.

ALTER TABLE memds.maps DROP CONSTRAINT maps_device_id_fkey;
ALTER TABLE memds.session_seen DROP CONSTRAINT session_seen_session_pk_fkey;
ALTER TABLE memds.session_queue DROP CONSTRAINT session_queue_session_pk_fkey;

CREATE FUNCTION memds.devices_gone() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    DELETE FROM memds.maps m USING gone g WHERE m.device_id = g.device_id;
    RETURN NULL;
END
$fn$;
COMMENT ON FUNCTION memds.devices_gone() IS
  'The maps of deleted devices go with them (what ON DELETE CASCADE did).';
CREATE TRIGGER devices_gone AFTER DELETE ON memds.devices
  REFERENCING OLD TABLE AS gone FOR EACH STATEMENT
  EXECUTE FUNCTION memds.devices_gone();

CREATE FUNCTION memds.sessions_gone() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    DELETE FROM memds.session_seen s USING gone g
     WHERE s.session_pk = g.session_pk;
    DELETE FROM memds.session_queue q USING gone g
     WHERE q.session_pk = g.session_pk;
    RETURN NULL;
END
$fn$;
COMMENT ON FUNCTION memds.sessions_gone() IS
  'The slow-sync set and the queue of deleted sessions go with them (what '
  'ON DELETE CASCADE did), also when a device''s deletion takes its '
  'sessions.';
CREATE TRIGGER sessions_gone AFTER DELETE ON memds.sessions
  REFERENCING OLD TABLE AS gone FOR EACH STATEMENT
  EXECUTE FUNCTION memds.sessions_gone();

COMMENT ON COLUMN memds.maps.device_id IS
  'The device (no foreign key: devices_gone deletes its maps).';
COMMENT ON COLUMN memds.session_seen.session_pk IS
  'The session (no foreign key: sessions_gone deletes its rows).';
COMMENT ON COLUMN memds.session_queue.session_pk IS
  'The session (no foreign key: sessions_gone deletes its rows).';

-- A message going down reads the next unsent rows of the queue, and the
-- device's statuses find their rows by GUID: both by index, not by a pass
-- over the session's whole queue per message (quadratic in the items).
CREATE INDEX session_queue_unsent ON memds.session_queue (session_pk, store, n)
  WHERE sent_msg_id IS NULL;
CREATE INDEX session_queue_guid ON memds.session_queue (session_pk, guid);
