-- 005_outbox.sql: the outbox ledger. A message a device puts into its
-- Outbox is sent over SMTP exactly once: the ledger row exists before SMTP
-- starts and is keyed by what identifies the device's item, so a retried
-- Add (the device never got our answer, the child died, the database went
-- away) finds the row and its outcome instead of sending again.
--
-- States: received -> submitting -> submitted -> filed -> acknowledged,
-- or rejected (permanent SMTP failure, not sent) / retrying (transient
-- failure, a background job tries again).

CREATE TABLE memds.outbox (
    outbox_id      bigserial   PRIMARY KEY,
    account        text        NOT NULL,
    device_id      bigint      NOT NULL,
    store          text        NOT NULL,
    location       text,
    luid           text        NOT NULL,
    content_sha1   text        NOT NULL,
    state          text        NOT NULL DEFAULT 'received'
                   CHECK (state IN ('received', 'submitting', 'submitted', 'filed',
                                    'acknowledged', 'rejected', 'retrying')),
    message_id     text,
    envelope_from  text,
    rcpts          text[],
    data           bytea,
    sent_guid      text,
    status         integer,
    reason         text,
    attempts       integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (account, device_id, store, luid, content_sha1)
);
CREATE INDEX outbox_retry ON memds.outbox (location, next_attempt_at) WHERE state = 'retrying';
COMMENT ON TABLE memds.outbox IS
  'Outbox ledger: one row per message a device asked to send, written (and '
  'committed) before SMTP starts. A retried Add with the same item finds its '
  'row and gets the stored status; SMTP is never started twice for a row. '
  'A row in state submitting after a crash means the end of the message may '
  'have reached the SMTP server: it is not sent again (at most once in that '
  'window) and the operator is told in the log.';
COMMENT ON COLUMN memds.outbox.account IS 'Sending account.';
COMMENT ON COLUMN memds.outbox.device_id IS 'Device that sent it (memds.devices).';
COMMENT ON COLUMN memds.outbox.store IS 'Datastore the device added it to (Outbox, or email for the hierarchical one).';
COMMENT ON COLUMN memds.outbox.location IS 'The httpd <Location> (sync URL path) whose settings send it; the background retry job uses them.';
COMMENT ON COLUMN memds.outbox.luid IS 'The device''s id of the Outbox item.';
COMMENT ON COLUMN memds.outbox.content_sha1 IS 'SHA-1 of the item as the device sent it: a new item under an old LUID is a new message.';
COMMENT ON COLUMN memds.outbox.state IS 'received (stored, SMTP not started), submitting (the end of the data is being handed to the server), submitted (250), filed (copy in Sent), acknowledged (the device got the answer), rejected (permanent failure), retrying (transient failure).';
COMMENT ON COLUMN memds.outbox.message_id IS 'Message-ID of the submitted message (added when the device sent none).';
COMMENT ON COLUMN memds.outbox.envelope_from IS 'SMTP MAIL FROM.';
COMMENT ON COLUMN memds.outbox.rcpts IS 'SMTP RCPT TO (To, Cc and Bcc).';
COMMENT ON COLUMN memds.outbox.data IS 'The message as transmitted (Bcc removed); cleared once filed in Sent.';
COMMENT ON COLUMN memds.outbox.sent_guid IS 'Server id of the copy in Sent (memds.mail_messages).';
COMMENT ON COLUMN memds.outbox.status IS 'SyncML status answered to the device for the Add.';
COMMENT ON COLUMN memds.outbox.reason IS 'Why it was rejected or is retried (SMTP reply), for the device and the log.';
COMMENT ON COLUMN memds.outbox.attempts IS 'SMTP attempts made.';
COMMENT ON COLUMN memds.outbox.next_attempt_at IS 'retrying: when the background job tries again.';
COMMENT ON COLUMN memds.outbox.created_at IS 'First received.';
COMMENT ON COLUMN memds.outbox.updated_at IS 'Last state change.';
