-- 011_push.sql: push (Server Alerted Notification, docs/push.md): where a
-- device is told that mail arrived, and the notifications not yet
-- delivered.

CREATE TABLE memds.push_channels (
    device_id      bigint      PRIMARY KEY REFERENCES memds.devices ON DELETE CASCADE,
    channel        text        NOT NULL CHECK (channel IN ('http')),
    address        text        NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE memds.push_channels IS
  'How a device is told to sync (memds-admin push-register): one channel per '
  'device. http: the SAN is POSTed (application/vnd.syncml.ds.notification) '
  'to address, a push receiver of the device''s platform or a relay.';
COMMENT ON COLUMN memds.push_channels.device_id IS 'The device.';
COMMENT ON COLUMN memds.push_channels.channel IS 'http (WAP push over SMS is not there yet).';
COMMENT ON COLUMN memds.push_channels.address IS 'The receiver''s URL.';
COMMENT ON COLUMN memds.push_channels.created_at IS 'When it was registered.';

CREATE TABLE memds.push_pending (
    device_id      bigint      NOT NULL REFERENCES memds.devices ON DELETE CASCADE,
    store          text        NOT NULL,
    sync_type      integer     NOT NULL DEFAULT 206,
    ui_mode        integer     NOT NULL DEFAULT 1,
    first_at       timestamptz NOT NULL DEFAULT now(),
    due_at         timestamptz NOT NULL,
    attempts       integer     NOT NULL DEFAULT 0,
    last_error     text,
    PRIMARY KEY (device_id, store)
);
CREATE INDEX push_pending_due ON memds.push_pending (due_at);
COMMENT ON TABLE memds.push_pending IS
  'Notifications to deliver: one row per device and datastore, so that a '
  'burst of new mail makes one SAN. Kept until delivered (then removed) or '
  'until the device syncs that datastore (a completed sync removes it); '
  'a failed delivery is retried with backoff. A lost notification costs '
  'only delay: the next sync gets every change.';
COMMENT ON COLUMN memds.push_pending.device_id IS 'The device.';
COMMENT ON COLUMN memds.push_pending.store IS 'The server datastore to sync (the SAN''s server URI).';
COMMENT ON COLUMN memds.push_pending.sync_type IS 'Alert code in the SAN (206: two-way by server).';
COMMENT ON COLUMN memds.push_pending.ui_mode IS 'SAN UI mode (1: background); merged rows keep the highest.';
COMMENT ON COLUMN memds.push_pending.first_at IS 'The first event it stands for.';
COMMENT ON COLUMN memds.push_pending.due_at IS 'Not sent before (coalescing window, then backoff).';
COMMENT ON COLUMN memds.push_pending.attempts IS 'Failed deliveries so far.';
COMMENT ON COLUMN memds.push_pending.last_error IS 'Why the last delivery failed.';

-- A completed sync of a datastore clears its pending notification.
CREATE FUNCTION memds.push_synced() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM memds.push_pending
   WHERE device_id = NEW.device_id AND store = NEW.store;
  RETURN NEW;
END $$;
CREATE TRIGGER sync_state_push_synced AFTER INSERT OR UPDATE ON memds.sync_state
  FOR EACH ROW EXECUTE FUNCTION memds.push_synced();
