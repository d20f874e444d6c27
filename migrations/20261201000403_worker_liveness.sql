-- A service's lease names the worker process holding it; each process beats
-- here every 2 s, so a dead process's leases are taken over within seconds
-- instead of waiting for the lease to run out.
CREATE TABLE worker_heartbeats (
    worker_id text PRIMARY KEY,
    seen_at timestamptz NOT NULL DEFAULT now(),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE services ADD COLUMN leased_by text;
