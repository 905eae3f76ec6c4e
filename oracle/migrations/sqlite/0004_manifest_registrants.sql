-- Manifest bytes each node key registered (the key of the x-dsi-registrant header), so
-- what one key makes the oracle store is bounded (tracker.max_manifest_bytes_per_node).
-- A charge is never given back, not even when a manifest is dropped because a chunk's
-- bytes disproved one of its lengths. Manifests registered before this migration count
-- against nobody.
CREATE TABLE registrants (
    node           BLOB PRIMARY KEY,
    manifest_bytes BIGINT NOT NULL
);
