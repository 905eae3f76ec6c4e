-- A node's pauses, one row per interval: from_epoch (inclusive) to until_epoch
-- (exclusive). 0008 kept one per node, so a new pause replaced an earlier one whose
-- epochs were not all closed yet, and their late closes then audited the node. A row goes
-- once every epoch it covers is closed. `availability` keeps only the newest notice's
-- time, against replays.
CREATE TABLE pauses (
    node        BLOB NOT NULL,
    from_epoch  BIGINT NOT NULL,
    until_epoch BIGINT NOT NULL,
    PRIMARY KEY (node, from_epoch)
);
CREATE INDEX pauses_until ON pauses (until_epoch);

INSERT INTO pauses (node, from_epoch, until_epoch)
    SELECT node, from_epoch, until_epoch FROM availability WHERE until_epoch > from_epoch;
ALTER TABLE availability DROP COLUMN from_epoch;
ALTER TABLE availability DROP COLUMN until_epoch;

-- The leaves of exited keys the oracle claimed for them on chain (`chain.claim_for_exited`),
-- or left to the seeder (below `chain.exit_claim_min`, or refused by the pool): each leaf
-- is tried once.
CREATE TABLE exit_claims (
    epoch   BIGINT NOT NULL,
    seeder  BLOB NOT NULL,
    outcome TEXT NOT NULL,
    at_ms   BIGINT NOT NULL,
    PRIMARY KEY (epoch, seeder)
);
