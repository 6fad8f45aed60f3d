-- Delivery receipts of sent texts, as the gateway reports them afterwards
-- (Twilio's StatusCallback): the latest status it gave and when, and its
-- error code for a text that failed. NULL until a receipt arrives, and for
-- gateways that send none.
ALTER TABLE sms_messages
    ADD COLUMN delivery_status     text,
    ADD COLUMN delivery_error_code integer,
    ADD COLUMN delivery_updated_at timestamptz;

-- Receipts name the gateway's message id, not our key.
CREATE INDEX sms_messages_provider_message_id_idx
    ON sms_messages (provider_message_id) WHERE provider_message_id IS NOT NULL;
