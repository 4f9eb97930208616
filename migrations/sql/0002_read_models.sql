-- Read models. Disposable: `collab projections rebuild` recreates them from the log.
-- Every table carries workspace_id (tenant isolation). Timestamps come from events,
-- never now(), so a rebuild gives identical rows.

CREATE TABLE rm_workspaces (
    workspace_id uuid        PRIMARY KEY,
    name         text        NOT NULL,
    created_by   text        NOT NULL,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    version      bigint      NOT NULL
);

CREATE TABLE rm_workspace_members (
    workspace_id uuid        NOT NULL,
    user_id      text        NOT NULL,
    role         text        NOT NULL,
    added_at     timestamptz NOT NULL,
    PRIMARY KEY (workspace_id, user_id)
);
CREATE INDEX rm_workspace_members_by_user ON rm_workspace_members (user_id, workspace_id);

CREATE TABLE rm_documents (
    document_id      uuid        PRIMARY KEY,
    workspace_id     uuid        NOT NULL,
    title            text        NOT NULL,
    folder           text        NOT NULL,
    archived         boolean     NOT NULL,
    created_by       text        NOT NULL,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    created_position bigint      NOT NULL,
    version          bigint      NOT NULL
);
CREATE INDEX rm_documents_by_workspace ON rm_documents (workspace_id, created_position DESC);
