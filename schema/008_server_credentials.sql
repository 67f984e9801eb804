-- 008_server_credentials: the server's own credentials towards a device.
-- A device may authenticate the server: it answers the server's SyncHdr
-- with Status 401 or 407 and a Chal, and the server puts its Cred
-- (syncml:auth-basic or syncml:auth-md5 with the device's NextNonce) in the
-- SyncHdr of its next message. The same secret is what a Server Alerted
-- Notification (SAN, package 0) digest is made of:
--   MD5(B64(MD5(server_id ":" password)) ":" nonce ":" B64(MD5(notification)))
-- so this table is the one place for it: a SAN sender reads server_id (or,
-- when NULL, the sync URL it tells the device), password and nonce here.

CREATE TABLE memds.server_credentials (
    account     text        NOT NULL,
    devid       text        NOT NULL,
    server_id   text,
    password    text        NOT NULL CHECK (password <> ''),
    auth        text        NOT NULL DEFAULT 'md5' CHECK (auth IN ('md5', 'basic')),
    nonce       text        NOT NULL DEFAULT '',
    nonce_at    timestamptz,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account, devid)
);
COMMENT ON TABLE memds.server_credentials IS
  'The server''s credentials towards one device of an account (per device, '
  'like the device''s own configuration of the server): used to answer a '
  'device that challenges the server (SyncHdr Status 401/407 with Chal), and '
  'the secret of the SAN digest (server_id, password, nonce). PASSWORD: the '
  'server must produce credentials, so the password is kept in clear; protect '
  'this table like passwords. Set by memds-admin server-password. A device '
  'without a row that challenges the server ends its session (MEMDS00590).';
COMMENT ON COLUMN memds.server_credentials.account IS
  'Account (login name) the device syncs, as in memds.devices.';
COMMENT ON COLUMN memds.server_credentials.devid IS
  'The device''s id (its SyncHdr Source LocURI), as in memds.devices.';
COMMENT ON COLUMN memds.server_credentials.server_id IS
  'The name the server presents: the user name of basic and md5 credentials '
  'and the SAN server-identifier. NULL: the server''s LocURI as the device '
  'addresses it (the SyncHdr Target LocURI of its messages, which the server '
  'also sends as its own Source LocURI and DevInf DevID: the sync URL).';
COMMENT ON COLUMN memds.server_credentials.password IS
  'The server''s password towards this device, in clear (basic credentials '
  'carry it; md5 and the SAN digest use B64(MD5(server_id ":" password))).';
COMMENT ON COLUMN memds.server_credentials.auth IS
  'md5: only syncml:auth-md5 challenges are answered (a basic challenge, '
  'which would put the password on the wire, ends the session, MEMDS00593); '
  'basic: basic challenges are answered too.';
COMMENT ON COLUMN memds.server_credentials.nonce IS
  'The server nonce: the last NextNonce (base64, as the device sent it) of '
  'an md5 challenge from this device, which the server used for its Cred; '
  'the nonce of the SAN digest is its decoded bytes. '''' until the device '
  'sent one.';
COMMENT ON COLUMN memds.server_credentials.nonce_at IS 'When nonce was last set.';
COMMENT ON COLUMN memds.server_credentials.updated_at IS
  'Last change of server_id, password or auth (memds-admin).';

ALTER TABLE memds.sessions ADD COLUMN server_cred smallint NOT NULL DEFAULT 0
    CHECK (server_cred BETWEEN 0 AND 3);
COMMENT ON COLUMN memds.sessions.server_cred IS
  'The device''s authentication of the server in this session: 0 none asked; '
  '1 (basic) or 2 (md5): the server''s last message carried its Cred, which '
  'goes again in every message until the device answers 212, and a new '
  'challenge means the device rejected it (the session ends, MEMDS00592); '
  '3 accepted for the session (212).';
