-- Document sharing: explicit shares per document and the workspace's default role.

ALTER TABLE rm_workspaces ADD COLUMN default_document_role text DEFAULT 'editor';

CREATE TABLE rm_document_shares (
    document_id  uuid NOT NULL,
    workspace_id uuid NOT NULL,
    user_id      text NOT NULL,
    role         text NOT NULL,
    PRIMARY KEY (document_id, user_id)
);
CREATE INDEX rm_document_shares_by_user ON rm_document_shares (user_id, document_id);
