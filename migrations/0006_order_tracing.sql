-- Order tracing (`ordersync orders trace|stuck`).
--
-- `orders stuck` asks: which orders have sat in one non-final status (or
-- without any courier status) for more than N days? Among a million orders
-- almost all are final, so a partial index holds only the unsettled ones
-- (a few percent). Keyed by "since" first, the longest-stuck orders are the
-- start of the index (the list is a LIMIT over an ordered scan) and the
-- per-store counts are an index-only range scan: the INCLUDE columns are
-- the ones the counts read, so no heap page is touched.
--
-- "Since" is when the normalized status last changed, or the import time for
-- an order the courier has never reported. The queries in
-- src/ledger/trace.rs repeat this expression and this predicate word for
-- word, which is what lets the planner use the index (a unit test there
-- checks they match). The final statuses are those of src/jobs/status.rs.
CREATE INDEX orders_unsettled_since_idx
    ON orders ((COALESCE(status_changed_at, imported_at)), store)
    INCLUDE (status, status_changed_at, imported_at)
    WHERE status IS NULL OR status NOT IN ('delivered', 'cancelled', 'returned');

-- A trace shows an order's open failures even when they are older than the
-- newest jobs it lists (an order polled every 5 minutes for a month has
-- thousands of jobs). Dead letters are written only when a job fails for
-- good, and leave this index once resolved, so it stays small.
CREATE INDEX dead_letters_open_order_idx ON dead_letters (order_ref)
    WHERE resolution IS NULL AND order_ref IS NOT NULL;

-- Nothing here touches `jobs` or `job_runs`, whose inserts are the queue's
-- hot path: a trace finds an order's jobs by `jobs_order_ref_idx` and their
-- runs by the primary key of `job_runs`.
