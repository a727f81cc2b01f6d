-- The grouped queue narrowed to exceptions older than an age reads the per-cause summary less
-- the recent ones, found here by a range instead of by reading every open exception.
CREATE INDEX exceptions_by_age ON exceptions (status, created_at);
