-- The shared resources' own statement: the leadership-term fence every fenced pooled
-- connection opens its transaction with (ADR 012).

-- name: term_fence
-- Open a maintenance transaction of term $1: share-lock the term row while $1 is current.
-- No row: a newer term began and the caller is deposed. Also bounds how long this
-- transaction may sit idle ($2, e.g. '5s'), so a vanished client cannot hold the row, and
-- with it the next term's start, for longer than that.
SELECT term, set_config('idle_in_transaction_session_timeout', $2::text, true) AS idle_limit
  FROM awa.leader_term
 WHERE term = $1
   FOR SHARE;
