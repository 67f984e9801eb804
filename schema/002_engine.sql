-- 002_engine: state of the OMA DS protocol engine: devices, authentication
-- state, sessions (with the last response kept for replay), per-datastore
-- anchors, LUID<->GUID maps, and the "items" datastore that keeps opaque
-- items of any content type.
-- Every table and column carries a comment for DBAs (\d+ shows them).

CREATE TABLE memds.device_auth (
    account        text        NOT NULL,
    devid          text        NOT NULL,
    nonce          text        NOT NULL DEFAULT '',
    failures       integer     NOT NULL DEFAULT 0,
    window_start   timestamptz NOT NULL DEFAULT now(),
    blocked_until  timestamptz,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account, devid)
);
COMMENT ON TABLE memds.device_auth IS
  'Authentication state per claimed account and device id, kept even for '
  'devices that never authenticated: the md5 nonce and the failure counter '
  'used to slow down password guessing.';
COMMENT ON COLUMN memds.device_auth.account IS 'User name the device claimed (Cred or LocName).';
COMMENT ON COLUMN memds.device_auth.devid IS 'Device id (SyncHdr Source LocURI).';
COMMENT ON COLUMN memds.device_auth.nonce IS
  'Base64 NextNonce last issued to this device for syncml:auth-md5 (the '
  'device hashes with it next time); empty until one was issued.';
COMMENT ON COLUMN memds.device_auth.failures IS 'Failed authentications in the current window.';
COMMENT ON COLUMN memds.device_auth.window_start IS 'Start of the current failure window.';
COMMENT ON COLUMN memds.device_auth.blocked_until IS
  'While in the future, authentication is refused (401) without checking.';
COMMENT ON COLUMN memds.device_auth.updated_at IS 'Last change.';

CREATE TABLE memds.devices (
    device_id      bigserial   PRIMARY KEY,
    account        text        NOT NULL,
    devid          text        NOT NULL,
    devinf         bytea,
    devinf_at      timestamptz,
    max_guid_size  integer,
    large_objs     boolean     NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now(),
    last_seen_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (account, devid)
);
COMMENT ON TABLE memds.devices IS
  'One row per account and device that authenticated at least once. A phone '
  'with two accounts has two rows. Deleting a row deletes its sessions, '
  'anchors and maps (the device then slow-syncs).';
COMMENT ON COLUMN memds.devices.device_id IS 'Internal key.';
COMMENT ON COLUMN memds.devices.account IS 'Account (login name) the device syncs.';
COMMENT ON COLUMN memds.devices.devid IS 'Device id the client sends (SyncHdr Source LocURI, DevInf DevID).';
COMMENT ON COLUMN memds.devices.devinf IS 'The device''s last DevInf, as XML (memds-codec decode shows SyncML).';
COMMENT ON COLUMN memds.devices.devinf_at IS 'When the DevInf was received.';
COMMENT ON COLUMN memds.devices.max_guid_size IS 'Smallest MaxGUIDSize of the device''s datastores; NULL: no limit.';
COMMENT ON COLUMN memds.devices.large_objs IS 'DevInf SupportLargeObjs: the device accepts chunked items.';
COMMENT ON COLUMN memds.devices.created_at IS 'First successful authentication.';
COMMENT ON COLUMN memds.devices.last_seen_at IS 'Last request of any session.';

CREATE TABLE memds.sessions (
    session_pk     bigserial   PRIMARY KEY,
    token          text        NOT NULL UNIQUE,
    device_id      bigint      NOT NULL REFERENCES memds.devices ON DELETE CASCADE,
    session_id     text        NOT NULL,
    version        text        NOT NULL,
    encoding       text        NOT NULL,
    phase          text        NOT NULL,
    client_msg_id  integer     NOT NULL,
    server_msg_id  integer     NOT NULL,
    max_msg_size   integer     NOT NULL,
    max_obj_size   bigint,
    request_sha1   text        NOT NULL,
    response       bytea       NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    finished       boolean     NOT NULL DEFAULT false
);
CREATE INDEX sessions_device ON memds.sessions (device_id, session_id);
CREATE INDEX sessions_expires ON memds.sessions (expires_at);
COMMENT ON TABLE memds.sessions IS
  'One row per SyncML session. No httpd process keeps session state in '
  'memory: every request locks its row, works, and commits the new state '
  'together with the response it sends. Rows past expires_at are removed by '
  'the module''s watchdog job.';
COMMENT ON COLUMN memds.sessions.session_pk IS 'Internal key.';
COMMENT ON COLUMN memds.sessions.token IS
  'Unguessable token carried in the RespURI (?s=...); bound to device_id.';
