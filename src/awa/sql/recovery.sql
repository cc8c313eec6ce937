-- Startup recovery: work held by runtimes that are gone, found before a runtime reports
-- ready. Each query returns one page; the caller pages until a page comes back short.

-- name: find_abandoned_running
-- Running attempts whose holder's liveness row is missing, stopped, or unseen for more
-- than $1 seconds (the presence-lock check lives in find_orphaned_running). Served by
-- jobs_claimed_by_idx and the runtimes primary key.
SELECT j.id, j.run_lease FROM awa.jobs j
 WHERE j.state = 'running'
   AND NOT EXISTS (
       SELECT 1 FROM awa.runtimes r
        WHERE r.instance_id = j.claimed_by
          AND r.stopped_at IS NULL
          AND r.last_seen_at >= coalesce($3::timestamptz, now()) - make_interval(secs => $1))
 ORDER BY j.id
 LIMIT $2;

-- name: find_rescuable_running
-- One pass of rescue_stale_heartbeats in one round trip: running attempts whose runtime's
-- presence lock is gone (claimed more than $1 s ago; lock key1 = $3, key2 =
-- hashtext(claimed_by)) and, unless $6 is NULL, whose runtime has not beaten its liveness
-- row for $6 s (a live runtime with a half-open presence connection keeps beating through
-- its pool), flagged orphaned, or whose heartbeat is older than $2 s.
SELECT id, run_lease, orphaned, stale FROM (
    SELECT j.id, j.run_lease, j.heartbeat_at,
           j.attempted_at < coalesce($5::timestamptz, now()) - make_interval(secs => $1)
           AND NOT EXISTS (
               SELECT 1 FROM pg_locks l
                WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
                  AND l.database = (SELECT oid FROM pg_database
                                     WHERE datname = current_database())
                  AND l.classid::bigint = $3::bigint
                  AND l.objid::bigint = (hashtext(j.claimed_by)::bigint & 4294967295))
           AND ($6::double precision IS NULL OR NOT EXISTS (
               SELECT 1 FROM awa.runtimes r
                WHERE r.instance_id = j.claimed_by AND r.stopped_at IS NULL
                  AND r.last_seen_at >= coalesce($5::timestamptz, now())
                                        - make_interval(secs => $6)))
               AS orphaned,
           j.heartbeat_at < coalesce($5::timestamptz, now()) - make_interval(secs => $2)
               AS stale
      FROM awa.jobs j
     WHERE j.state = 'running'
) r
 WHERE orphaned OR stale
 ORDER BY heartbeat_at
 LIMIT $4;
