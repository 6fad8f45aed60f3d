-- Order tracing (`ordersync orders trace|stuck`).
--
-- `orders stuck` asks: which orders have sat in one non-final status (or
-- without any courier status) for more than N days? Among a million orders
-- almost all are final, so a partial index holds only the unsettled ones
-- (typically a few percent) and the question is an index-only range scan,
-- whatever the size of the history.
--
-- "Since" is when the normalized status last changed, or the import time for
-- an order the courier has never reported: the query in src/ledger/trace.rs
-- repeats this expression and this predicate word for word, which is what
-- lets the planner use the index (a unit test there checks they match). The
-- final statuses are those of src/jobs/status.rs (`is_final`).
--
-- Nothing here touches the job ledger: `jobs` and `job_runs` inserts (the
-- queue's hot path) keep their existing indexes only. `orders` rows are
-- written by imports and status changes, far less often than job rows.
CREATE INDEX orders_unsettled_since_idx
    ON orders (store, (COALESCE(status_changed_at, imported_at)))
    INCLUDE (status)
    WHERE status IS NULL OR status NOT IN ('delivered', 'cancelled', 'returned');
