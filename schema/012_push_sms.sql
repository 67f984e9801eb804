-- 012_push_sms.sql: the SMS push channel (docs/push.md): a device may be
-- told to sync by WAP Push over SMS, sent through Kannel's smsbox
-- (MemDSKannelURL), to the phone number in address.
--
-- For DBAs: only the CHECK constraint of memds.push_channels.channel
-- changes (it was made by 011_push.sql, hence its generated name); no row
-- is touched, existing 'http' channels stay as they are.

ALTER TABLE memds.push_channels DROP CONSTRAINT push_channels_channel_check;
ALTER TABLE memds.push_channels ADD CONSTRAINT push_channels_channel_check
    CHECK (channel IN ('http', 'sms'));

COMMENT ON TABLE memds.push_channels IS
  'How a device is told to sync (memds-admin push-register): one channel per '
  'device. http: the SAN is POSTed (application/vnd.syncml.ds.notification) '
  'to address, a push receiver of the device''s platform or a relay. sms: '
  'the SAN goes as WAP Push over SMS (WDP port 2948) through Kannel''s '
  'sendsms to the phone number in address.';
COMMENT ON COLUMN memds.push_channels.channel IS 'http or sms.';
COMMENT ON COLUMN memds.push_channels.address IS
  'http: the receiver''s URL; sms: the phone number (+ and digits).';
