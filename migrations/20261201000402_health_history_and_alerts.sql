-- The last results of each server's connection tests (the server page's
-- chart), whether each one changed the server's status, the scheduled sweep's
-- claim per period, and the alerts sent to admins.
CREATE TABLE server_health_history (
    id bigserial PRIMARY KEY,
    server_id bigint NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    status text NOT NULL CHECK (status IN ('online', 'offline')),
    latency_ms integer,
    error_kind text,
    changed boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX server_health_history_server ON server_health_history (server_id, id DESC);

CREATE TABLE schedule_runs (
    name text PRIMARY KEY,
    last_run_at timestamptz NOT NULL DEFAULT 'epoch',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE alerts (
    id bigserial PRIMARY KEY,
    event text NOT NULL CHECK (event IN ('service_failed', 'service_needs_attention', 'server_offline', 'server_online', 'test')),
    service_id bigint,
    server_id bigint,
    kind text,
    message text NOT NULL,
    hint text,
    -- pending: to deliver; sent; failed (gave up); recorded (no webhook configured).
    status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed', 'recorded')),
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error text,
    sent_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX alerts_pending ON alerts (next_attempt_at) WHERE status = 'pending';
