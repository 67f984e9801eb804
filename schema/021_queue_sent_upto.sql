-- 021_queue_sent_upto.sql: a message going down no longer marks each row
-- of the send queue it carried. Rows are sent in the order of n, so what
-- has gone is a prefix of each datastore's queue: memds.session_stores.
-- sent_upto says up to which n, one row written per message instead of
-- one UPDATE per item (and that UPDATE changed sent_msg_id, the column of
-- session_queue_unsent's predicate: never a heap-only update, a new entry
-- in every index of the queue for every item sent). A row is still
-- written on its own when it needs more than "sent": an error status (too
-- large, quarantined, deleted meanwhile) or a large object's chunk.
-- session_queue_unsent goes: the unsent rows are those after sent_upto
-- with sent_msg_id NULL, read in order through the primary key.

ALTER TABLE memds.session_stores
    ADD COLUMN sent_upto integer NOT NULL DEFAULT 0;
COMMENT ON COLUMN memds.session_stores.sent_upto IS
  'Every row of this datastore''s send queue (memds.session_queue) with '
  'n <= sent_upto has been sent completely; rows after it are sent when '
  'their sent_msg_id is set. 0: nothing sent yet.';

COMMENT ON COLUMN memds.session_queue.sent_msg_id IS
  'Server MsgID of the message that completed the item, for an item '
  'written on its own (an error status, a large object); NULL for an item '
  'after the datastore''s session_stores.sent_upto that is not yet sent. '
  'Items up to sent_upto were sent whatever this says.';
COMMENT ON COLUMN memds.session_queue.sent_bytes IS
  'Bytes of the item sent so far (a large object in chunks); not updated '
  'for an item sent whole within sent_upto.';

DROP INDEX memds.session_queue_unsent;
