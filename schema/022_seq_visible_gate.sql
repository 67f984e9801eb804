-- 022_seq_visible_gate.sql: memds.item_seq_visible() holds the change
-- sequence's gate only while it reads the sequence, not while it reads
-- pg_locks. Every writer's memds.item_seq_take() takes the gate in shared
-- mode, and a reader's exclusive request queues them all behind it: with
-- 200 devices syncing, 15-18 backends waited on it on average
-- (docs/performance.md, Concurrency), for a pg_locks read that copies the
-- lock table of every backend.
--
-- Why the pg_locks read needs no gate: with the gate held exclusively no
-- writer is between its nextval and its lock, so every value up to the
-- last_value read is either finished or named by a lock its transaction
-- holds until it ends. Such a lock is still there when pg_locks is read
-- later, unless its transaction has ended meanwhile (then its changes are
-- committed or gone, as they may be). A writer that takes a value after
-- the gate is released takes one above last_value, which the answer,
-- least(last, pending - 1), never reaches.

CREATE OR REPLACE FUNCTION memds.item_seq_visible() RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    last bigint;
    pending bigint;
BEGIN
    PERFORM pg_advisory_lock(1296367615, 0);
    BEGIN
        SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END
          INTO last FROM memds.item_seq;
    EXCEPTION WHEN OTHERS OR query_canceled THEN
        PERFORM pg_advisory_unlock(1296367615, 0);
        RAISE;
    END;
    PERFORM pg_advisory_unlock(1296367615, 0);
    SELECT min(((l.classid::bigint - 1296367616) << 31) | l.objid::bigint)
      INTO pending
      FROM pg_locks l
     WHERE l.locktype = 'advisory' AND l.objsubid = 2 AND l.granted
       AND l.database = (SELECT oid FROM pg_database
                          WHERE datname = current_database())
       AND l.classid::bigint >= 1296367616
       AND l.classid::bigint < 1296367616 + 65536
       AND l.pid IS DISTINCT FROM pg_backend_pid();
    RETURN least(last, pending - 1);
END
$fn$;
COMMENT ON FUNCTION memds.item_seq_visible() IS
  'Highest change sequence value up to which every change of memds.items is '
  'committed (or rolled back) or made by the calling transaction: the '
  'snapshot a sync session may remember as seen. Holds the sequence''s gate '
  'only to read its last value (schema/022).';
