-- DSI oracle schema (PostgreSQL). Keep in step with ../sqlite/0001_initial.sql.
-- u64 values are stored as BIGINT bit patterns, u128 amounts as decimal TEXT.

CREATE TABLE manifests (
    content_id    BYTEA PRIMARY KEY,
    bytes         BYTEA NOT NULL,
    name          TEXT NOT NULL,
    size          BIGINT NOT NULL,
    registered_ms BIGINT NOT NULL
);

CREATE TABLE chunks (
    chunk      BYTEA NOT NULL,
    content_id BYTEA NOT NULL,
    length     BIGINT NOT NULL,
    PRIMARY KEY (chunk, content_id)
);
CREATE INDEX chunks_by_content ON chunks (content_id);

CREATE TABLE nodes (
    node          BYTEA PRIMARY KEY,
    url           TEXT NOT NULL,
    payout        BYTEA NOT NULL,
    issued_at_ms  BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    first_seen_ms BIGINT NOT NULL
);

CREATE TABLE holdings (
    node       BYTEA NOT NULL,
    content_id BYTEA NOT NULL,
    PRIMARY KEY (node, content_id)
);
CREATE INDEX holdings_by_content ON holdings (content_id);

CREATE TABLE receipts (
    epoch        BIGINT NOT NULL,
    downloader   BYTEA NOT NULL,
    seeder       BYTEA NOT NULL,
    chunk        BYTEA NOT NULL,
    bytes        BIGINT NOT NULL,
    issued_at_ms BIGINT NOT NULL,
    nonce        BIGINT NOT NULL,
    signature    BYTEA NOT NULL,
    PRIMARY KEY (epoch, downloader, seeder, chunk)
);

CREATE TABLE epochs (
    epoch            BIGINT PRIMARY KEY,
    status           TEXT NOT NULL,
    root             BYTEA NOT NULL,
    total            TEXT NOT NULL,
    seeders          BIGINT NOT NULL,
    receipts         BIGINT NOT NULL,
    batch_content_id BYTEA NOT NULL,
    batch_file       TEXT NOT NULL,
    closed_at_ms     BIGINT NOT NULL,
    close_duration_ms BIGINT NOT NULL
);

CREATE TABLE leaves (
    epoch            BIGINT NOT NULL,
    seeder           BYTEA NOT NULL,
    payout           BYTEA NOT NULL,
    amount           TEXT NOT NULL,
    cumulative       TEXT NOT NULL,
    bandwidth_amount TEXT NOT NULL,
    storage_amount   TEXT NOT NULL,
    bytes_served     BIGINT NOT NULL,
    receipts         BIGINT NOT NULL,
    reputation       BIGINT NOT NULL,
    proof            BYTEA NOT NULL,
    PRIMARY KEY (epoch, seeder)
);
CREATE INDEX leaves_by_seeder ON leaves (seeder, epoch);

CREATE TABLE seeders (
    seeder        BYTEA PRIMARY KEY,
    cumulative    TEXT NOT NULL,
    reputation    BYTEA NOT NULL,
    updated_epoch BIGINT NOT NULL
);

CREATE TABLE audits (
    epoch   BIGINT NOT NULL,
    seeder  BYTEA NOT NULL,
    chunk   BYTEA NOT NULL,
    outcome TEXT NOT NULL,
    detail  TEXT NOT NULL,
    at_ms   BIGINT NOT NULL
);
CREATE INDEX audits_by_seeder ON audits (seeder, epoch);
