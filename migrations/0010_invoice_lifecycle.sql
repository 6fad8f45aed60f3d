-- The invoice lifecycle after creation (issue 12): which kind of invoice we
-- made, its last known docstatus, and one claim per later step.
--
-- `invoices.state` gains 'voided': a cancellation reached the order before
-- any invoice existed (none in the ERP either), so none will ever be made;
-- `create_invoice` then skips the order. The cancellation takes the same
-- creation claim ('creating') while it looks the ERP up, so it cannot race a
-- creation.
ALTER TABLE invoices DROP CONSTRAINT invoices_state_check;
ALTER TABLE invoices ADD CONSTRAINT invoices_state_check
    CHECK (state IN ('creating', 'created', 'existing', 'voided'));
-- 'live': submitted, unpaid, with stock and accounting effects (the live
-- sync); 'historical': paid, reporting only, no stock movement (the
-- backfill). NULL for invoices found in the ERP (the old system made them)
-- and for voided claims.
ALTER TABLE invoices ADD COLUMN kind text CHECK (kind IN ('live', 'historical'));
-- The ERP docstatus we last saw or set: 0 draft, 1 submitted, 2 cancelled.
ALTER TABLE invoices ADD COLUMN docstatus smallint CHECK (docstatus BETWEEN 0 AND 2);

-- One row per (order, step) of the lifecycle after creation. The primary key
-- is the exactly-once guarantee, as for `invoices` and `sms_messages`: a job
-- claims its step ('running', with a lease) before calling a provider; a
-- claim whose lease expired, whose holder failed for good, or that its own
-- job holds (a retry) is taken over after a look-up at the provider.
--   submit      the invoice went from draft to submitted
--   payment     a Payment Entry allocates the invoice's amount
--   cancel      the invoice (and any payment against it) was cancelled
--   write_back  the shop's order status was updated from the courier's
CREATE TABLE invoice_steps (
    order_id    bigint      NOT NULL REFERENCES orders (id),
    step        text        NOT NULL CHECK (step IN ('submit', 'payment', 'cancel', 'write_back')),
    state       text        NOT NULL CHECK (state IN ('running', 'done')),
    job_id      uuid        NOT NULL,
    claimed_at  timestamptz NOT NULL,
    done_at     timestamptz,
    -- The document the step made or acted on (Payment Entry name, invoice
    -- name, shop status written).
    result      text,
    -- What the step did, for the trace (e.g. payments cancelled first).
    detail      jsonb,
    PRIMARY KEY (order_id, step)
);

CREATE INDEX invoice_steps_done_idx ON invoice_steps (step, done_at) WHERE state = 'done';
