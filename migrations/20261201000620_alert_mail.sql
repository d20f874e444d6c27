-- Alerts also go by mail to ALERT_EMAIL: the mail's own delivery state beside
-- the webhook's (NULL: no ALERT_EMAIL when the alert was raised), retried by
-- the same dispatcher with the same backoff.
ALTER TABLE alerts
    ADD COLUMN mail_status text CHECK (mail_status IN ('pending', 'sent', 'failed')),
    ADD COLUMN mail_attempts integer NOT NULL DEFAULT 0,
    ADD COLUMN mail_next_attempt_at timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN mail_last_error text,
    ADD COLUMN mail_sent_at timestamptz;
CREATE INDEX alerts_mail_pending ON alerts (mail_next_attempt_at) WHERE mail_status = 'pending';
