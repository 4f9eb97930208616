-- The event log: the source of truth. Append-only; positions are gap-free and assigned
-- in commit order because every append takes the single row of event_log_head.

CREATE TABLE event_log_head (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    position  bigint  NOT NULL
);
INSERT INTO event_log_head (singleton, position) VALUES (true, 0);

CREATE TABLE events (
    position        bigint      PRIMARY KEY CHECK (position > 0),
    event_id        uuid        NOT NULL UNIQUE,
    stream_id       text        NOT NULL,
    stream_category text        NOT NULL,
    stream_version  bigint      NOT NULL CHECK (stream_version > 0),
    workspace_id    uuid        NOT NULL,
    event_type      text        NOT NULL,
    schema_version  integer     NOT NULL,
    payload         bytea       NOT NULL,
    actor           text        NOT NULL,
    correlation_id  uuid        NOT NULL,
    causation_id    uuid,
    recorded_at     timestamptz NOT NULL,
    prev_hash       bytea,
    hash            bytea       NOT NULL,
    CONSTRAINT events_stream_version_key UNIQUE (stream_id, stream_version)
);
CREATE INDEX events_workspace_position ON events (workspace_id, position);

-- The application never changes history; make the database say so too.
CREATE FUNCTION events_are_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events are append-only (% refused)', TG_OP;
END
$$;
CREATE TRIGGER events_no_update_or_delete BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_are_append_only();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_are_append_only();

-- Aggregate state at a stream version, so loading does not replay long streams.
CREATE TABLE aggregate_snapshots (
    stream_id        text        PRIMARY KEY,
    snapshot_version integer     NOT NULL,
    stream_version   bigint      NOT NULL,
    position         bigint      NOT NULL,
    state            bytea       NOT NULL,
    taken_at         timestamptz NOT NULL DEFAULT now()
);

-- How far the outbox relay has published to JetStream.
CREATE TABLE relay_checkpoints (
    name       text        PRIMARY KEY,
    position   bigint      NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- How far each projector's read model has folded the log; written in the same
-- transaction as the read model, so a redelivered event is a no-op.
CREATE TABLE projector_checkpoints (
    name       text        PRIMARY KEY,
    position   bigint      NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
