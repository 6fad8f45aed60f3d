-- The job ledger: who enqueued each job, and every attempt it made.
--
-- `jobs` is written once per job at enqueue time and never updated on the hot
-- path; `job_runs` is append-only, one row per delivery (an attempt, or a
-- deferral that did not use an attempt). A job's current state is its latest
-- run's outcome, so a worker commits exactly one row per delivery (in batches,
-- see src/ledger/runs.rs) and the throughput of the queue is not capped by
-- row updates.

CREATE TABLE jobs (
    job_id       uuid PRIMARY KEY,
    kind         text        NOT NULL,
    queue        text        NOT NULL,
    store        text,
    order_ref    text,
    -- The envelope as first enqueued: what a replay re-sends.
    payload      jsonb       NOT NULL,
    -- Who asked for it: scheduler, webhook, cli, replay, demo, bench, job (a follow-up).
    source       text        NOT NULL,
    enqueued_at  timestamptz NOT NULL,
    max_attempts integer     NOT NULL CHECK (max_attempts > 0),
    -- The dead letter this job replays, if any (failure handling builds on it).
    replay_of    uuid        REFERENCES jobs (job_id)
);

CREATE INDEX jobs_store_kind_idx ON jobs (store, kind, enqueued_at DESC);
CREATE INDEX jobs_order_ref_idx ON jobs (order_ref) WHERE order_ref IS NOT NULL;

CREATE TABLE job_runs (
    job_id        uuid        NOT NULL,
    -- 1-based delivery number: retries and deferrals each add one.
    run           integer     NOT NULL CHECK (run > 0),
    -- The attempt this run used; deferrals repeat the attempt number.
    attempt       integer     NOT NULL CHECK (attempt > 0),
    worker        text        NOT NULL,
    started_at    timestamptz NOT NULL,
    finished_at   timestamptz NOT NULL,
    -- succeeded | skipped | retry | deferred | failed | not_found
    outcome       text        NOT NULL,
    error_class   text,
    error_message text,
    http_status   integer,
    -- When the follow-up run (retry or deferral) is due.
    next_run_at   timestamptz,
    -- Kind-specific facts, e.g. fetch_tracking's matched / unknown reference counts.
    detail        jsonb,
    -- A redelivered run (worker crash after settling) must not fail the batch
    -- it lands in: inserts use ON CONFLICT DO NOTHING on this key.
    PRIMARY KEY (job_id, run),
    CONSTRAINT job_runs_outcome_check CHECK (
        outcome IN ('succeeded', 'skipped', 'retry', 'deferred', 'failed', 'not_found')
    )
);

CREATE INDEX job_runs_outcome_idx ON job_runs (outcome, finished_at DESC)
    WHERE outcome IN ('failed', 'not_found');
