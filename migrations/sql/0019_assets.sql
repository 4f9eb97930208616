-- The brand portal. Read model `files` gains tags, asset collections (folded from the
-- workspace streams) and which files are in each; read model `documents` gains which
-- documents are templates. `downloads` is the download center's own record (a zip being
-- built, or ready for a while): not a read model, nothing in the log is about it.
ALTER TABLE rm_files ADD COLUMN tags text[] NOT NULL DEFAULT '{}';
CREATE INDEX rm_files_tags ON rm_files USING gin (tags);

CREATE TABLE rm_collections (
    collection_id uuid        PRIMARY KEY,
    workspace_id  uuid        NOT NULL,
    name          text        NOT NULL,
    created_by    text        NOT NULL,
    created_at    timestamptz NOT NULL,
    position      bigint      NOT NULL
);
CREATE INDEX rm_collections_workspace ON rm_collections (workspace_id);

CREATE TABLE rm_collection_files (
    collection_id uuid        NOT NULL,
    file_id       uuid        NOT NULL,
    workspace_id  uuid        NOT NULL,
    added_at      timestamptz NOT NULL,
    position      bigint      NOT NULL,
    PRIMARY KEY (collection_id, file_id)
);
CREATE INDEX rm_collection_files_file ON rm_collection_files (file_id);

CREATE TABLE rm_document_templates (
    document_id  uuid PRIMARY KEY,
    workspace_id uuid NOT NULL
);
CREATE INDEX rm_document_templates_workspace ON rm_document_templates (workspace_id);

GRANT SELECT ON rm_collections, rm_collection_files, rm_document_templates TO collab_reader;
ALTER TABLE rm_collections ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON rm_collections FOR SELECT TO collab_reader
    USING (collab_visible_workspace(workspace_id));
ALTER TABLE rm_collection_files ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON rm_collection_files FOR SELECT TO collab_reader
    USING (collab_visible_workspace(workspace_id));
ALTER TABLE rm_document_templates ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON rm_document_templates FOR SELECT TO collab_reader
    USING (collab_visible_workspace(workspace_id) OR collab_granted_document(document_id));

-- Zips of files built by the `downloads` role and streamed to the blob store.
CREATE TABLE downloads (
    download_id  uuid        PRIMARY KEY,
    workspace_id uuid        NOT NULL,
    requested_by text        NOT NULL,
    -- The zip's name, and what goes in it (the files, in order).
    name         text        NOT NULL,
    file_ids     uuid[]      NOT NULL,
    -- queued | building | ready | failed | expired
    state        text        NOT NULL,
    bytes_done   bigint      NOT NULL DEFAULT 0,
    total_bytes  bigint      NOT NULL,
    error        text,
    attempts     integer     NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    ready_at     timestamptz,
    expires_at   timestamptz
);
CREATE INDEX downloads_due ON downloads (created_at) WHERE state IN ('queued', 'building');
CREATE INDEX downloads_expiring ON downloads (expires_at) WHERE state = 'ready';

GRANT SELECT ON downloads TO collab_reader;
ALTER TABLE downloads ENABLE ROW LEVEL SECURITY;
CREATE POLICY requester ON downloads FOR SELECT TO collab_reader
    USING (requested_by = current_setting('collab.user_id', true)
           AND collab_visible_workspace(workspace_id));
