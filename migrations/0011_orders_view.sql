-- The orders view (issue 12): `GET /admin/api/orders` lists cached orders
-- newest first with filters and a text search, `GET /admin/api/orders/stats`
-- counts them. Both answer in under 200 ms at a million orders
-- (`ordersync-dev bench`: orders_list_p99_ms, orders_stats_ms).

-- Each order's invoice state, kept on the order so the list filters on it
-- with an index and the counts below can group by it. Derived from
-- `invoices` and the payment step by `order_invoice_state()`, and kept
-- current by the triggers on those tables:
--   none       no invoice row
--   creating   a job holds the creation claim
--   voided     cancelled before any invoice was made; none will be
--   draft      docstatus 0 (invoices made before migration 0010 were drafts)
--   submitted  docstatus 1, no payment recorded
--   paid       a Payment Entry was recorded, or a historical (paid) invoice
--   cancelled  docstatus 2
--   existing   found in the ERP (the old system's), docstatus not looked at
ALTER TABLE orders ADD COLUMN invoice_state text NOT NULL DEFAULT 'none'
    CONSTRAINT orders_invoice_state_check CHECK (invoice_state IN
        ('none', 'creating', 'voided', 'draft', 'submitted', 'paid', 'cancelled', 'existing'));

CREATE FUNCTION order_invoice_state(p_order_id bigint) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT COALESCE((
        SELECT CASE
                   WHEN i.state = 'voided' THEN 'voided'
                   WHEN i.state = 'creating' THEN 'creating'
                   WHEN i.docstatus = 2 THEN 'cancelled'
                   WHEN i.kind = 'historical' OR EXISTS (
                        SELECT 1 FROM invoice_steps s
                        WHERE s.order_id = i.order_id AND s.step = 'payment' AND s.state = 'done')
                       THEN 'paid'
                   WHEN i.docstatus = 1 THEN 'submitted'
                   WHEN i.docstatus = 0 OR i.state = 'created' THEN 'draft'
                   ELSE 'existing'
               END
        FROM invoices i WHERE i.order_id = p_order_id), 'none')
$$;

-- Row triggers: invoice writes are one row at a time. The order row is
-- locked first, then the state read in a fresh statement (plpgsql under
-- READ COMMITTED): of two transactions changing one order's invoice and
-- payment at once, the second waits for the first to commit and sees its
-- change, so the last writer computes from both.
CREATE FUNCTION refresh_order_invoice_state() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    target bigint := CASE WHEN TG_OP = 'DELETE' THEN OLD.order_id ELSE NEW.order_id END;
BEGIN
    PERFORM 1 FROM orders WHERE id = target FOR UPDATE;
    UPDATE orders SET invoice_state = order_invoice_state(target)
    WHERE id = target AND invoice_state IS DISTINCT FROM order_invoice_state(target);
    RETURN NULL;
END
$$;

CREATE TRIGGER invoices_refresh_order_invoice_state
    AFTER INSERT OR UPDATE OR DELETE ON invoices
    FOR EACH ROW EXECUTE FUNCTION refresh_order_invoice_state();
CREATE TRIGGER invoice_steps_refresh_order_invoice_state
    AFTER INSERT OR UPDATE OR DELETE ON invoice_steps
    FOR EACH ROW EXECUTE FUNCTION refresh_order_invoice_state();

UPDATE orders o SET invoice_state = order_invoice_state(o.id)
WHERE EXISTS (SELECT 1 FROM invoices i WHERE i.order_id = o.id);

-- The counts: counting a million orders takes ~400 ms even from a covering
-- index, so they are kept as they change. A writer appends its changes to
-- `order_count_deltas` (append only: concurrent imports never wait on one
-- another's counter rows, nor deadlock); `order_counts` holds the folded
-- sums, and reading adds the two. `fold_order_count_deltas()` moves the
-- deltas into the sums (the api's upkeep runs it every few seconds).
CREATE TABLE order_counts (
    store         text           NOT NULL,
    shop_status   text           NOT NULL,
    -- '' for orders the courier has not reported (NULL cannot be in a key).
    status        text           NOT NULL,
    invoice_state text           NOT NULL,
    orders        bigint         NOT NULL,
    revenue       numeric(18, 2) NOT NULL,
    PRIMARY KEY (store, shop_status, status, invoice_state)
);

CREATE TABLE order_count_deltas (
    store         text           NOT NULL,
    shop_status   text           NOT NULL,
    status        text           NOT NULL,
    invoice_state text           NOT NULL,
    orders        bigint         NOT NULL,
    revenue       numeric(18, 2) NOT NULL
);

-- Statement triggers with transition tables: an import of 100 orders or a
-- poll of 500 appends one row per (store, statuses) it changed, not per
-- order; an update that changes none of the counted columns appends none.
CREATE FUNCTION record_order_count_deltas() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO order_count_deltas
        SELECT store, shop_status, COALESCE(status, ''), invoice_state, count(*), sum(total)
        FROM new_rows GROUP BY 1, 2, 3, 4;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO order_count_deltas
        SELECT store, shop_status, status, invoice_state, sum(orders), sum(revenue)
        FROM (SELECT store, shop_status, COALESCE(status, '') AS status, invoice_state,
                     -1 AS orders, -total AS revenue FROM old_rows
              UNION ALL
              SELECT store, shop_status, COALESCE(status, ''), invoice_state, 1, total FROM new_rows) d
        GROUP BY 1, 2, 3, 4
        HAVING sum(orders) <> 0 OR sum(revenue) <> 0;
    ELSE
        INSERT INTO order_count_deltas
        SELECT store, shop_status, COALESCE(status, ''), invoice_state, -count(*), -sum(total)
        FROM old_rows GROUP BY 1, 2, 3, 4;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER orders_count_inserts AFTER INSERT ON orders
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION record_order_count_deltas();
CREATE TRIGGER orders_count_updates AFTER UPDATE ON orders
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION record_order_count_deltas();
CREATE TRIGGER orders_count_deletes AFTER DELETE ON orders
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION record_order_count_deltas();

-- Fold the deltas into the sums; one folder at a time (the others skip).
-- Returns how many delta rows were folded.
CREATE FUNCTION fold_order_count_deltas() RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    folded bigint;
BEGIN
    IF NOT pg_try_advisory_xact_lock(hashtext('fold_order_count_deltas')) THEN
        RETURN 0;
    END IF;
    WITH moved AS (DELETE FROM order_count_deltas RETURNING *),
         summed AS (
             SELECT store, shop_status, status, invoice_state,
                    sum(orders) AS orders, sum(revenue) AS revenue, count(*) AS n
             FROM moved GROUP BY 1, 2, 3, 4
         ),
         applied AS (
             INSERT INTO order_counts
             SELECT store, shop_status, status, invoice_state, orders, revenue FROM summed
             ORDER BY 1, 2, 3, 4
             ON CONFLICT (store, shop_status, status, invoice_state) DO UPDATE
                 SET orders = order_counts.orders + EXCLUDED.orders,
                     revenue = order_counts.revenue + EXCLUDED.revenue
         )
    SELECT COALESCE(sum(n), 0) INTO folded FROM summed;
    DELETE FROM order_counts WHERE orders = 0 AND revenue = 0;
    RETURN folded;
END
$$;

-- Start from the orders as they are.
INSERT INTO order_counts
SELECT store, shop_status, COALESCE(status, ''), invoice_state, count(*), sum(total)
FROM orders GROUP BY 1, 2, 3, 4;

-- The list is newest first (by id, which grows with import time) under any
-- one filter; with several, the planner walks the most selective of these
-- and checks the rest on the rows it meets.
CREATE INDEX orders_store_id_idx ON orders (store, id);
CREATE INDEX orders_shop_status_id_idx ON orders (shop_status, id);
CREATE INDEX orders_status_id_idx ON orders (status, id);
CREATE INDEX orders_invoice_state_id_idx ON orders (invoice_state, id);

-- Text search on reference, customer name or phone: a substring match
-- (`LIKE '%...%'`) served by a trigram index over the three, lower-cased.
-- The query repeats `order_search_text(...)` exactly (src/ledger/orders_view.rs).
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE FUNCTION order_search_text(reference text, customer_name text, phone text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT lower(reference || ' ' || COALESCE(customer_name, '') || ' ' || COALESCE(phone, ''))
$$;
CREATE INDEX orders_search_trgm_idx ON orders
    USING gin (order_search_text(reference, customer_name, phone) gin_trgm_ops);
