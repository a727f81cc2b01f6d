-- Sessions signed in at or before this time are no longer honoured: set when an account is
-- deactivated or its password replaced, so a session left open on a lost laptop does not come
-- back when the account is reactivated. NULL: every session within its lifetime is honoured.
ALTER TABLE users ADD COLUMN sessions_valid_from TIMESTAMPTZ;
