"""Enables awa's pytest plugin: ``awa_database_url`` is a fresh, migrated database per test
(on an embedded PostgreSQL, or the server ``AWA_TEST_DATABASE_URL`` names)."""

pytest_plugins = ["awa.testing.pytest_plugin"]
