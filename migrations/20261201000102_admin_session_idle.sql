-- Admin sessions end after a period without requests (idle timeout), besides
-- their absolute lifetime (expires_at).
ALTER TABLE admin_sessions ADD COLUMN last_seen_at TIMESTAMPTZ NOT NULL DEFAULT now();
