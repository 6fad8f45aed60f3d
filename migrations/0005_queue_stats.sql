-- `ordersync queues` and /metrics count the runs that finished in the last
-- minute. job_runs is append-only and finished_at grows with insertion
-- order, so a BRIN index answers that range for a few kilobytes and no
-- measurable cost on the insert path (a B-tree here would slow every run's
-- group commit).
CREATE INDEX job_runs_finished_at_brin ON job_runs USING brin (finished_at);