COMMENT ON COLUMN memds.sessions.device_id IS 'The device (and account) of the session.';
COMMENT ON COLUMN memds.sessions.session_id IS 'SessionID the client chose.';
COMMENT ON COLUMN memds.sessions.version IS 'SyncML version of the session (1.1, 1.2).';
COMMENT ON COLUMN memds.sessions.encoding IS 'xml or wbxml, as the client sends.';
COMMENT ON COLUMN memds.sessions.phase IS
  'init (before the client''s alerts are done), client-sync (receiving the '
  'client''s changes), server-sync (sending the server''s changes), map '
  '(waiting for the client''s statuses and maps), done.';
COMMENT ON COLUMN memds.sessions.client_msg_id IS 'MsgID of the last client message processed.';
COMMENT ON COLUMN memds.sessions.server_msg_id IS 'MsgID of the last server message sent.';
COMMENT ON COLUMN memds.sessions.max_msg_size IS 'Largest message the client accepts (its MaxMsgSize).';
COMMENT ON COLUMN memds.sessions.max_obj_size IS 'Largest item the client accepts (its MaxObjSize); NULL: unknown.';
COMMENT ON COLUMN memds.sessions.request_sha1 IS 'SHA-1 of the last client message, to recognise a retransmission.';
COMMENT ON COLUMN memds.sessions.response IS
  'The last response sent, replayed byte for byte when the same message '
  'arrives again.';
COMMENT ON COLUMN memds.sessions.created_at IS 'Start of the session.';
COMMENT ON COLUMN memds.sessions.updated_at IS 'Last message.';
COMMENT ON COLUMN memds.sessions.expires_at IS 'Idle deadline (MemDSSessionTimeout after the last message).';
COMMENT ON COLUMN memds.sessions.finished IS 'The session completed; kept until it expires for replays.';

CREATE TABLE memds.session_stores (
    session_pk     bigint      NOT NULL REFERENCES memds.sessions ON DELETE CASCADE,
    store          text        NOT NULL,
    client_uri     text        NOT NULL,
    server_uri     text        NOT NULL,
    alert_code     integer     NOT NULL,
    slow           boolean     NOT NULL,
    client_next    text        NOT NULL,
    server_next    text        NOT NULL,
    snapshot_seq   bigint,
    queue_built    boolean     NOT NULL DEFAULT false,
    PRIMARY KEY (session_pk, store)
);
COMMENT ON TABLE memds.session_stores IS
  'The datastores a session synchronises, with the mode agreed in the '
  'alerts and the anchors that become current when the session completes.';
COMMENT ON COLUMN memds.session_stores.session_pk IS 'The session.';
COMMENT ON COLUMN memds.session_stores.store IS 'Server datastore name (normalised Alert Target).';
COMMENT ON COLUMN memds.session_stores.client_uri IS 'The client''s datastore URI (Alert Source).';
COMMENT ON COLUMN memds.session_stores.server_uri IS 'The datastore URI as the client addressed it (Alert Target).';
COMMENT ON COLUMN memds.session_stores.alert_code IS 'Effective sync mode (200-205).';
COMMENT ON COLUMN memds.session_stores.slow IS 'Slow sync (requested, or forced by an anchor mismatch).';
COMMENT ON COLUMN memds.session_stores.client_next IS 'Client Next anchor, stored as last_client_anchor at the end.';
COMMENT ON COLUMN memds.session_stores.server_next IS 'Server Next anchor sent in this session.';
COMMENT ON COLUMN memds.session_stores.snapshot_seq IS
  'Datastore change sequence up to which server changes were queued.';
COMMENT ON COLUMN memds.session_stores.queue_built IS 'The server''s changes have been queued.';

CREATE TABLE memds.session_queue (
    session_pk     bigint      NOT NULL REFERENCES memds.sessions ON DELETE CASCADE,
    store          text        NOT NULL,
    n              integer     NOT NULL,
    op             text        NOT NULL CHECK (op IN ('add', 'replace', 'delete')),
    guid           text        NOT NULL,
    luid           text,
    sent_bytes     bigint      NOT NULL DEFAULT 0,
    sent_msg_id    integer,
    status         integer,
    PRIMARY KEY (session_pk, store, n)
);
COMMENT ON TABLE memds.session_queue IS
  'Server changes to send to the device in this session, in order; a '
  'package larger than the device''s MaxMsgSize is sent over several '
  'messages from here.';
COMMENT ON COLUMN memds.session_queue.session_pk IS 'The session.';
COMMENT ON COLUMN memds.session_queue.store IS 'Server datastore name.';
COMMENT ON COLUMN memds.session_queue.n IS 'Position in the queue.';
COMMENT ON COLUMN memds.session_queue.op IS 'add, replace or delete.';
COMMENT ON COLUMN memds.session_queue.guid IS 'Server id of the item.';
COMMENT ON COLUMN memds.session_queue.luid IS 'Client id of the item (replace, delete).';
COMMENT ON COLUMN memds.session_queue.sent_bytes IS
  'Bytes of the item already sent (large objects go in chunks).';
