-- 013_push_watch.sql: the IMAP IDLE watcher's leases (docs/push.md), for
-- IMAP servers that cannot tell the module about new mail themselves
-- (MemDSPushWatch On). Each account with a push-enabled device is watched
-- by exactly one node: the node holding its lease, renewed every 2 s and
-- taken over by another node once it has run out.
--
-- Also: a completed sync clears only the notifications whose last event
-- came before its session started; one with an event since (mail that may
-- have arrived after the session's snapshot) stays and is delivered after
-- the session. push_pending.last_at records the latest event a row stands
-- for (a burst still makes one row and one SAN, due after the first).

CREATE TABLE memds.push_watch (
    account        text        NOT NULL,
    imap_server    text        NOT NULL,
    noted_at       timestamptz NOT NULL DEFAULT now(),
    node           text,
    lease_until    timestamptz,
    watched_since  timestamptz,
    uidvalidity    bigint,
    uidnext        bigint,
    last_event_at  timestamptz,
    last_error     text,
    PRIMARY KEY (account, imap_server)
);
CREATE INDEX push_watch_node ON memds.push_watch (node) WHERE node IS NOT NULL;
COMMENT ON TABLE memds.push_watch IS
  'Accounts the IMAP IDLE watcher keeps an eye on, per IMAP server: an '
  'account is added by its first session at a location with MemDSPushWatch '
  'On and is watched while one of its devices has a push channel. node holds '
  'the lease until lease_until; a node that stops releases its leases, a '
  'crashed node''s leases run out and another node takes them.';
COMMENT ON COLUMN memds.push_watch.account IS 'The account (login).';
COMMENT ON COLUMN memds.push_watch.imap_server IS 'The location''s MemDSIMAPServer URL.';
COMMENT ON COLUMN memds.push_watch.noted_at IS 'When a session first noted the account here.';
COMMENT ON COLUMN memds.push_watch.node IS 'The watcher holding the lease (host:parent pid:child pid), NULL: nobody.';
COMMENT ON COLUMN memds.push_watch.lease_until IS 'The lease runs out then unless renewed.';
COMMENT ON COLUMN memds.push_watch.watched_since IS 'When the current holder took the lease.';
COMMENT ON COLUMN memds.push_watch.uidvalidity IS 'INBOX UIDVALIDITY when last looked at.';
COMMENT ON COLUMN memds.push_watch.uidnext IS 'INBOX UIDNEXT when last looked at: mail that arrived while nobody watched is noticed by the next holder.';
COMMENT ON COLUMN memds.push_watch.last_event_at IS 'When the watcher last saw new mail.';
COMMENT ON COLUMN memds.push_watch.last_error IS 'Why the watcher could not watch (login refused, no IDLE ...), NULL when fine.';

ALTER TABLE memds.push_pending ADD COLUMN last_at timestamptz NOT NULL DEFAULT now();
COMMENT ON COLUMN memds.push_pending.last_at IS 'The latest event it stands for (a completed sync keeps the row when this is later than its session''s start).';

CREATE OR REPLACE FUNCTION memds.push_synced() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM memds.push_pending p
   WHERE p.device_id = NEW.device_id AND p.store = NEW.store
     AND p.last_at < coalesce((SELECT max(s.created_at) FROM memds.sessions s
                                 WHERE s.device_id = NEW.device_id), now());
  RETURN NEW;
END $$;
