-- Hostile traffic and bad data (issue 10).
--
-- `rejected_orders`: a shop order we could not store (a total out of
-- range, an order number another shop order already uses, a field that is
-- not what it must be). One bad order used to fail its whole import page
-- (and the store's import never moved past it) or answer a webhook with a
-- 500 (WooCommerce disables a webhook after a few). Now each one is recorded
-- here, naming the field and why, and the rest of the page proceeds. Keyed
-- by the shop's own id: a redelivery or the next import of the same order
-- bumps `times_seen` instead of adding rows, so the table is as large as the
-- number of distinct bad orders. `resolved_at` is set when a later version
-- of the order is stored (the shop fixed it); open rejections are the ones
-- without it.
CREATE TABLE rejected_orders (
    store         text        NOT NULL,
    shop_order_id bigint      NOT NULL,
    -- "{STORE}-{number}" when the number was readable.
    reference     text,
    -- The order field at fault (`total`, `number`, `date_modified_gmt`, ...).
    field         text        NOT NULL,
    reason        text        NOT NULL,
    -- Where it came from last: the periodic import or a webhook.
    source        text        NOT NULL CHECK (source IN ('import', 'webhook')),
    first_seen_at timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now(),
    times_seen    integer     NOT NULL DEFAULT 1 CHECK (times_seen > 0),
    -- The import job that saw it last (NULL for a webhook).
    job_id        uuid,
    resolved_at   timestamptz,
    PRIMARY KEY (store, shop_order_id)
);

CREATE INDEX rejected_orders_open_idx ON rejected_orders (last_seen_at DESC)
    WHERE resolved_at IS NULL;

-- Latest wins for courier statuses too: the courier's own time of the
-- status we hold (Maystro `last_update`). An observation older than it
-- (a page read before a webhook-triggered poll finished) changes nothing.
ALTER TABLE orders ADD COLUMN courier_updated_at timestamptz;

-- Deliveries older than the dedupe window are pruned by the api; a
-- redelivery older than that finds the ledger newer and changes nothing.
CREATE INDEX webhook_deliveries_received_at_idx ON webhook_deliveries (received_at);
