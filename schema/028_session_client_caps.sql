-- 028_session_client_caps.sql: what opening a mail datastore needs of the
-- device's DevInf (its preferred type, field-level email replaces, a
-- Funambol client, whether it takes message/rfc822), kept with the
-- session's datastore once read. Before, every HTTP message of a session
-- parsed the device's stored DevInf again (libxml2 and the DevInf model:
-- 3 % of httpd's CPU in a 1,000-mail first sync, docs/performance.md).
-- A message that brings a DevInf reads it again.

ALTER TABLE memds.session_stores ADD COLUMN client_caps text;
COMMENT ON COLUMN memds.session_stores.client_caps IS
  'What the engine read of the device''s DevInf for this datastore, in its '
  'compact form "f=0|1;b=0|1;r=0|1[;t=TYPE]" (field-level email replaces, a '
  'Funambol client, takes message/rfc822, the preferred content type '
  '%-escaped). NULL: not read yet in this session.';
