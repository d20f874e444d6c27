-- API token scopes: `provision` (orders, clients, services and their lifecycle,
-- the provisioning log, reading products) or `admin` (everything). Tokens made
-- before scopes keep working as admin tokens.
ALTER TABLE api_tokens
    ADD COLUMN scope TEXT NOT NULL DEFAULT 'admin' CHECK (scope IN ('provision', 'admin'));
