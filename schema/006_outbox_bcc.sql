-- 006_outbox_bcc.sql: the sender's own copy of a message keeps its Bcc.
-- The transmitted copy has no Bcc field (that is what Bcc means), but the
-- copy filed in the sender's Sent folder, and the one put back into Drafts
-- when the SMTP server refuses the message, show it, as mail programs do:
-- the removed fields are kept next to the transmitted bytes until filing.

ALTER TABLE memds.outbox ADD COLUMN bcc_fields bytea;
COMMENT ON COLUMN memds.outbox.bcc_fields IS
  'The Bcc header fields taken out of the transmitted copy, as the device '
  'wrote them (CRLF): put back in front of data for the copy in Sent (or '
  'Drafts). NULL or empty when the message had none; cleared with data.';
