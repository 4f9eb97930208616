-- Document history (the `history` read model): edit sessions and the document's other
-- history entries, history snapshots (the merged Yjs state every K content versions, all
-- kept), who made which Yjs items, and named versions. Everything here is folded from the
-- log and rebuildable; readers see a document's rows through its workspace or through a
-- grant of that one document (share link, share), like rm_documents.

-- One row per entry of a document's history list, keyed by the position of its first
-- event. `kind` is `edits` (one actor's edit session: no pause longer than the session
-- gap), `restored` (a restore applied as one edit), `VersionNamed`, `VersionDeleted`, or
-- the type of a metadata event of the document (`DocumentRenamed`, `DocumentShared`...).
CREATE TABLE rm_history_entries (
    document_id   uuid        NOT NULL,
    position      bigint      NOT NULL,
    workspace_id  uuid        NOT NULL,
    kind          text        NOT NULL COLLATE "C",
    actor         text        NOT NULL,
    last_position bigint      NOT NULL,
    first_version bigint,
    last_version  bigint,
    edits         integer     NOT NULL,
    inserted      bigint      NOT NULL,
    deleted       bigint      NOT NULL,
    started_at    timestamptz NOT NULL,
    ended_at      timestamptz NOT NULL,
    details       jsonb       NOT NULL,
    PRIMARY KEY (document_id, position)
);
-- Newest first, by the position of the entry's last event (each event is in one entry).
CREATE UNIQUE INDEX rm_history_entries_newest ON rm_history_entries (document_id, last_position);

-- Each actor's open edit session per document (what the next edit extends).
CREATE TABLE rm_history_open_sessions (
    document_id    uuid        NOT NULL,
    actor          text        NOT NULL,
    workspace_id   uuid        NOT NULL,
    entry_position bigint      NOT NULL,
    last_at        timestamptz NOT NULL,
    PRIMARY KEY (document_id, actor)
);

-- The document's merged Yjs state (v1 update encoding) at every content version that is a
-- multiple of the snapshot interval, all kept: a point of history is this plus fewer than
-- K updates. lz4: decompressing is on the read path.
CREATE TABLE rm_history_snapshots (
    document_id  uuid        NOT NULL,
    version      bigint      NOT NULL,
    workspace_id uuid        NOT NULL,
    position     bigint      NOT NULL,
    recorded_at  timestamptz NOT NULL,
    state        bytea       COMPRESSION lz4 NOT NULL,
    PRIMARY KEY (document_id, version)
);
CREATE INDEX rm_history_snapshots_by_position ON rm_history_snapshots (document_id, position);
CREATE INDEX rm_history_snapshots_by_time ON rm_history_snapshots (document_id, recorded_at);

-- Who made which Yjs items: the clock range [first_clock, end_clock) of a Yjs client was
-- first delivered to the server by `actor` (the actor of the DocumentEdited events that
-- carried them). Attribution (blame, diff) looks items up here.
CREATE TABLE rm_history_authors (
    document_id  uuid   NOT NULL,
    client_id    bigint NOT NULL,
    first_clock  bigint NOT NULL,
    end_clock    bigint NOT NULL,
    actor        text   NOT NULL,
    workspace_id uuid   NOT NULL,
    PRIMARY KEY (document_id, client_id, first_clock)
);

-- Named versions of a document.
CREATE TABLE rm_document_versions (
    version_id       uuid        PRIMARY KEY,
    document_id      uuid        NOT NULL,
    workspace_id     uuid        NOT NULL,
    name             text        NOT NULL,
    content_version  bigint      NOT NULL,
    content_position bigint      NOT NULL,
    created_by       text        NOT NULL,
    created_at       timestamptz NOT NULL,
    position         bigint      NOT NULL
);
CREATE INDEX rm_document_versions_by_document ON rm_document_versions (document_id, content_version);

GRANT SELECT ON rm_history_entries, rm_history_open_sessions, rm_history_snapshots,
    rm_history_authors, rm_document_versions TO collab_reader;

ALTER TABLE rm_history_entries ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON rm_history_entries FOR SELECT TO collab_reader
    USING (collab_visible_workspace(workspace_id) OR collab_granted_document(document_id));
ALTER TABLE rm_history_open_sessions ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON rm_history_open_sessions FOR SELECT TO collab_reader
    USING (collab_visible_workspace(workspace_id) OR collab_granted_document(document_id));
ALTER TABLE rm_history_snapshots ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON rm_history_snapshots FOR SELECT TO collab_reader
    USING (collab_visible_workspace(workspace_id) OR collab_granted_document(document_id));
ALTER TABLE rm_history_authors ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON rm_history_authors FOR SELECT TO collab_reader
    USING (collab_visible_workspace(workspace_id) OR collab_granted_document(document_id));
ALTER TABLE rm_document_versions ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON rm_document_versions FOR SELECT TO collab_reader
    USING (collab_visible_workspace(workspace_id) OR collab_granted_document(document_id));
