-- 004_mail.sql: the mailbox datastores (MemDSDatastore imap). The mail
-- itself stays on the IMAP server; PostgreSQL keeps what the gateway knows
-- of each folder (UIDVALIDITY, HIGHESTMODSEQ) and one row per message with
-- its stable server id (GUID), its current UID and the flags the devices
-- see, so that a sync finds the changes by a range scan on seq, exactly as
-- for memds.items, and a no-change sync costs one SELECT on IMAP.

CREATE SEQUENCE memds.mail_guid_seq;
COMMENT ON SEQUENCE memds.mail_guid_seq IS 'Numbers the server ids (GUIDs) of messages ("m" || nextval) and folders ("f" || nextval).';

CREATE TABLE memds.mail_folders (
    account        text        NOT NULL,
    folder         text        NOT NULL,
    uidvalidity    bigint      NOT NULL,
    highestmodseq  bigint      NOT NULL DEFAULT 0,
    uidnext        bigint      NOT NULL DEFAULT 0,
    messages       bigint      NOT NULL DEFAULT 0,
    scanned_at     timestamptz NOT NULL DEFAULT now(),
    guid           text        NOT NULL DEFAULT 'f' || nextval('memds.mail_guid_seq'),
    name           text,
    role           text,
    seq            bigint      NOT NULL DEFAULT memds.item_seq_take(),
    deleted        boolean     NOT NULL DEFAULT false,
    changed_by     bigint,
    PRIMARY KEY (account, folder)
);
CREATE INDEX mail_folders_guid ON memds.mail_folders (account, guid);
CREATE INDEX mail_folders_changes ON memds.mail_folders (account, seq);
COMMENT ON TABLE memds.mail_folders IS
  'What the gateway last saw of an IMAP folder. A sync compares the '
  'folder''s UIDVALIDITY and HIGHESTMODSEQ with these and asks IMAP only for '
  'what changed since (CONDSTORE/QRESYNC), or diffs UIDs and flags when the '
  'server has no CONDSTORE. The row is locked while a sync scans the folder.';
COMMENT ON COLUMN memds.mail_folders.account IS 'Owning account (IMAP user).';
COMMENT ON COLUMN memds.mail_folders.folder IS 'IMAP mailbox name as on the wire (modified UTF-7; INBOX for the inbox).';
COMMENT ON COLUMN memds.mail_folders.uidvalidity IS 'UIDVALIDITY the UIDs in memds.mail_messages belong to.';
COMMENT ON COLUMN memds.mail_folders.highestmodseq IS 'HIGHESTMODSEQ at the last scan; 0: the server has no CONDSTORE for it.';
COMMENT ON COLUMN memds.mail_folders.uidnext IS 'UIDNEXT at the last scan.';
COMMENT ON COLUMN memds.mail_folders.messages IS 'Messages in the folder at the last scan.';
COMMENT ON COLUMN memds.mail_folders.scanned_at IS 'Time of the last scan.';
COMMENT ON COLUMN memds.mail_folders.guid IS 'Server id of the folder as an item of the hierarchical "email" datastore (folder object).';
COMMENT ON COLUMN memds.mail_folders.name IS 'Path as devices see it: UTF-8, "/" between levels.';
COMMENT ON COLUMN memds.mail_folders.role IS 'inbox, sent, drafts, trash, junk, archive, or NULL.';
COMMENT ON COLUMN memds.mail_folders.seq IS 'Change sequence number of the folder item''s last change (memds.item_seq).';
COMMENT ON COLUMN memds.mail_folders.deleted IS 'Tombstone: the folder no longer exists on the IMAP server.';
COMMENT ON COLUMN memds.mail_folders.changed_by IS 'Device whose sync made the last change of the folder item; NULL: the IMAP server.';

CREATE TABLE memds.mail_messages (
    account        text        NOT NULL,
    folder         text        NOT NULL,
    guid           text        NOT NULL DEFAULT 'm' || nextval('memds.mail_guid_seq'),
    uid            bigint      NOT NULL,
    flags          integer     NOT NULL DEFAULT 0,
    message_id     text,
    size           bigint      NOT NULL DEFAULT 0,
    internaldate   timestamptz,
    seq            bigint      NOT NULL DEFAULT memds.item_seq_take(),
    content_seq    bigint      NOT NULL DEFAULT 0,
    deleted        boolean     NOT NULL DEFAULT false,
    changed_by     bigint,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account, folder, guid)
);
CREATE UNIQUE INDEX mail_messages_uid ON memds.mail_messages (account, folder, uid)
    WHERE NOT deleted;
CREATE INDEX mail_messages_changes ON memds.mail_messages (account, folder, seq);
CREATE INDEX mail_messages_account_changes ON memds.mail_messages (account, seq);
CREATE INDEX mail_messages_guid ON memds.mail_messages (account, guid);
CREATE INDEX mail_messages_msgid ON memds.mail_messages (account, folder, message_id)
    WHERE NOT deleted;
COMMENT ON TABLE memds.mail_messages IS
  'One row per message of a scanned IMAP folder: the stable server id the '
  'devices map to, the current UID, and the flags as the devices see them. '
  'Every change (new mail, flags, expunge, a device''s change) takes a new '
  'seq from memds.item_seq, so devices get changes by seq exactly as for '
  'memds.items. Expunged messages stay as tombstones (deleted) so that '
  'devices that had them get a Delete. A UIDVALIDITY change re-maps rows '
  'by (message_id, size, internaldate) instead of replacing them.';
COMMENT ON COLUMN memds.mail_messages.account IS 'Owning account.';
COMMENT ON COLUMN memds.mail_messages.folder IS 'IMAP mailbox (as memds.mail_folders.folder).';
COMMENT ON COLUMN memds.mail_messages.guid IS 'Server id of the message (what device maps point to); survives UIDVALIDITY changes, edits and moves by a device (the old folder keeps a tombstone with the same guid).';
COMMENT ON COLUMN memds.mail_messages.uid IS 'IMAP UID in the folder''s current UIDVALIDITY.';
COMMENT ON COLUMN memds.mail_messages.flags IS 'Flags the devices see, bits: 1 \Seen, 2 \Answered, 4 \Flagged, 8 \Deleted, 16 \Draft, 64 $Forwarded.';
COMMENT ON COLUMN memds.mail_messages.message_id IS 'Message-ID header (for re-mapping after a UIDVALIDITY change and slow-sync matching).';
COMMENT ON COLUMN memds.mail_messages.size IS 'RFC822.SIZE in octets.';
COMMENT ON COLUMN memds.mail_messages.internaldate IS 'IMAP INTERNALDATE (the OMA <received> value).';
COMMENT ON COLUMN memds.mail_messages.seq IS 'Change sequence number of the last change.';
COMMENT ON COLUMN memds.mail_messages.content_seq IS 'seq of the last change of the message itself (not its flags): a device that synced after it gets flag changes as flags-only Replaces.';
COMMENT ON COLUMN memds.mail_messages.deleted IS 'Tombstone: the message left the folder at seq.';
COMMENT ON COLUMN memds.mail_messages.changed_by IS 'Device whose sync made the last change (not echoed back to it); NULL: the IMAP server (another client, new mail).';
COMMENT ON COLUMN memds.mail_messages.created_at IS 'First seen.';
COMMENT ON COLUMN memds.mail_messages.updated_at IS 'Last change.';
