-- Since when a server has had its current health, and why (a test, or a create
-- failure that proved the server unusable and took it out of placement).
ALTER TABLE servers
    ADD COLUMN health_since timestamptz,
    ADD COLUMN health_reason text;
