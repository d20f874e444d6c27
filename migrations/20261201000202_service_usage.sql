-- What the Panel last said about a service's account (POST .../sync): disk and
-- bandwidth use, and its status there.
ALTER TABLE services
    ADD COLUMN usage        JSONB,
    ADD COLUMN panel_status TEXT,
    ADD COLUMN synced_at    TIMESTAMPTZ;
