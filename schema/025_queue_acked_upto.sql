-- 025_queue_acked_upto.sql: the device's statuses for the items of a
-- message going down are no longer written row by row. Nearly always they
-- answer, in order, the rows the message before carried, each with 200 or
-- 201: memds.session_stores.acked_upto moves over them, one row written per
-- datastore and message instead of one UPDATE per item (at 1,000 items of a
-- fresh device: the UPDATE was 11 ms of PostgreSQL's 75 ms, most of it the
-- planning of a 1,000-element GUID array). A row still gets a status of its
-- own when the status says more than "taken" (an error, 418 already
-- exists, ...), when it is answered past a row not yet answered, or when
-- its message's statuses are few (fewer than 32: one UPDATE then).

ALTER TABLE memds.session_stores
    ADD COLUMN acked_upto integer NOT NULL DEFAULT 0;
COMMENT ON COLUMN memds.session_stores.acked_upto IS
  'Every row of this datastore''s send queue (memds.session_queue) with '
  'n <= acked_upto and no status of its own was taken by the device (status '
  '200 or 201); never above sent_upto. 0: none yet.';

COMMENT ON COLUMN memds.session_queue.status IS
  'Status code the device answered, when it says more than the datastore''s '
  'session_stores.acked_upto does: NULL for a row at or below acked_upto '
  'means taken (200/201), NULL above it means not answered yet.';

CREATE OR REPLACE VIEW memds.active_sessions AS
SELECT d.account, d.devid, s.session_id, s.phase, s.encoding, s.version,
       s.client_msg_id, s.server_msg_id, s.created_at, s.updated_at,
       s.expires_at,
       (SELECT string_agg(ss.store || ':' || ss.alert_code, ',' ORDER BY ss.store)
          FROM memds.session_stores ss WHERE ss.session_pk = s.session_pk) AS stores,
       (SELECT count(*) FROM memds.session_queue q
          LEFT JOIN memds.session_stores ss
            ON ss.session_pk = q.session_pk AND ss.store = q.store
         WHERE q.session_pk = s.session_pk AND q.status IS NULL
           AND q.n > coalesce(ss.acked_upto, 0)) AS pending_items
  FROM memds.sessions s JOIN memds.devices d USING (device_id)
 WHERE NOT s.finished AND s.expires_at > now();
