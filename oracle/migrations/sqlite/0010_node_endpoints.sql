-- Where a node is reached over iroh (issue 17): its signed announcement's endpoint (relay
-- URLs and direct addresses) as JSON, NULL when it announced none. The tracker returns it
-- with the node in its peer lists.
ALTER TABLE nodes ADD COLUMN endpoint TEXT;
