-- The orders list without a search reads one index range per group of
-- orders sharing (store, shop status, courier status, invoice state): the
-- groups are the keys of `order_counts`, where an order the courier never
-- reported has status ''. See `ledger::orders_view::list`.
CREATE INDEX orders_list_groups_idx
    ON orders (store, shop_status, (COALESCE(status, '')), invoice_state, id);
