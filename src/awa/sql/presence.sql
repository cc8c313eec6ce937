-- A runtime's presence lock (ADR 014), on its dedicated connection.

-- name: presence_try_lock
-- Try to take the presence lock ($1: the lock class, $2: the instance id) for this session.
SELECT pg_try_advisory_lock($1, hashtext($2));
