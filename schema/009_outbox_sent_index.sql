-- 009_outbox_sent_index.sql: the sender's own Sent copy is found by its
-- server id (docs/mail.md "Truncation"): before a device gets a new mail
-- of a Sent folder, the server asks whether this device sent it.

CREATE INDEX outbox_sent_guid ON memds.outbox (account, sent_guid)
    WHERE sent_guid IS NOT NULL;
