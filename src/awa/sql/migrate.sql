-- The migration runner's own bookkeeping (awa.db.migrate). The migrations themselves are
-- the numbered files in src/awa/migrations/.

-- name: migrations_table_exists
-- Whether this database has been migrated at all.
SELECT to_regclass('awa.schema_migrations') IS NOT NULL;

-- name: schema_version
-- The highest applied migration.
SELECT coalesce(max(version), 0) FROM awa.schema_migrations;

-- name: migration_lock
-- One migrator at a time per database, until the migrating transaction ends.
SELECT pg_advisory_xact_lock($1);

-- name: migrations_create_table
-- The schema and the table of applied migrations, on first use.
CREATE SCHEMA IF NOT EXISTS awa;
CREATE TABLE awa.schema_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- name: migrations_applied
-- Every applied migration with the checksum it had then.
SELECT version, checksum FROM awa.schema_migrations;

-- name: migration_record
-- Mark migration $1 (named $2, checksum $3) applied.
INSERT INTO awa.schema_migrations (version, name, checksum) VALUES ($1, $2, $3);

-- name: migrating_role
-- The role the migration ran as (for the "may not change the schema" error).
SELECT current_user;
