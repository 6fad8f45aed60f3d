-- WooCommerce retries deliveries and its Delivery-ID is not a reliable key
-- (providers.md): a redelivery is recognised by (store, order id,
-- date_modified), and enqueues nothing the second time.
CREATE TABLE webhook_deliveries (
    store          text        NOT NULL,
    shop_order_id  bigint      NOT NULL,
    date_modified  text        NOT NULL,
    topic          text        NOT NULL,
    received_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (store, shop_order_id, date_modified)
);
