-- Commerce provisioning schema. Statuses are constrained, not free text; the
-- provisioning log has no foreign keys so it outlives what it describes.

CREATE TABLE admin_users (
    id            BIGSERIAL PRIMARY KEY,
    email         TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX admin_users_email_key ON admin_users (lower(email));

CREATE TABLE admin_sessions (
    id           TEXT PRIMARY KEY,              -- sha256 of the cookie value
    admin_id     BIGINT NOT NULL REFERENCES admin_users (id) ON DELETE CASCADE,
    csrf_token   TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX admin_sessions_expires_idx ON admin_sessions (expires_at);

CREATE TABLE api_tokens (
    id           BIGSERIAL PRIMARY KEY,
    name         TEXT NOT NULL CHECK (length(trim(name)) > 0),
    token_hash   TEXT NOT NULL,                 -- sha256 hex of the token
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_used_at TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ,
    CONSTRAINT api_tokens_hash_key UNIQUE (token_hash)
);

CREATE TABLE clients (
    id         BIGSERIAL PRIMARY KEY,
    email      TEXT NOT NULL CHECK (position('@' in email) > 1),
    name       TEXT NOT NULL CHECK (length(trim(name)) > 0),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX clients_email_key ON clients (lower(email));

CREATE TABLE server_groups (
    id         BIGSERIAL PRIMARY KEY,
    name       TEXT NOT NULL CHECK (length(trim(name)) > 0),
    placement  TEXT NOT NULL DEFAULT 'least_full' CHECK (placement IN ('least_full', 'fill')),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT server_groups_name_key UNIQUE (name)
);

CREATE TABLE servers (
    id                 BIGSERIAL PRIMARY KEY,
    name               TEXT NOT NULL CHECK (length(trim(name)) > 0),
    module             TEXT NOT NULL,
    group_id           BIGINT NOT NULL REFERENCES server_groups (id) ON DELETE RESTRICT,
    credentials        JSONB NOT NULL DEFAULT '{}'::jsonb,   -- non-secret fields only
    secrets            BYTEA,                                -- AES-256-GCM sealed JSON of secret fields
    secrets_set        TEXT[] NOT NULL DEFAULT '{}',         -- names of the secret fields that hold a value
    max_accounts       INTEGER NOT NULL DEFAULT 0 CHECK (max_accounts >= 0),  -- 0 = unlimited
    account_count      INTEGER NOT NULL DEFAULT 0 CHECK (account_count >= 0),
    enabled            BOOLEAN NOT NULL DEFAULT true,
    health_status      TEXT NOT NULL DEFAULT 'unknown' CHECK (health_status IN ('online', 'offline', 'unknown')),
    last_checked_at    TIMESTAMPTZ,
    latency_ms         INTEGER,
    last_error         JSONB,
    panel_name         TEXT,
    panel_version      TEXT,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT servers_name_key UNIQUE (name),
    -- Capacity is an invariant of the row, so concurrent placements cannot overfill.
    CONSTRAINT servers_capacity_check CHECK (max_accounts = 0 OR account_count <= max_accounts)
);
CREATE INDEX servers_group_idx ON servers (group_id);

CREATE TABLE products (
    id                 BIGSERIAL PRIMARY KEY,
    name               TEXT NOT NULL CHECK (length(trim(name)) > 0),
    module             TEXT NOT NULL,
    group_id           BIGINT NOT NULL REFERENCES server_groups (id) ON DELETE RESTRICT,
    package            TEXT NOT NULL CHECK (length(package) > 0),   -- exact, case-sensitive
    disk_limit_mb      BIGINT NOT NULL DEFAULT 0 CHECK (disk_limit_mb >= 0),
    bandwidth_limit_mb BIGINT NOT NULL DEFAULT 0 CHECK (bandwidth_limit_mb >= 0),
    auto_setup         TEXT NOT NULL DEFAULT 'on_order' CHECK (auto_setup IN ('on_order', 'on_payment', 'manual')),
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT products_name_key UNIQUE (name)
);

CREATE TABLE orders (
    id         BIGSERIAL PRIMARY KEY,
    client_id  BIGINT NOT NULL REFERENCES clients (id) ON DELETE RESTRICT,
    status     TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'paid', 'cancelled')),
    paid_at    TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK ((status = 'paid') = (paid_at IS NOT NULL) OR status = 'cancelled')
);
CREATE INDEX orders_client_idx ON orders (client_id);

CREATE TABLE services (
    id                     BIGSERIAL PRIMARY KEY,
    order_id               BIGINT NOT NULL REFERENCES orders (id) ON DELETE RESTRICT,
    client_id              BIGINT NOT NULL REFERENCES clients (id) ON DELETE RESTRICT,
    product_id             BIGINT NOT NULL REFERENCES products (id) ON DELETE RESTRICT,
    server_id              BIGINT REFERENCES servers (id) ON DELETE RESTRICT,
    domain                 TEXT NOT NULL,
    username               TEXT NOT NULL CHECK (username ~ '^[a-z][a-z0-9]{0,15}$'),
    password_sealed        BYTEA NOT NULL,
    status                 TEXT NOT NULL DEFAULT 'pending'
                           CHECK (status IN ('pending', 'provisioning', 'active', 'suspended', 'terminated', 'failed')),
    panel_account_id       TEXT,
    last_error             JSONB,
    -- An earlier create was sent but its answer never came: a 409 later means
    -- the account probably exists and a person must look.
    create_outcome_unknown BOOLEAN NOT NULL DEFAULT false,
    created_at             TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at             TIMESTAMPTZ NOT NULL DEFAULT now(),
    activated_at           TIMESTAMPTZ,
    suspended_at           TIMESTAMPTZ,
    terminated_at          TIMESTAMPTZ,
    CONSTRAINT services_username_key UNIQUE (username),
    CHECK (status NOT IN ('active', 'suspended') OR (panel_account_id IS NOT NULL AND server_id IS NOT NULL))
);
CREATE INDEX services_status_idx ON services (status, id DESC);
CREATE INDEX services_server_idx ON services (server_id, id DESC);
CREATE INDEX services_product_idx ON services (product_id, id DESC);
CREATE INDEX services_client_idx ON services (client_id, id DESC);
CREATE INDEX services_order_idx ON services (order_id);
CREATE INDEX services_domain_idx ON services (lower(domain) text_pattern_ops);

CREATE TABLE provisioning_log (
    id           BIGSERIAL PRIMARY KEY,
    service_id   BIGINT,          -- no FK: the log outlives the service
    server_id    BIGINT,
    module       TEXT NOT NULL,
    action       TEXT NOT NULL CHECK (action IN ('create', 'suspend', 'unsuspend', 'terminate', 'info', 'test_connection')),
    attempt      INTEGER NOT NULL DEFAULT 1 CHECK (attempt >= 1),
    status       TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'success', 'failed')),
    http_status  INTEGER,
    request      JSONB,           -- method, path, body with secrets redacted
    response     JSONB,           -- status, body (capped, redacted)
    error        JSONB,           -- kind, message, hint, retryable
    error_kind   TEXT,
    message      TEXT,
    duration_ms  INTEGER,
    triggered_by TEXT NOT NULL CHECK (triggered_by IN ('admin', 'api', 'order', 'system')),
    job_id       TEXT,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at  TIMESTAMPTZ
);
CREATE INDEX provisioning_log_created_idx ON provisioning_log (created_at DESC, id DESC);
CREATE INDEX provisioning_log_service_idx ON provisioning_log (service_id, id DESC);
CREATE INDEX provisioning_log_server_idx ON provisioning_log (server_id, id DESC);
CREATE INDEX provisioning_log_status_idx ON provisioning_log (status, id DESC);
CREATE INDEX provisioning_log_action_idx ON provisioning_log (action, id DESC);

-- A running provisioning call holds its service until this time, so a job that
-- runs twice (at-least-once delivery) never calls the Panel twice at once.
ALTER TABLE services ADD COLUMN lease_until TIMESTAMPTZ;
