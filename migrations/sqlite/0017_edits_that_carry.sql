-- Whether an edit is laid onto the order's later versions (for the fields the store leaves
-- alone; `engine::edit::carry`). Edits saved before that rule were made "for this version
-- only" and stay so; every edit saved since carries (SyncDesk writes TRUE).
ALTER TABLE payload_edits ADD COLUMN carries BOOLEAN NOT NULL DEFAULT 0;
