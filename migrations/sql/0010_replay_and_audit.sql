-- Replay and audit.
--
-- Analytics consumers and auditors replay one workspace's events in position order over
-- HTTP (`GET /v1/workspaces/{ws}/events`, keyset pages `position > after`). Without an
-- index on (workspace_id, position) every page walks the whole log past other tenants'
-- events; migration 0007 dropped it while no query used it. Its cost on appends is
-- measured in BENCHMARKS.md.
CREATE INDEX events_by_workspace ON events (workspace_id, position);

-- The audit trail: who did what, when, to which document or member. One row per event,
-- except content edits: one row per actor per document per burst of editing (no pause
-- longer than the audit projector's gap), with the number of edits and the version
-- range. Keyed by the position of its first event, so a rebuild gives the same rows.
CREATE TABLE rm_audit_entries (
    workspace_id   uuid        NOT NULL,
    position       bigint      NOT NULL,
    last_position  bigint      NOT NULL,
    actor          text        NOT NULL,
    event_type     text        NOT NULL,
    summary        text        NOT NULL,
    document_id    uuid,
    member         text,
    stream_id      text        NOT NULL COLLATE "C",
    first_version  bigint      NOT NULL,
    last_version   bigint      NOT NULL,
    edits          integer     NOT NULL,
    started_at     timestamptz NOT NULL,
    recorded_at    timestamptz NOT NULL,
    PRIMARY KEY (workspace_id, position)
);
CREATE INDEX rm_audit_entries_by_actor ON rm_audit_entries (workspace_id, actor, position);
CREATE INDEX rm_audit_entries_by_type ON rm_audit_entries (workspace_id, event_type, position);
CREATE INDEX rm_audit_entries_by_document ON rm_audit_entries (workspace_id, document_id, position)
    WHERE document_id IS NOT NULL;
CREATE INDEX rm_audit_entries_by_time ON rm_audit_entries (workspace_id, started_at);

-- The edit burst still open per document and actor (which entry the next edit extends).
CREATE TABLE rm_audit_open_edits (
    document_id    uuid        NOT NULL,
    actor          text        NOT NULL,
    workspace_id   uuid        NOT NULL,
    entry_position bigint      NOT NULL,
    last_at        timestamptz NOT NULL,
    PRIMARY KEY (document_id, actor)
);

-- Names the summaries use, as the log last said them.
CREATE TABLE rm_audit_names (
    id           uuid PRIMARY KEY,
    workspace_id uuid NOT NULL,
    name         text NOT NULL
);

-- Every stream's last event as the audit projector saw it: verification compares the log
-- against it (a deleted last event of a stream leaves no gap in its chain), and signed
-- checkpoints are made from it.
CREATE TABLE rm_audit_stream_heads (
    stream_id       text   PRIMARY KEY COLLATE "C",
    workspace_id    uuid   NOT NULL,
    stream_category text   NOT NULL COLLATE "C",
    version         bigint NOT NULL,
    hash            bytea  NOT NULL,
    position        bigint NOT NULL
);
CREATE INDEX rm_audit_stream_heads_by_workspace ON rm_audit_stream_heads (workspace_id, position);

-- The newest signed checkpoint of each workspace, as the log says it.
CREATE TABLE rm_audit_checkpoints (
    workspace_id    uuid   PRIMARY KEY,
    covers_position bigint NOT NULL,
    position        bigint NOT NULL
);

GRANT SELECT ON rm_audit_entries, rm_audit_open_edits, rm_audit_names, rm_audit_stream_heads,
    rm_audit_checkpoints TO collab_reader;

ALTER TABLE rm_audit_entries ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON rm_audit_entries FOR SELECT TO collab_reader
    USING (collab_visible_workspace(workspace_id));
ALTER TABLE rm_audit_open_edits ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON rm_audit_open_edits FOR SELECT TO collab_reader
    USING (collab_visible_workspace(workspace_id));
ALTER TABLE rm_audit_names ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON rm_audit_names FOR SELECT TO collab_reader
    USING (collab_visible_workspace(workspace_id));
ALTER TABLE rm_audit_stream_heads ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON rm_audit_stream_heads FOR SELECT TO collab_reader
    USING (collab_visible_workspace(workspace_id));
ALTER TABLE rm_audit_checkpoints ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON rm_audit_checkpoints FOR SELECT TO collab_reader
    USING (collab_visible_workspace(workspace_id));
