-- Liveness probes (awa.db.probe). The free probe is a protocol Close + Sync and sends no
-- statement; this is its fallback when the driver's internals changed (one transaction).

-- name: probe_fallback
-- One round trip that proves the session answers; the comment names it in pg_stat_activity.
SELECT 1 /* awa: liveness probe */;
