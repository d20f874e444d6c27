-- At most max_concurrent Panel calls in flight to one server, across every
-- worker process: one row per slot; a call holds a slot under a lease (so a
-- dead worker's slot frees itself) and gives it back when its run ends.
ALTER TABLE servers
    ADD COLUMN max_concurrent integer NOT NULL DEFAULT 4
        CONSTRAINT servers_max_concurrent_range CHECK (max_concurrent BETWEEN 1 AND 256);

CREATE TABLE server_call_slots (
    server_id bigint NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    slot integer NOT NULL CHECK (slot >= 0),
    service_id bigint,
    lease_until timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (server_id, slot)
);
CREATE INDEX server_call_slots_service ON server_call_slots (service_id) WHERE service_id IS NOT NULL;

-- Slot rows follow max_concurrent (rows past it are simply never taken).
CREATE FUNCTION server_call_slots_fill() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO server_call_slots (server_id, slot)
    SELECT NEW.id, g FROM generate_series(0, NEW.max_concurrent - 1) g
    ON CONFLICT DO NOTHING;
    RETURN NEW;
END $$;

CREATE TRIGGER servers_call_slots AFTER INSERT OR UPDATE OF max_concurrent ON servers
    FOR EACH ROW EXECUTE FUNCTION server_call_slots_fill();

INSERT INTO server_call_slots (server_id, slot)
SELECT s.id, g FROM servers s, generate_series(0, s.max_concurrent - 1) g;
