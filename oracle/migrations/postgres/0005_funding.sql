-- The off-chain funding ledger (issue 15): sponsorships of contents, downloaders' credit,
-- what each closed epoch debited, and how long each node has held each funded content.
-- Amounts are decimal TEXT (u128).
CREATE TABLE sponsorships (
    content     BYTEA NOT NULL,
    per_epoch   TEXT NOT NULL,
    replicas    BIGINT NOT NULL,
    first_epoch BIGINT NOT NULL,
    last_epoch  BIGINT NOT NULL,
    funded_at_ms BIGINT NOT NULL
);
CREATE INDEX sponsorships_content ON sponsorships (content);
CREATE TABLE credits (
    downloader  BYTEA NOT NULL,
    amount      TEXT NOT NULL,
    funded_at_ms BIGINT NOT NULL
);
CREATE INDEX credits_downloader ON credits (downloader);
CREATE TABLE debits (
    epoch      BIGINT NOT NULL,
    downloader BYTEA NOT NULL,
    amount     TEXT NOT NULL,
    PRIMARY KEY (epoch, downloader)
);
CREATE INDEX debits_downloader ON debits (downloader);
-- A node's current run of proven epochs holding a funded content starts at since.
CREATE TABLE held_since (
    node    BYTEA NOT NULL,
    content BYTEA NOT NULL,
    since   BIGINT NOT NULL,
    PRIMARY KEY (node, content)
);
