-- 019_outbox_drafts_pending.sql: a message the SMTP server refused for good
-- is recorded `rejected` first (so that a retry never sends it again), and
-- then its copy for the user is appended to Drafts (MemDSRejectedMail
-- drafts). A sender that died between the two left the message refused and
-- no copy in Drafts. The flag says the copy is still to be made: it is set
-- before `rejected` is written and cleared once the copy is in Drafts, and
-- the device's retry of the Add makes the copy when it finds it set
-- (docs/crash-recovery.md).

ALTER TABLE memds.outbox ADD COLUMN drafts_pending boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN memds.outbox.drafts_pending IS
  'rejected: the copy of the refused message for Drafts (MemDSRejectedMail drafts) is still to be appended; the device''s retry of the Add appends it (once: a copy already there is taken).';
