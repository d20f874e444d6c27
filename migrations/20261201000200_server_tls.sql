-- Per-server TLS trust: verify (default), pinned (SHA-256 of the Panel's leaf
-- certificate, DER, lowercase hex) or insecure. SSL_VERIFY=false still wins.
ALTER TABLE servers
    ADD COLUMN tls_mode   TEXT NOT NULL DEFAULT 'verify' CHECK (tls_mode IN ('verify', 'pinned', 'insecure')),
    ADD COLUMN tls_sha256 TEXT CHECK (tls_sha256 IS NULL OR tls_sha256 ~ '^[0-9a-f]{64}$'),
    ADD CONSTRAINT servers_tls_pin_present CHECK (tls_mode <> 'pinned' OR tls_sha256 IS NOT NULL);
