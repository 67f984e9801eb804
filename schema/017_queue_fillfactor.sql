-- 017_queue_fillfactor.sql: each row of a session's queue is written three
-- times on the way down (docs/performance.md): inserted, marked sent
-- (sent_msg_id, the column of session_queue_unsent's predicate: a new
-- entry in every index) and given the device's status (status is in no
-- index). The status update can be a heap-only (HOT) update, no index
-- entry, when the row's page has room for the new version; at the default
-- fill factor (100) the page is full after the INSERT and every update
-- goes to another page with an entry in each index. With a fill factor of
-- 25 the marked-sent version and the status version both fit on the
-- inserted page (2000 items down to a fresh device: every status update
-- HOT, queue_status_many 20-41 ms -> 6-13 ms of PostgreSQL; the table
-- about a quarter larger, its pages reused by the next session once
-- pruned). Applies to pages written from now on.

ALTER TABLE memds.session_queue SET (fillfactor = 25);
