-- Pause, resume and exit (issue 16): a node's signed availability notices.
-- The newest notice taken from each node (replays of older ones are refused), and the
-- epochs it is paused: from_epoch (inclusive) to until_epoch (exclusive). A resumed or
-- ended pause keeps its row (until_epoch <= the epoch now) until it is older than the
-- clock skew window; rows of nodes forgotten by the prune go with them.
CREATE TABLE availability (
    node         BLOB PRIMARY KEY,
    issued_at_ms BIGINT NOT NULL,
    from_epoch   BIGINT NOT NULL,
    until_epoch  BIGINT NOT NULL
);

-- The epoch a node exited in (NULL: it has not). An exited key's announcements are refused.
ALTER TABLE nodes ADD COLUMN exited_epoch BIGINT;

-- Receipts and bytes accepted per (open epoch, seeder), kept with the receipts in one
-- transaction: the open epoch's estimate in GET /v1/seeders/{node} reads one row instead
-- of summing the epoch's receipts. Rows of closed epochs are deleted at each close (the
-- leaves hold those figures).
CREATE TABLE seeder_epoch_totals (
    epoch    BIGINT NOT NULL,
    seeder   BLOB NOT NULL,
    receipts BIGINT NOT NULL,
    bytes    BIGINT NOT NULL,
    PRIMARY KEY (epoch, seeder)
);
