-- Stores' orders as imported from the shop, enriched by the courier, ERP and SMS jobs.

CREATE TABLE orders (
    id                bigserial PRIMARY KEY,
    store             text        NOT NULL,
    shop_order_id     bigint      NOT NULL,
    -- "{STORE}-{number}": the courier's external_order_id and the ERP's po_no.
    reference         text        NOT NULL UNIQUE,
    shop_status       text        NOT NULL,
    payment_method    text        NOT NULL,
    total             numeric(14, 2) NOT NULL,
    currency          text,
    phone             text,
    customer_name     text,
    raw               jsonb       NOT NULL,
    shop_modified_at  timestamptz,
    tracking_number   text,
    courier_order_id  bigint,
    courier_code      integer,
    courier_label     text,
    -- Normalized courier status (see src/jobs/status.rs); NULL until first seen.
    status            text,
    status_changed_at timestamptz,
    last_polled_at    timestamptz,
    imported_at       timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (store, shop_order_id)
);

CREATE INDEX orders_store_tracking_idx ON orders (store) WHERE tracking_number IS NULL;
CREATE INDEX orders_store_status_idx ON orders (store, status);

CREATE TABLE order_status_history (
    id            bigserial PRIMARY KEY,
    order_id      bigint      NOT NULL REFERENCES orders (id),
    status        text        NOT NULL,
    courier_code  integer     NOT NULL,
    courier_label text        NOT NULL,
    observed_at   timestamptz NOT NULL DEFAULT now(),
    job_id        uuid
);

CREATE INDEX order_status_history_order_idx ON order_status_history (order_id, observed_at);

-- One ERP invoice per order. The row is claimed ('creating') before the ERP is
-- called, so two workers racing on one order cannot both create an invoice;
-- a claim whose lease expired (its worker died) is taken over after an ERP
-- look-up by po_no.
CREATE TABLE invoices (
    order_id     bigint      PRIMARY KEY REFERENCES orders (id),
    reference    text        NOT NULL,
    state        text        NOT NULL CHECK (state IN ('creating', 'created', 'existing')),
    erp_name     text,
    job_id       uuid        NOT NULL,
    claimed_at   timestamptz NOT NULL,
    settled_at   timestamptz
);

-- One SMS per (order, status): the primary key is the exactly-once guarantee.
CREATE TABLE sms_messages (
    order_id            bigint      NOT NULL REFERENCES orders (id),
    status              text        NOT NULL,
    state               text        NOT NULL CHECK (state IN ('sending', 'sent', 'unknown')),
    phone               text        NOT NULL,
    message             text        NOT NULL,
    provider_message_id text,
    job_id              uuid        NOT NULL,
    claimed_at          timestamptz NOT NULL,
    sent_at             timestamptz,
    PRIMARY KEY (order_id, status)
);

-- Per store and job kind: the import cursor and the last success, for
-- incremental imports and freshness.
CREATE TABLE store_sync_state (
    store           text        NOT NULL,
    kind            text        NOT NULL,
    cursor          timestamptz,
    last_success_at timestamptz,
    PRIMARY KEY (store, kind)
);
