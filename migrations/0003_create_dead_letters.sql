-- Dead letters: every job whose final outcome is failed or not_found, with
-- what a replay needs. Uncapped (pruned only by age, configurable, default 90
-- days), never silently dropped. The fingerprint groups failures with one
-- cause (kind + provider + error class + normalized message), so a thousand
-- failures from one revoked key read as one line.

CREATE TABLE dead_letters (
    job_id        uuid        PRIMARY KEY REFERENCES jobs (job_id),
    kind          text        NOT NULL,
    store         text,
    order_ref     text,
    -- The envelope of the failed delivery (what a replay re-sends).
    payload       jsonb       NOT NULL,
    failed_at     timestamptz NOT NULL,
    attempts      integer     NOT NULL,
    outcome       text        NOT NULL CHECK (outcome IN ('failed', 'not_found')),
    error_class   text        NOT NULL,
    error_message text        NOT NULL,
    http_status   integer,
    fingerprint   text        NOT NULL,
    -- NULL while it waits for an operator.
    resolution    text        CHECK (resolution IN ('replayed', 'discarded')),
    resolved_at   timestamptz,
    resolved_by   text,
    -- The job a replay created.
    replayed_as   uuid        REFERENCES jobs (job_id),
    CONSTRAINT dead_letters_resolved_when_check CHECK ((resolution IS NULL) = (resolved_at IS NULL))
);

CREATE INDEX dead_letters_open_idx ON dead_letters (fingerprint, failed_at DESC) WHERE resolution IS NULL;
CREATE INDEX dead_letters_failed_at_idx ON dead_letters (failed_at DESC);
CREATE INDEX jobs_replay_of_idx ON jobs (replay_of) WHERE replay_of IS NOT NULL;
