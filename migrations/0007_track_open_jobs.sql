-- Postgres is the record: whatever Redis loses, the ledger brings back.
--
-- `open_jobs` holds every job the ledger knows as unfinished (queued, retrying
-- or deferred), one narrow row each, and the delivery that must come next.
-- It is exact at every commit:
--   - the row is written by the same statement as the job's `jobs` row
--     (src/ledger/jobs.rs), so a follow-up written in a handler's
--     transaction is open exactly when its cause is committed;
--   - a retry or deferral moves it to the next delivery (`run`, `envelope`,
--     `due_at`), and a terminal run deletes it, in the same statement that
--     records the run (src/ledger/runs.rs).
-- The reconciler (src/queue/reconcile.rs) compares it with Redis and re-pushes
-- each delivery Redis does not hold; the scheduler's "is a job of this kind
-- still unfinished?" reads it instead of every job's latest run. It only ever
-- holds work in progress (thousands of rows, however large the ledger grows),
-- so it has no index but its key: every reader scans it or looks up job ids.
CREATE TABLE open_jobs (
    job_id      uuid        PRIMARY KEY,
    kind        text        NOT NULL,
    -- The ledger's queue name, `{namespace}:{kind}` (as jobs.queue).
    queue       text        NOT NULL,
    store       text,
    order_ref   text,
    -- The delivery that comes next: its run number, and its envelope when it
    -- is not the first (NULL: jobs.payload as enqueued, run 1).
    run         integer     NOT NULL DEFAULT 1 CHECK (run > 0),
    envelope    jsonb,
    -- When that delivery is due.
    due_at      timestamptz NOT NULL,
    enqueued_at timestamptz NOT NULL
);

-- Jobs already in the ledger: the unfinished ones are open, their next
-- delivery rebuilt from the latest run (a retry uses one more attempt, a
-- deferral does not), as src/domain/job.rs does.
INSERT INTO open_jobs (job_id, kind, queue, store, order_ref, run, envelope, due_at, enqueued_at)
SELECT j.job_id, j.kind, j.queue, j.store, j.order_ref,
       COALESCE(last.run + 1, 1),
       CASE WHEN last.run IS NOT NULL THEN
           jsonb_set(jsonb_set(j.payload, '{run}', to_jsonb(last.run + 1)),
                     '{attempt}', to_jsonb(last.attempt + CASE WHEN last.outcome = 'retry' THEN 1 ELSE 0 END))
       END,
       COALESCE(last.next_run_at, j.enqueued_at), j.enqueued_at
FROM jobs j
LEFT JOIN LATERAL (SELECT r.run, r.attempt, r.outcome, r.next_run_at FROM job_runs r
                   WHERE r.job_id = j.job_id ORDER BY r.run DESC LIMIT 1) last ON true
WHERE last.outcome IS NULL OR last.outcome IN ('retry', 'deferred');

-- Every delivery the reconciler (or `ordersync jobs requeue`) pushed again
-- because Redis did not hold it: what a fault cost, visible in `queues`, the
-- order trace and /metrics. Append-only; written only when something was lost.
CREATE TABLE reconciled_jobs (
    job_id        uuid        NOT NULL,
    run           integer     NOT NULL,
    queue         text        NOT NULL,
    reconciled_at timestamptz NOT NULL DEFAULT now(),
    -- The worker process, or `cli:user@host`.
    reconciled_by text        NOT NULL
);
CREATE INDEX reconciled_jobs_job_idx ON reconciled_jobs (job_id);
CREATE INDEX reconciled_jobs_at_brin ON reconciled_jobs USING brin (reconciled_at);

-- Tasks found in Redis whose payload is not JSON at all: apalis cannot decode
-- them, so they never reach a handler. They are taken out of the queue and
-- kept here byte for byte (with a dead letter too when the task id names a
-- job of the ledger), instead of killing one fetcher after another.
CREATE TABLE quarantined_tasks (
    queue          text        NOT NULL,
    task_id        text        NOT NULL,
    job_id         uuid,
    raw            bytea       NOT NULL,
    error          text        NOT NULL,
    quarantined_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (queue, task_id)
);
ALTER TABLE dead_letters ADD COLUMN raw_payload bytea;

-- A text whose fate is unknown is never re-sent by itself (at-most-once). An
-- operator may ask for it explicitly: the row becomes 'resend', held by the
-- new job that will send it, and the request is recorded here.
ALTER TABLE sms_messages DROP CONSTRAINT sms_messages_state_check;
ALTER TABLE sms_messages ADD CONSTRAINT sms_messages_state_check
    CHECK (state IN ('sending', 'sent', 'unknown', 'resend'));
ALTER TABLE sms_messages
    ADD COLUMN resend_requested_by text,
    ADD COLUMN resend_requested_at timestamptz,
    ADD COLUMN resends integer NOT NULL DEFAULT 0;
CREATE INDEX sms_messages_unknown_idx ON sms_messages (claimed_at) WHERE state = 'unknown';
