-- 023_device_seen.sql: a request no longer rewrites its device's row.
-- Every request locks the device's row (memds.devices) for its
-- transaction, so that one device's requests run one after the other. It
-- used to do so with an upsert that set last_seen_at on every request: a
-- new row version of memds.devices (with the device's DevInf) and a value
-- of devices_device_id_seq per HTTP message. Now a known device's row is
-- locked with SELECT ... FOR UPDATE, and last_seen_at moves only when it
-- is a minute old (docs/performance.md). Nothing but its comment changes.

COMMENT ON COLUMN memds.devices.last_seen_at IS
  'Last request of any session, to within a minute: a request moves it '
  'when it is older than that (schema/023).';
