-- 003_md5_credentials: what syncml:auth-md5 needs when passwords live on the
-- IMAP server: the md5 "inner" value per account.

CREATE TABLE memds.md5_credentials (
    account     text        PRIMARY KEY,
    inner_b64   text        NOT NULL,
    source      text        NOT NULL CHECK (source IN ('admin', 'basic-login')),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE memds.md5_credentials IS
  'For syncml:auth-md5, which never reveals the password: B64(MD5(user:password)) '
  'per account. PASSWORD-EQUIVALENT for SyncML md5 (anyone holding it can '
  'authenticate as the account over SyncML md5): protect this table like '
  'passwords. Set by memds-admin md5-set, or recorded at a successful '
  'syncml:auth-basic login.';
COMMENT ON COLUMN memds.md5_credentials.account IS 'Account (login name).';
COMMENT ON COLUMN memds.md5_credentials.inner_b64 IS 'B64(MD5(account ":" password)).';
COMMENT ON COLUMN memds.md5_credentials.source IS
  'admin (memds-admin md5-set) or basic-login (recorded when the device logged '
  'in with the password; refreshed at each such login).';
COMMENT ON COLUMN memds.md5_credentials.updated_at IS 'Last change.';
