-- 001_base: the memds schema and the record of applied migrations.
-- Applied by `memds-admin migrate`, which creates memds.schema_migrations
-- itself (it must exist to record this very migration) and runs each file in
-- its own transaction. Never edit an applied migration: add a new file.

COMMENT ON SCHEMA memds IS
  'mod_memds (SyncML/OMA DS mobile-email gateway): device, session, anchor '
  'and ID-map state. Owned by the gateway; read freely, write only through '
  'memds-admin.';

COMMENT ON TABLE memds.schema_migrations IS
  'One row per applied schema migration (schema/NNN_name.sql). Written by '
  'memds-admin migrate; the module refuses to serve (503) while the highest '
  'version here is below the one it was built for.';
COMMENT ON COLUMN memds.schema_migrations.version IS
  'Migration number, the NNN of schema/NNN_name.sql.';
COMMENT ON COLUMN memds.schema_migrations.name IS
  'File name of the migration as applied.';
COMMENT ON COLUMN memds.schema_migrations.sha1 IS
  'SHA-1 (hex) of the file as applied; memds-admin migrate refuses to go on '
  'when an applied file was edited afterwards.';
COMMENT ON COLUMN memds.schema_migrations.applied_at IS
  'When the migration was applied.';
