-- How many times each task has been claimed, ever. Unlike `attempt`, it is never reset (not by
-- a newer version, a retry or a release), so a claim that returns 1 knows that no worker before
-- it can have sent anything for this order to this destination: the ERP's sales order is then
-- created without looking for it first (a 409 on its external id still leads to a find and an
-- update). Tasks that exist already count as claimed once, so they keep looking first.
ALTER TABLE sync_tasks ADD COLUMN claims INTEGER NOT NULL DEFAULT 0;
UPDATE sync_tasks SET claims = 1;
