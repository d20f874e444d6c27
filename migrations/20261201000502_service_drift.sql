-- Where the Panel disagrees with us (suspended there but active here, the
-- account missing there), as the last sync saw it. Shown, never acted on.
ALTER TABLE services ADD COLUMN drift TEXT;
CREATE INDEX services_drift ON services (id) WHERE drift IS NOT NULL;
