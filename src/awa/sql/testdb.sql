-- Throw-away databases for test suites (awa.testing, tests/conftest.py). Templates: the
-- database names are formatted in as quoted identifiers (validated by awa.db.testdb), since
-- CREATE/DROP DATABASE take no parameters.

-- name: create_database
-- Create database {name}, empty.
CREATE DATABASE {name};

-- name: create_database_from_template
-- Create database {name} as a copy of {template} (fast: a file-level copy).
CREATE DATABASE {name} TEMPLATE {template};

-- name: drop_database
-- Drop database {name} if it exists, ending its sessions first.
DROP DATABASE IF EXISTS {name} WITH (FORCE);
