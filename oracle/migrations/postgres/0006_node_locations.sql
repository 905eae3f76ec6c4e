-- Where each node announced from (issue 15 review): the network location (8 bytes,
-- `dsi_protocol::Location`) of the announcement's source address, NULL when it has none (a
-- private address on a public network). Replicas count by it; live keys per location are
-- bounded (`tracker.max_nodes_per_location`).
ALTER TABLE nodes ADD COLUMN location BYTEA;
CREATE INDEX nodes_by_location ON nodes (location, expires_at_ms);

-- The last epoch each (node, funded content) run was proven: a run survives
-- `audit.seniority_grace_epochs` epochs without proof (an unreachable node, not a disproven
-- one). Rows written before were proven by the last close.
ALTER TABLE held_since ADD COLUMN proven BIGINT;
UPDATE held_since SET proven = COALESCE((SELECT MAX(epoch) FROM epochs), since);

-- Whether an audited chunk belonged to a funded content: only those vet a new key (holding
-- junk does not). Audits recorded before counted, and keep counting.
ALTER TABLE audits ADD COLUMN funded BIGINT NOT NULL DEFAULT 1;