COMMENT ON COLUMN memds.session_queue.sent_msg_id IS 'Server MsgID of the message that completed the item.';
COMMENT ON COLUMN memds.session_queue.status IS 'Status code the device answered.';

CREATE TABLE memds.session_partial (
    session_pk     bigint      NOT NULL REFERENCES memds.sessions ON DELETE CASCADE,
    store          text        NOT NULL,
    cmd            text        NOT NULL,
    luid           text        NOT NULL,
    content_type   text,
    total_size     bigint      NOT NULL,
    data           bytea       NOT NULL,
    PRIMARY KEY (session_pk, store)
);
COMMENT ON TABLE memds.session_partial IS
  'A large object the device is sending in chunks (MoreData), assembled here '
  'until its last chunk arrives.';
COMMENT ON COLUMN memds.session_partial.session_pk IS 'The session.';
COMMENT ON COLUMN memds.session_partial.store IS 'Server datastore name.';
COMMENT ON COLUMN memds.session_partial.cmd IS 'Add or Replace.';
COMMENT ON COLUMN memds.session_partial.luid IS 'Client id of the item.';
COMMENT ON COLUMN memds.session_partial.content_type IS 'Meta Type of the item.';
COMMENT ON COLUMN memds.session_partial.total_size IS 'Meta Size announced with the first chunk.';
COMMENT ON COLUMN memds.session_partial.data IS 'Bytes received so far.';

CREATE TABLE memds.session_seen (
    session_pk     bigint      NOT NULL REFERENCES memds.sessions ON DELETE CASCADE,
    store          text        NOT NULL,
    guid           text        NOT NULL,
    PRIMARY KEY (session_pk, store, guid)
);
COMMENT ON TABLE memds.session_seen IS
  'During a slow or refresh-from-client sync: the server items the device '
  'turned out to have (matched by LUID or content, or sent by it), which are '
  'therefore not sent back to it.';
COMMENT ON COLUMN memds.session_seen.session_pk IS 'The session.';
COMMENT ON COLUMN memds.session_seen.store IS 'Server datastore name.';
COMMENT ON COLUMN memds.session_seen.guid IS 'Server id of an item the device has.';

CREATE TABLE memds.sync_state (
    device_id      bigint      NOT NULL REFERENCES memds.devices ON DELETE CASCADE,
    store          text        NOT NULL,
    client_uri     text        NOT NULL,
    last_client_anchor text    NOT NULL,
    last_server_anchor text    NOT NULL,
    last_seq       bigint      NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (device_id, store)
);
COMMENT ON TABLE memds.sync_state IS
  'Anchors of the last completed session per device and datastore. A '
  'missing row or a client Last anchor that differs forces a slow sync (508).';
COMMENT ON COLUMN memds.sync_state.device_id IS 'The device.';
COMMENT ON COLUMN memds.sync_state.store IS 'Server datastore name.';
COMMENT ON COLUMN memds.sync_state.client_uri IS 'The client''s datastore URI.';
COMMENT ON COLUMN memds.sync_state.last_client_anchor IS 'Client Next anchor of the last completed session.';
COMMENT ON COLUMN memds.sync_state.last_server_anchor IS 'Server Next anchor of the last completed session.';
COMMENT ON COLUMN memds.sync_state.last_seq IS 'Datastore change sequence the device has seen.';
COMMENT ON COLUMN memds.sync_state.updated_at IS 'Completion of the last session.';

CREATE TABLE memds.maps (
    device_id      bigint      NOT NULL REFERENCES memds.devices ON DELETE CASCADE,
    store          text        NOT NULL,
    guid           text        NOT NULL,
    luid           text        NOT NULL,
    PRIMARY KEY (device_id, store, guid),
    UNIQUE (device_id, store, luid)
);
COMMENT ON TABLE memds.maps IS
  'Which client item (LUID) is which server item (GUID), per device and '
  'datastore; from client Adds (at once) and from the device''s Map commands.';
COMMENT ON COLUMN memds.maps.device_id IS 'The device.';
COMMENT ON COLUMN memds.maps.store IS 'Server datastore name.';
COMMENT ON COLUMN memds.maps.guid IS 'Server id.';
COMMENT ON COLUMN memds.maps.luid IS 'Client id.';

CREATE SEQUENCE memds.item_seq;
COMMENT ON SEQUENCE memds.item_seq IS 'Change sequence of the items datastore.';

