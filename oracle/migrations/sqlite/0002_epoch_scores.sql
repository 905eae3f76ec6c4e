-- Reputation scores computed at each epoch close, submitted to the reputation contract.
CREATE TABLE epoch_scores (
    epoch BIGINT NOT NULL,
    node  BLOB NOT NULL,
    score BIGINT NOT NULL,
    PRIMARY KEY (epoch, node)
);
