-- Sponsorships and credits held by the reward_pool contract (issue 15): a sponsorship the
-- oracle mirrors from the chain keeps the contract's id, and each closed epoch records what
-- it draws on each such sponsorship, so its funding parts can be rebuilt at submission.
ALTER TABLE sponsorships ADD COLUMN chain_id BIGINT;
CREATE UNIQUE INDEX sponsorships_chain_id ON sponsorships (chain_id);
CREATE TABLE draws (
    epoch       BIGINT NOT NULL,
    sponsorship BIGINT NOT NULL,
    amount      TEXT NOT NULL,
    PRIMARY KEY (epoch, sponsorship)
);
