-- Session settings applied when awa opens a connection (awa.db.connect).

-- name: session_idle_limit
-- End this session once it sits idle longer than $1 (a duration such as '10000ms'), so a
-- vanished client's session locks are freed within that bound (PostgreSQL 14+).
SELECT set_config('idle_session_timeout', $1, false);
