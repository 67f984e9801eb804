-- 007_bounded_downloads.sql: truncation levels, get-more and DS 1.2 filters
-- (docs/filters.md, docs/mail.md "Truncation").

-- Two more kinds of queued change: a soft delete (the item leaves the
-- device's filtered sync set; nothing happens on the server) and a
-- re-send of an item the device holds at a new level (get-more).
ALTER TABLE memds.session_queue DROP CONSTRAINT session_queue_op_check;
ALTER TABLE memds.session_queue ADD CONSTRAINT session_queue_op_check
  CHECK (op IN ('add', 'replace', 'delete', 'softdelete', 'refetch'));
COMMENT ON COLUMN memds.session_queue.op IS
  'add, replace, delete; softdelete: a Delete with SftDel (the item left '
  'the device''s filter window, the server keeps it); refetch: a Replace '
  'with the whole content at the level the session asks for (get-more).';

ALTER TABLE memds.session_stores ADD COLUMN filter text;
COMMENT ON COLUMN memds.session_stores.filter IS
  'The filter the device sent with its Alert (and the administrator''s '
  'limits) in the server''s own compact form (docs/filters.md), NULL for '
  'none.';

ALTER TABLE memds.sync_state ADD COLUMN filter text;
COMMENT ON COLUMN memds.sync_state.filter IS
  'The EXCLUSIVE filter (the device''s sync set) of the last completed '
  'session, in the compact form of session_stores.filter; NULL: the device '
  'had the whole datastore. Mail that enters the set later is added, mail '
  'that leaves it is soft-deleted on the device.';

CREATE TABLE memds.mail_levels (
    device_id      bigint      NOT NULL REFERENCES memds.devices ON DELETE CASCADE,
    store          text        NOT NULL,
    guid           text        NOT NULL,
    level          text        NOT NULL,
    sent_bytes     bigint      NOT NULL DEFAULT 0,
    want           text,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (device_id, store, guid)
);
COMMENT ON TABLE memds.mail_levels IS
  'What each device holds of each mail it was sent: the whole message, or '
  'a truncated copy at a level. A later change of the mail goes to a '
  'device without FieldLevel at the level it already has; get-more raises '
  'it. Rows of mail the device no longer has are harmless and go with the '
  'device.';
COMMENT ON COLUMN memds.mail_levels.device_id IS 'The device.';
COMMENT ON COLUMN memds.mail_levels.store IS 'Server datastore name.';
COMMENT ON COLUMN memds.mail_levels.guid IS 'Server id of the message (memds.mail_messages.guid).';
COMMENT ON COLUMN memds.mail_levels.level IS
  'The level sent, in the compact form of docs/mail.md: "whole", or '
  '"t=N;a=0|1|NAME;w=M" (text bytes, attachments, whole-message limit).';
COMMENT ON COLUMN memds.mail_levels.sent_bytes IS 'Size of the object sent.';
COMMENT ON COLUMN memds.mail_levels.want IS
  'A level the device asked for (a Replace with a larger '
  'X-Sync-Message-Limit) and not yet sent, or NULL.';
COMMENT ON COLUMN memds.mail_levels.updated_at IS 'When it was last sent or asked for.';

CREATE TABLE memds.account_settings (
    account        text        PRIMARY KEY,
    truncate       text,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE memds.account_settings IS
  'Per-account settings an administrator sets with memds-admin; they '
  'override the directives for that account.';
COMMENT ON COLUMN memds.account_settings.account IS 'The account (login).';
COMMENT ON COLUMN memds.account_settings.truncate IS
  'Like MemDSTruncate: "off", or the number of bytes (a mail up to that '
  'size goes whole, a bigger one as its header and that much text); NULL: '
  'the directive.';
COMMENT ON COLUMN memds.account_settings.updated_at IS 'Last change.';
