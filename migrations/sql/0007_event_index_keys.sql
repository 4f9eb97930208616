-- Every append writes one entry into each index of `events`; keep only the indexes that
-- queries use, and compare their text keys byte by byte.
--
-- * events_workspace_position served no query: a workspace's events are read from
--   JetStream (subjects `<prefix>.events.<workspace>.>`) or by stream. Dropping it makes
--   every append cheaper.
-- * stream_id and stream_category are ASCII identifiers (`<category>-<uuid>`); under the
--   "C" collation their index comparisons are memcmp instead of the database locale's
--   strcoll, which is slower and differs from one machine's locale to the next.
DROP INDEX events_workspace_position;
ALTER TABLE events
    ALTER COLUMN stream_id TYPE text COLLATE "C",
    ALTER COLUMN stream_category TYPE text COLLATE "C";
