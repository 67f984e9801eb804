-- 020_push_notify.sql: the push job (each httpd node's, in one child) used
-- to look for due notifications five times a second (memds_push_due, about
-- 1 ms of PostgreSQL each), whether or not anything was pending. It now
-- LISTENs on channel memds_push and queries only when notified, when the
-- next pending notification falls due, or (held back by a device's running
-- session) every second. Each statement that adds or reschedules pending
-- notifications notifies the channel (once per transaction, at commit).

CREATE FUNCTION memds.push_pending_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('memds_push', '');
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION memds.push_pending_notify() IS
  'Trigger function: NOTIFY memds_push, which the push job of every node LISTENs on.';

CREATE TRIGGER push_pending_notify
    AFTER INSERT OR UPDATE OF due_at ON memds.push_pending
    FOR EACH STATEMENT EXECUTE FUNCTION memds.push_pending_notify();
COMMENT ON TRIGGER push_pending_notify ON memds.push_pending IS
  'New or rescheduled notifications wake the push job (NOTIFY memds_push).';
