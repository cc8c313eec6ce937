-- awa schema, version 10: leadership terms (ADR 012).
--
-- Each leadership won (a leader's, or a bounded tick()'s) bumps the term in this one-row
-- table while holding the session leader lock. Every maintenance transaction of that term
-- starts by share-locking the row with the term it believes current (query term_fence): a
-- deposed leader's late transaction finds a newer term and writes nothing, and the bump,
-- an UPDATE of the row, waits for the fenced transactions still in flight, so no write of
-- an older term can commit after a newer term began.
CREATE TABLE awa.leader_term (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    term        bigint NOT NULL,
    holder      text,
    started_at  timestamptz
);
INSERT INTO awa.leader_term (term) VALUES (0);

-- The term the recorded leader leads in (NULL: recorded before terms existed).
ALTER TABLE awa.maintenance_leader ADD COLUMN term bigint;
