-- Account changes beyond the seeds: change_package and change_password runs are
-- logged like the others; a service waiting for a package change names its
-- target product until the Panel confirms.
ALTER TABLE provisioning_log DROP CONSTRAINT provisioning_log_action_check;
ALTER TABLE provisioning_log ADD CONSTRAINT provisioning_log_action_check
    CHECK (action IN ('create', 'suspend', 'unsuspend', 'terminate', 'info', 'test_connection',
                      'change_package', 'change_password'));
ALTER TABLE services ADD COLUMN pending_product_id BIGINT REFERENCES products (id);
