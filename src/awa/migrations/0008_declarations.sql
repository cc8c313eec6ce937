-- awa schema, version 8: what applications declare in code about their queues and job kinds
-- (descriptions, default queue), published by runtimes so operators can read it.

CREATE TABLE awa.declarations (
    type          text NOT NULL CHECK (type IN ('queue', 'kind')),
    name          text NOT NULL,
    description   text,
    queue         text,
    declared_by   text NOT NULL,
    first_seen    timestamptz NOT NULL,
    last_seen     timestamptz NOT NULL,
    PRIMARY KEY (type, name)
);
