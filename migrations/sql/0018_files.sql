-- Files (read model `files`, folded from `file-<uuid>` streams): each workspace's files
-- and the documents they are attached to. The bytes live in the blob store, under keys
-- made of ids (`files/<workspace>/<file>/original`, `…/thumbnail-<px>`).
CREATE TABLE rm_files (
    file_id         uuid        PRIMARY KEY,
    workspace_id    uuid        NOT NULL,
    filename        text        NOT NULL,
    declared_type   text        NOT NULL,
    -- The type the content showed (once uploaded).
    content_type    text,
    size            bigint      NOT NULL,
    -- pending | uploaded | rejected | abandoned (deleted files are removed)
    state           text        NOT NULL,
    reason          text,
    uploaded_by     text        NOT NULL,
    multipart       boolean     NOT NULL,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    uploaded_at     timestamptz,
    -- {"small": {"width": …, "height": …}, "large": {…}}
    thumbnails      jsonb       NOT NULL DEFAULT '{}',
    thumbnail_error text,
    position        bigint      NOT NULL
);
CREATE INDEX rm_files_workspace ON rm_files (workspace_id, created_at DESC);
CREATE INDEX rm_files_pending ON rm_files (created_at) WHERE state = 'pending';

CREATE TABLE rm_file_attachments (
    file_id      uuid        NOT NULL,
    document_id  uuid        NOT NULL,
    workspace_id uuid        NOT NULL,
    attached_by  text        NOT NULL,
    attached_at  timestamptz NOT NULL,
    PRIMARY KEY (file_id, document_id)
);
CREATE INDEX rm_file_attachments_document ON rm_file_attachments (document_id, attached_at);

GRANT SELECT ON rm_files, rm_file_attachments TO collab_reader;

-- Who can read the workspace reads its files; who can read a document (shares, links,
-- service accounts; see migration 0009) reads the files attached to it.
ALTER TABLE rm_file_attachments ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON rm_file_attachments FOR SELECT TO collab_reader
    USING (collab_visible_workspace(workspace_id) OR collab_granted_document(document_id));
ALTER TABLE rm_files ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON rm_files FOR SELECT TO collab_reader
    USING (collab_visible_workspace(workspace_id)
           OR EXISTS (SELECT 1 FROM rm_file_attachments a
                      WHERE a.file_id = rm_files.file_id AND collab_granted_document(a.document_id)));
