-- 010_wipe.sql: remote wipe of a device's data (memds-admin wipe; docs/
-- operations in README "Administration").

ALTER TABLE memds.devices ADD COLUMN wipe text
    CHECK (wipe IN ('requested', 'wiped'));
ALTER TABLE memds.devices ADD COLUMN wipe_requested_at timestamptz;
ALTER TABLE memds.devices ADD COLUMN wipe_done_at timestamptz;
COMMENT ON COLUMN memds.devices.wipe IS
  'Remote wipe: NULL none; requested: at its next sessions the device gets a '
  'Delete for every item and folder it has mapped, in each datastore it '
  'syncs, and that datastore''s maps and anchors go; wiped: nothing is left '
  'mapped and the device is refused (403) until an administrator enables it '
  'again (memds-admin enable), which clears this column.';
COMMENT ON COLUMN memds.devices.wipe_requested_at IS 'When the wipe was ordered.';
COMMENT ON COLUMN memds.devices.wipe_done_at IS 'When the last datastore was wiped.';