-- Which change sequence values are safe to hand to a device as "seen".
-- A transaction may take seq 5, another take 6 and commit first: a session
-- that then read last_value (6) and later asked for changes after 6 would
-- never see 5. So every writer, while holding a short "gate" lock, takes its
-- value and a transaction-level advisory lock that names it (only for its
-- first value: later values of the same transaction are larger). A reader
-- takes the gate exclusively, so no writer sits between nextval and its lock,
-- and answers just below the smallest value still held by an open
-- transaction. Nothing waits for another transaction to finish.
-- Advisory keys: (1296367615, 0) is the gate; (1296367616 + (v >> 31),
-- v & 2147483647) names value v of an open writer.
CREATE FUNCTION memds.item_seq_take() RETURNS bigint
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
COMMENT ON FUNCTION memds.item_seq_take() IS
  'Next value of memds.item_seq for a change to memds.items; marks it as '
  'pending until the transaction ends (see memds.item_seq_visible).';

CREATE FUNCTION memds.item_seq_visible() RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    last bigint;
    pending bigint;
BEGIN
    PERFORM pg_advisory_lock(1296367615, 0);
    BEGIN
        SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END
          INTO last FROM memds.item_seq;
        SELECT min(((l.classid::bigint - 1296367616) << 31) | l.objid::bigint)
          INTO pending
          FROM pg_locks l
         WHERE l.locktype = 'advisory' AND l.objsubid = 2 AND l.granted
           AND l.database = (SELECT oid FROM pg_database
                              WHERE datname = current_database())
           AND l.classid::bigint >= 1296367616
           AND l.classid::bigint < 1296367616 + 65536
           AND l.pid IS DISTINCT FROM pg_backend_pid();
    EXCEPTION WHEN OTHERS OR query_canceled THEN
        PERFORM pg_advisory_unlock(1296367615, 0);
        RAISE;
    END;
    PERFORM pg_advisory_unlock(1296367615, 0);
    RETURN least(last, pending - 1);
END
$fn$;
COMMENT ON FUNCTION memds.item_seq_visible() IS
  'Highest change sequence value up to which every change of memds.items is '
  'committed (or rolled back) or made by the calling transaction: the '
  'snapshot a sync session may remember as seen.';

CREATE TABLE memds.items (
    account        text        NOT NULL,
    store          text        NOT NULL,
    guid           text        NOT NULL,
    content_type   text,
    data           bytea       NOT NULL,
    sha1           text        NOT NULL,
    seq            bigint      NOT NULL DEFAULT memds.item_seq_take(),
    deleted        boolean     NOT NULL DEFAULT false,
    changed_by     bigint,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account, store, guid)
);
CREATE INDEX items_changes ON memds.items (account, store, seq);
CREATE INDEX items_match ON memds.items (account, store, sha1) WHERE NOT deleted;
COMMENT ON TABLE memds.items IS
  'The "items" datastore (MemDSDatastore items): opaque items of any content '
  'type per account and datastore name, for testing the engine end to end '
  'and for simple deployments. Deleted items stay as tombstones so that '
  'devices learn of the deletion.';
COMMENT ON COLUMN memds.items.account IS 'Owning account.';
COMMENT ON COLUMN memds.items.store IS 'Datastore name (what the device alerted).';
COMMENT ON COLUMN memds.items.guid IS 'Server id of the item.';
COMMENT ON COLUMN memds.items.content_type IS 'Meta Type the item came with.';
COMMENT ON COLUMN memds.items.data IS 'The item, byte for byte.';
COMMENT ON COLUMN memds.items.sha1 IS 'SHA-1 of data, for slow-sync matching.';
COMMENT ON COLUMN memds.items.seq IS 'Change sequence number of the last change.';
COMMENT ON COLUMN memds.items.deleted IS 'Tombstone: the item was deleted at seq.';
COMMENT ON COLUMN memds.items.changed_by IS 'Device whose sync made the last change (not echoed back to it); NULL: another source.';
COMMENT ON COLUMN memds.items.created_at IS 'Creation.';
COMMENT ON COLUMN memds.items.updated_at IS 'Last change.';

CREATE VIEW memds.active_sessions AS
SELECT d.account, d.devid, s.session_id, s.phase, s.encoding, s.version,
       s.client_msg_id, s.server_msg_id, s.created_at, s.updated_at,
       s.expires_at,
       (SELECT string_agg(ss.store || ':' || ss.alert_code, ',' ORDER BY ss.store)
          FROM memds.session_stores ss WHERE ss.session_pk = s.session_pk) AS stores,
       (SELECT count(*) FROM memds.session_queue q
         WHERE q.session_pk = s.session_pk AND q.status IS NULL) AS pending_items
  FROM memds.sessions s JOIN memds.devices d USING (device_id)
 WHERE NOT s.finished AND s.expires_at > now();
COMMENT ON VIEW memds.active_sessions IS
  'Sessions in progress per device: phase, datastores with their sync mode, '
  'and server changes not yet acknowledged.';
