-- 014_throttle.sql: throttling, autoblock and quarantine (docs/throttle.md).
--
-- Limits (MemDSLimit) are counted here so that every node shares them: each
-- session leaves one row in memds.session_usage (its start and its bytes,
-- written with the session's own row, no statement of its own), and a new
-- session is checked with one SELECT over it and memds.sessions.
-- A device that fails session after session (MemDSAutoBlock), or that the
-- administrator blocks, is held in memds.device_auth (held_until).
-- A server item that a device keeps refusing, or whose object cannot be
-- built, goes into memds.quarantine and is left out of that device's syncs
-- until the administrator releases it.

CREATE TABLE memds.session_usage (
    session_pk     bigint      PRIMARY KEY,
    device_id      bigint      NOT NULL REFERENCES memds.devices ON DELETE CASCADE,
    account        text        NOT NULL,
    started_at     timestamptz NOT NULL DEFAULT now(),
    bytes          bigint      NOT NULL DEFAULT 0
);
CREATE INDEX session_usage_device ON memds.session_usage (device_id, started_at);
CREATE INDEX session_usage_account ON memds.session_usage (account, started_at);
CREATE INDEX session_usage_started ON memds.session_usage (started_at);
COMMENT ON TABLE memds.session_usage IS
  'One row per session of the last hours, for the limits of MemDSLimit '
  '(sessions per minute, bytes per hour, per device and per account). '
  'Unlike memds.sessions it outlives the session (no foreign key to it); '
  'rows older than two hours are removed with the expired sessions.';
COMMENT ON COLUMN memds.session_usage.session_pk IS 'The session (memds.sessions.session_pk; the row may be gone).';
COMMENT ON COLUMN memds.session_usage.device_id IS 'The device of the session.';
COMMENT ON COLUMN memds.session_usage.account IS 'The account of the session (for the per-account limits).';
COMMENT ON COLUMN memds.session_usage.started_at IS 'Start of the session.';
COMMENT ON COLUMN memds.session_usage.bytes IS
  'SyncML bytes of the session so far: every message received and every '
  'answer sent (uncompressed; retransmissions answered from the stored '
  'answer are not counted again).';

ALTER TABLE memds.device_auth
  ADD COLUMN failed_sessions integer NOT NULL DEFAULT 0,
  ADD COLUMN held_until timestamptz,
  ADD COLUMN held_reason text,
  ADD COLUMN held_at timestamptz;
COMMENT ON COLUMN memds.device_auth.failed_sessions IS
  'Sessions in a row that failed (a wrong password, a protocol error, an '
  'internal error); a completed session sets it back to 0. Reaching '
  'MemDSAutoBlock holds the device.';
COMMENT ON COLUMN memds.device_auth.held_until IS
  'While in the future the device is refused (SyncML 403) whatever its '
  'credentials: set by the autoblock or by memds-admin block; ''infinity'' '
  'until an administrator unblocks it (memds-admin unblock).';
COMMENT ON COLUMN memds.device_auth.held_reason IS 'Why the device is held (shown by memds-admin devices).';
COMMENT ON COLUMN memds.device_auth.held_at IS 'When the device was held.';

CREATE TABLE memds.quarantine (
    device_id      bigint      NOT NULL REFERENCES memds.devices ON DELETE CASCADE,
    store          text        NOT NULL,
    guid           text        NOT NULL,
    state          text        NOT NULL DEFAULT 'counting'
                   CHECK (state IN ('counting', 'held', 'released')),
    reason         text        NOT NULL,
    last_status    integer,
    count          integer     NOT NULL DEFAULT 0,
    first_at       timestamptz NOT NULL DEFAULT now(),
    last_at        timestamptz NOT NULL DEFAULT now(),
    held_at        timestamptz,
    released_at    timestamptz,
    PRIMARY KEY (device_id, store, guid)
);
CREATE INDEX quarantine_held ON memds.quarantine (state) WHERE state = 'held';
COMMENT ON TABLE memds.quarantine IS
  'Server items that do not reach a device: counted while the device '
  'answers them with an error status (state counting), held once that '
  'happened MemDSQuarantine times or at once when the object cannot be '
  'built (state held: left out of this device''s syncs, the rest of the '
  'folder goes on), and sent again after memds-admin quarantine --release '
  '(state released, until the device takes it). A row goes when the device '
  'takes the item.';
COMMENT ON COLUMN memds.quarantine.device_id IS 'The device.';
COMMENT ON COLUMN memds.quarantine.store IS 'The datastore (as the device syncs it: Inbox, email ...).';
COMMENT ON COLUMN memds.quarantine.guid IS 'The server''s id of the item (a mail''s GUID).';
COMMENT ON COLUMN memds.quarantine.state IS
  'counting (failures below the limit; sent as usual), held (left out of '
  'the device''s syncs), released (sent again at its next sync).';
COMMENT ON COLUMN memds.quarantine.reason IS 'The last failure: the device''s status or why the object could not be built.';
COMMENT ON COLUMN memds.quarantine.last_status IS 'The last SyncML status of the item (the device''s, or the server''s for an object that could not be built).';
COMMENT ON COLUMN memds.quarantine.count IS 'Failures since the row was made or released.';
COMMENT ON COLUMN memds.quarantine.first_at IS 'First failure.';
COMMENT ON COLUMN memds.quarantine.last_at IS 'Last failure.';
COMMENT ON COLUMN memds.quarantine.held_at IS 'When the item was put in quarantine.';
COMMENT ON COLUMN memds.quarantine.released_at IS 'When an administrator released it.';
