-- Scheduled reconciliation: one row, claimed by moving `next_at` (whichever process moves it
-- runs the pass), and what the last pass found, for the metrics.
CREATE TABLE reconciliation (
    id               INTEGER PRIMARY KEY CHECK (id = 1),
    -- No pass starts before this instant.
    next_at          TIMESTAMPTZ NOT NULL,
    -- The next pass reads the orders the store changed at or after this instant.
    watermark        TIMESTAMPTZ NOT NULL,
    last_started_at  TIMESTAMPTZ,
    last_finished_at TIMESTAMPTZ,
    -- Orders the last successful pass listed, found missing here, and found behind the store.
    last_checked     BIGINT NOT NULL DEFAULT 0,
    last_missing     BIGINT NOT NULL DEFAULT 0,
    last_behind      BIGINT NOT NULL DEFAULT 0,
    passes           BIGINT NOT NULL DEFAULT 0,
    -- Why the last pass failed (NULL when it succeeded).
    last_error       TEXT
);
