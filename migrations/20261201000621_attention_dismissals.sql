-- An admin took a failed service off the Needs attention page. The failure it
-- dismissed is kept (the service's last_error then): a new failure writes a
-- new last_error, which no dismissal matches, so the service shows again.
-- Rows are never deleted with the failure: they are the page's history.
CREATE TABLE attention_dismissals (
    id bigserial PRIMARY KEY,
    service_id bigint NOT NULL REFERENCES services (id) ON DELETE CASCADE,
    admin_id bigint REFERENCES admin_users (id) ON DELETE SET NULL,
    admin_email text NOT NULL,
    last_error jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX attention_dismissals_service ON attention_dismissals (service_id, id DESC);
