"""awa: a Postgres-native background job runtime."""
