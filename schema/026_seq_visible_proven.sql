-- 026_seq_visible_proven.sql: memds.item_seq_visible() no longer reads
-- pg_locks at every call. Under bench/load (200 devices) it was called once
-- per session and took 4.1 ms on average, 22 s of the 60 s load phase:
-- pg_locks copies the lock table of every backend, holding all of the lock
-- manager's partition locks while it does, so every other backend's lock
-- requests waited behind each read.
--
-- Now a value already proven is kept in a sequence (memds.item_seq_proven:
-- sequences are not transactional, so the proof is visible at once and a
-- rollback does not take it back). A value proven once stays true: every
-- change value up to it belonged to a transaction that had ended, and an
-- ended transaction does not come back. A reader reads the sequence's last
-- value under the gate as before, then asks only about the values above the
-- proven one: for each, in order, whether another transaction holds the
-- lock that item_seq_take() takes on a transaction's first value
-- (pg_try_advisory_lock_shared fails). The first such value stops it, so a
-- transaction left open at a low value costs one question, however many
-- values were taken after it.
--
-- Why that is enough: a transaction whose first value is at or below the
-- proven value had ended when it was proven, so all its values have too. A
-- transaction still open with values above the proven one therefore has its
-- first value above it as well, at or below the last value read under the
-- gate, and that first value's lock was taken before the gate was (no
-- writer is between its nextval and its lock while the gate is held).
-- Values taken after the gate is released are above the last value and not
-- asked about. The calling transaction's own values count as visible to it
-- (its own lock does not block its own probe), but never for others: the
-- value stored is below the caller's own first value (memds.item_seq_first,
-- set by item_seq_take() for the transaction, like memds.item_seq_held).
--
-- More than 128 ended values in a row (a long batch since the last proof,
-- or a first call on an existing database), or a proven value above the
-- sequence (memds.item_seq set back by hand): one pg_locks read as before
-- for the answer, which then becomes the proven value. A proven value above
-- the last value read but not above the sequence now is another reader's,
-- proven since: everything up to the last value read has ended.

CREATE SEQUENCE memds.item_seq_proven MINVALUE 0 START 0;
COMMENT ON SEQUENCE memds.item_seq_proven IS
  'A value of memds.item_seq up to which every change is known to be '
  'committed or rolled back (memds.item_seq_visible keeps it; only ever '
  'set to a proven value, so an older value is still true). Safe to reset '
  'to 0.';

CREATE OR REPLACE FUNCTION memds.item_seq_take() RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    v bigint;
BEGIN
    PERFORM pg_advisory_lock_shared(1296367615, 0);
    BEGIN
        v := nextval('memds.item_seq');
        IF current_setting('memds.item_seq_held', true) IS DISTINCT FROM 'on' THEN
            PERFORM pg_advisory_xact_lock(1296367616 + (v >> 31)::integer,
                                          (v & 2147483647)::integer);
            -- local: reverts with the (sub)transaction, as the lock does
            PERFORM set_config('memds.item_seq_held', 'on', true);
            PERFORM set_config('memds.item_seq_first', v::text, true);
        END IF;
    EXCEPTION WHEN OTHERS OR query_canceled THEN
        -- the gate is a session lock: an error must not leave it held
        PERFORM pg_advisory_unlock_shared(1296367615, 0);
        RAISE;
    END;
    PERFORM pg_advisory_unlock_shared(1296367615, 0);
    RETURN v;
END
$fn$;

CREATE OR REPLACE FUNCTION memds.item_seq_visible() RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    last bigint;
    proven bigint;
    answer bigint;
    pending bigint;
    own bigint;
    keep bigint;
    cur bigint;
    v bigint;
    probing boolean := false;
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
    SELECT last_value INTO proven FROM memds.item_seq_proven;
    IF proven > last THEN
        SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END
          INTO cur FROM memds.item_seq;
        IF proven <= cur THEN
            -- another reader proved past our last value since we read it
            RETURN last;
        END IF;
    END IF;
    answer := last;
    -- (WHILE: a FOR loop's variable would be an integer)
    v := proven + 1;
    BEGIN
        WHILE v <= last AND proven <= last LOOP
            IF v - proven > 128 THEN
                v := NULL; -- many ended values in a row: pg_locks for the rest
                EXIT;
            END IF;
            IF NOT pg_try_advisory_lock_shared(1296367616 + (v >> 31)::integer,
                                               (v & 2147483647)::integer) THEN
                answer := v - 1;
                EXIT;
            END IF;
            probing := true;
            PERFORM pg_advisory_unlock_shared(1296367616 + (v >> 31)::integer,
                                              (v & 2147483647)::integer);
            probing := false;
            v := v + 1;
        END LOOP;
    EXCEPTION WHEN OTHERS OR query_canceled THEN
        -- a session lock: an error must not leave the probe held
        IF probing THEN
            PERFORM pg_advisory_unlock_shared(1296367616 + (v >> 31)::integer,
                                              (v & 2147483647)::integer);
        END IF;
        RAISE;
    END;
    IF v IS NULL OR proven > last THEN
        SELECT min(((l.classid::bigint - 1296367616) << 31) | l.objid::bigint)
          INTO pending
          FROM pg_locks l
         WHERE l.locktype = 'advisory' AND l.objsubid = 2 AND l.granted
           AND l.database = (SELECT oid FROM pg_database
                              WHERE datname = current_database())
           AND l.classid::bigint >= 1296367616
           AND l.classid::bigint < 1296367616 + 65536
           AND l.pid IS DISTINCT FROM pg_backend_pid();
        answer := least(last, pending - 1);
    END IF;
    -- What others may take as proven: below this transaction's own values.
    keep := answer;
    IF current_setting('memds.item_seq_held', true) = 'on' THEN
        own := nullif(current_setting('memds.item_seq_first', true), '')::bigint;
        keep := CASE WHEN own IS NULL THEN NULL ELSE least(answer, own - 1) END;
    END IF;
    -- (above the sequence: memds.item_seq was set back; start again)
    IF keep > proven OR proven > last THEN
        PERFORM setval('memds.item_seq_proven', greatest(keep, 0), true);
    END IF;
    RETURN answer;
END
$fn$;
COMMENT ON FUNCTION memds.item_seq_visible() IS
  'Highest change sequence value up to which every change of memds.items is '
  'committed (or rolled back) or made by the calling transaction: the '
  'snapshot a sync session may remember as seen. Asks only about the values '
  'above memds.item_seq_proven (schema/026).';
