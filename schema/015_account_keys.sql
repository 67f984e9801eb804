-- 015_account_keys.sql: several accounts per device (MemDSAccountRealm,
-- README and docs/mail.md). No table changes: every "account" column holds
-- the account key, which is the login at a location without a realm and
-- "realm:login" at one with MemDSAccountRealm, so that the same login on
-- two mail servers keeps two separate states. Only the comments change.

COMMENT ON COLUMN memds.device_auth.account IS
  'Account key the device claimed: the user name of its credentials, as '
  '"realm:login" at a location with MemDSAccountRealm.';
COMMENT ON COLUMN memds.devices.account IS
  'Account key the device syncs: the login, or "realm:login" '
  '(MemDSAccountRealm). One device with two accounts has two rows.';
COMMENT ON COLUMN memds.items.account IS 'Owning account key.';
COMMENT ON COLUMN memds.mail_folders.account IS
  'Owning account key (the IMAP login, or "realm:login").';
COMMENT ON COLUMN memds.mail_messages.account IS 'Owning account key.';
COMMENT ON COLUMN memds.outbox.account IS
  'Sending account key (the SMTP identity is its login).';
COMMENT ON COLUMN memds.account_settings.account IS
  'The account key (login, or "realm:login").';
COMMENT ON COLUMN memds.server_credentials.account IS
  'Account key the device syncs, as in memds.devices.';
COMMENT ON COLUMN memds.push_watch.account IS
  'The account key (the IDLE watcher logs in with its login).';
