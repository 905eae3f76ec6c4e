-- Receipts the oracle refused keep its verdict (rule code) for the operator; receipts it
-- accepted are deleted once acknowledged.
ALTER TABLE receipts ADD COLUMN oracle_verdict TEXT;
