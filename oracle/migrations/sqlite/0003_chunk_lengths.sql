-- One length per chunk, fixed by the first manifest that names it. A later manifest that
-- gives the same chunk another length is refused (chunk_length_conflict), so no manifest
-- can rewrite the lengths honest receipts are checked against, and every oracle reloads
-- the same lengths whatever order it saw the manifests in.
CREATE TABLE chunk_lengths (
    chunk  BLOB PRIMARY KEY,
    length BIGINT NOT NULL
);
-- Existing data: the earliest registered manifest's length wins.
INSERT OR IGNORE INTO chunk_lengths (chunk, length)
    SELECT c.chunk, c.length FROM chunks c JOIN manifests m ON m.content_id = c.content_id
    ORDER BY m.registered_ms, m.content_id;
