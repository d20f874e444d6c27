-- The log viewer's filtered question (a server's failed creates) and the
-- "Retry all N like this" count behind it read the rows' service ids: with
-- service_id in the index both are index-only scans, not a heap visit per
-- matching row. Replaces the index of 20261122000002 (same key).
DROP INDEX provisioning_log_server_status_action_idx;
CREATE INDEX provisioning_log_server_status_action_idx
    ON provisioning_log (server_id, status, action, id DESC) INCLUDE (service_id);
