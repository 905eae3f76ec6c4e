-- Seeding receipts this node holds as a seeder. One receipt per (downloader, chunk, epoch):
-- a downloader pays for a chunk once per epoch. `encoded` is SCALE(SignedReceipt), the exact
-- bytes that will be forwarded to the oracle; the other columns are for queries.
CREATE TABLE receipts (
    downloader BLOB NOT NULL,
    chunk BLOB NOT NULL,
    epoch INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    issued_at_ms INTEGER NOT NULL,
    received_at_ms INTEGER NOT NULL,
    encoded BLOB NOT NULL,
    PRIMARY KEY (downloader, chunk, epoch)
);
CREATE INDEX receipts_by_epoch ON receipts (epoch);
