-- awa schema, version 3: a unique key follows its job back into scope (a 'queued'-scope job
-- that is retried holds its key again), and an operator's cancel reason is kept.

ALTER TABLE awa.jobs ADD COLUMN cancel_reason text;

CREATE OR REPLACE FUNCTION awa.sync_unique_key() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.state = ANY (NEW.unique_states) THEN
        -- Back in scope: take the key again unless another job holds it now.
        INSERT INTO awa.job_unique (unique_key, job_id) VALUES (NEW.unique_key, NEW.id)
        ON CONFLICT (unique_key) DO NOTHING;
    ELSE
        DELETE FROM awa.job_unique WHERE unique_key = NEW.unique_key AND job_id = NEW.id;
    END IF;
    RETURN NULL;
END
$$;

DROP TRIGGER jobs_release_unique ON awa.jobs;
CREATE TRIGGER jobs_sync_unique AFTER UPDATE OF state ON awa.jobs
    FOR EACH ROW WHEN (NEW.unique_key IS NOT NULL
                       AND (OLD.state = ANY (NEW.unique_states)) IS DISTINCT FROM
                           (NEW.state = ANY (NEW.unique_states)))
    EXECUTE FUNCTION awa.sync_unique_key();
