-- The log viewer's usual question: this server's failed creates, newest first.
CREATE INDEX provisioning_log_server_status_action_idx
    ON provisioning_log (server_id, status, action, id DESC);
