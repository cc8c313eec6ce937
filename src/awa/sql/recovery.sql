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
