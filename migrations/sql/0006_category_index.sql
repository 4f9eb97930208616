-- Projectors read one stream category each; this index serves their gap reads, rebuilds
-- and read-your-writes checks without walking past the (many) content events.
CREATE INDEX events_by_category ON events (stream_category, position);
