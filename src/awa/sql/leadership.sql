-- Maintenance leadership: the session-scoped election lock on the leader's dedicated
-- connection, leadership terms, and the leader row operators read.

-- name: leader_try_lock
-- Try to take the session-scoped maintenance leader lock $1 (true: this session leads); for
-- one-shot callers (`awa maintenance tick`). A campaigning runtime waits (leader_wait_lock).
SELECT pg_try_advisory_lock($1);

-- name: leader_wait_lock
-- Wait for the leader lock $1: granted the moment its holder releases it or its session
-- ends. The candidate session's lock_timeout bounds the wait (lock_not_available).
SELECT pg_advisory_lock($1);

-- name: candidate_session
-- A candidate session's settings: every lock wait ends after $1 (lock_timeout, a duration
-- such as '30000ms'; a leadership term sets its own), and while waiting the server checks
-- every $2 that the client is still connected (client_connection_check_interval,
-- PostgreSQL 14+), so a vanished candidate leaves the queue instead of winning the lock.
SELECT set_config('lock_timeout', $1::text, false),
       set_config('client_connection_check_interval', $2::text, false);

-- name: candidate_session_pre14
-- candidate_session for servers before PostgreSQL 14 (no client connection check).
SELECT set_config('lock_timeout', $1::text, false);

-- name: leader_holds_lock
-- Whether this session still holds the leader lock $1 (the watchdog's health check), and the
-- database clock as a Unix epoch: the watchdog learns the clock offset from the same round
-- trip, so an idle leader spends one transaction per check, not two (issue 19).
SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted
                  AND pid = pg_backend_pid() AND objsubid = 1
                  AND ((classid::bigint << 32) | objid::bigint) = $1) AS holds,
       extract(epoch FROM clock_timestamp())::float8 AS db_epoch;

-- name: db_epoch
-- The database clock now, as a Unix epoch (the leader learns its offset from the app clock).
SELECT extract(epoch FROM clock_timestamp())::float8;

-- name: leader_unlock
-- Give up the maintenance leader lock $1.
SELECT pg_advisory_unlock($1);

-- name: term_lock_timeout
-- Bound every lock wait of the rest of this transaction to $1 (a duration such as '200ms').
SELECT set_config('lock_timeout', $1::text, true);

-- name: term_begin
-- Start the next leadership term for holder $1 (the caller holds the leader lock). As an
-- UPDATE of the term row it waits for every fenced transaction of older terms still in
-- flight (they share-lock the row); later ones see the new term. Returns the new term.
UPDATE awa.leader_term
   SET term = term + 1, holder = $1, started_at = coalesce($2::timestamptz, now())
RETURNING term;

-- name: record_leader
-- Record this process as the maintenance leader of term $5 (won at $2, lane mode $3).
INSERT INTO awa.maintenance_leader (instance_id, won_at, mode, mode_reason, updated_at, term)
VALUES ($1, coalesce($2::timestamptz, now()), $3, $4, coalesce($2::timestamptz, now()), $5)
ON CONFLICT (singleton) DO UPDATE
   SET instance_id = EXCLUDED.instance_id, won_at = EXCLUDED.won_at, mode = EXCLUDED.mode,
       mode_reason = EXCLUDED.mode_reason, updated_at = EXCLUDED.updated_at,
       term = EXCLUDED.term;

-- name: get_leader
-- The recorded maintenance leader, if any.
SELECT instance_id, won_at, mode, mode_reason, updated_at, term FROM awa.maintenance_leader;

-- name: current_term
-- The current leadership term, its holder and when it began.
SELECT term, holder, started_at FROM awa.leader_term;
