-- Live documents: content snapshots, the presence log and "who is here now".

-- Merged Yjs state of a document's content stream up to `version` (its stream version) /
-- `position`. An optimisation only: loading is snapshot + the content events after it,
-- and the events stay. Small states inline, large ones in the blob store.
CREATE TABLE document_snapshots (
    document_id  uuid        PRIMARY KEY,
    workspace_id uuid        NOT NULL,
    version      bigint      NOT NULL,
    position     bigint      NOT NULL,
    state_vector bytea       NOT NULL,
    state        bytea,
    blob_key     text,
    size_bytes   bigint      NOT NULL,
    taken_at     timestamptz NOT NULL DEFAULT now(),
    CHECK ((state IS NULL) <> (blob_key IS NULL))
);

-- Presence changes (joined, left, timed_out, changed), kept for a retention period.
CREATE TABLE presence_log (
    id           bigserial   PRIMARY KEY,
    workspace_id uuid        NOT NULL,
    document_id  uuid        NOT NULL,
    session_id   uuid        NOT NULL,
    user_id      text        NOT NULL,
    client_id    bigint,
    kind         text        NOT NULL,
    state        jsonb,
    recorded_at  timestamptz NOT NULL
);
CREATE INDEX presence_log_by_time ON presence_log (recorded_at);
CREATE INDEX presence_log_by_document ON presence_log (document_id, recorded_at);

-- Who is connected to a document now; rows whose instance stopped renewing them
-- (last_seen) are ignored by queries and swept.
CREATE TABLE presence_now (
    document_id  uuid        NOT NULL,
    session_id   uuid        NOT NULL,
    workspace_id uuid        NOT NULL,
    user_id      text        NOT NULL,
    instance_id  uuid        NOT NULL,
    read_only    boolean     NOT NULL,
    joined_at    timestamptz NOT NULL,
    last_seen    timestamptz NOT NULL,
    state        jsonb,
    PRIMARY KEY (document_id, session_id)
);
