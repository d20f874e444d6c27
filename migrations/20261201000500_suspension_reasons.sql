-- Why a service is suspended (overdue, abuse, other) and the admin's note: an
-- unsuspend on payment (only_if_reason = overdue) must leave an abuse
-- suspension alone. Written when the suspend is asked for, cleared when an
-- unsuspend succeeds.
ALTER TABLE services
    ADD COLUMN suspension_reason TEXT
        CHECK (suspension_reason IN ('overdue', 'abuse', 'other')),
    ADD COLUMN suspension_note TEXT CHECK (char_length(suspension_note) <= 500);
UPDATE services SET suspension_reason = 'other' WHERE status = 'suspended';
