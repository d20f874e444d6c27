-- Client mail, written in the same transaction as the state change it tells
-- about and sent by a job (key = the first job's id; retries carry it too).
-- No secret is copied here: the password is opened from the service's own
-- sealed column when the message is rendered, so nothing stays behind.
CREATE TABLE mail_outbox (
    id          BIGSERIAL PRIMARY KEY,
    service_id  BIGINT NOT NULL REFERENCES services (id) ON DELETE CASCADE,
    kind        TEXT NOT NULL CHECK (kind IN ('welcome', 'password_changed')),
    recipient   TEXT NOT NULL,
    key         TEXT NOT NULL UNIQUE,
    status      TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT,
    sent_at     TIMESTAMPTZ,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX mail_outbox_service ON mail_outbox (service_id, kind, id DESC);
