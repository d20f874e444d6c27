-- When a cluster-wide schedule (the usage sync) is due next: read and moved
-- under an advisory lock, so one process runs each round.
CREATE TABLE schedules (
    name        TEXT PRIMARY KEY,
    next_run_at TIMESTAMPTZ NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
