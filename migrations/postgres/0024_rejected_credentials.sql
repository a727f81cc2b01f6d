-- Which credentials a destination rejected: the first 16 hex digits of the token's SHA-256,
-- kept when a 401 pauses it (never the token). A process that starts with other credentials
-- resumes the destination by itself; one started with the same credentials leaves it paused.
ALTER TABLE destinations ADD COLUMN rejected_credentials TEXT;
