-- Activity feeds: the `history` read model's entries (edit sessions per author and burst,
-- restores, metadata events) together with what people did in comment threads (read model
-- `activity`, folded from `thread-*` streams).
CREATE TABLE rm_activity (
    position     bigint      PRIMARY KEY,
    workspace_id uuid        NOT NULL,
    document_id  uuid        NOT NULL,
    -- commented | resolved | reopened
    kind         text        NOT NULL,
    -- As in the history: `user:<id>` or `service:<name>`.
    actor        text        NOT NULL,
    thread_id    uuid        NOT NULL,
    comment_id   uuid,
    recorded_at  timestamptz NOT NULL
);
CREATE INDEX rm_activity_document ON rm_activity (document_id, position);
CREATE INDEX rm_activity_workspace ON rm_activity (workspace_id, position);
CREATE INDEX rm_activity_comment ON rm_activity (comment_id);
-- The workspace feed reads the history newest first across the workspace's documents.
CREATE INDEX rm_history_entries_workspace ON rm_history_entries (workspace_id, last_position);

GRANT SELECT ON rm_activity TO collab_reader;
ALTER TABLE rm_activity ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON rm_activity FOR SELECT TO collab_reader
    USING (collab_visible_workspace(workspace_id) OR collab_granted_document(document_id));

-- Whether the current user may open a document, by the rules the document listing applies
-- within a workspace (owners, admins and auditors: all; members: their own, or all when the
-- workspace gives members a default role; anyone: what is shared with them). Runs with the
-- caller's row-level security (their memberships and their own shares are visible).
CREATE FUNCTION collab_opens_document(doc uuid, ws uuid, creator text) RETURNS boolean
    LANGUAGE sql STABLE AS $$
    SELECT EXISTS (
        SELECT 1 FROM rm_workspace_members m
        JOIN rm_workspaces w ON w.workspace_id = m.workspace_id
        WHERE m.workspace_id = ws AND m.user_id = collab_current_user()
          AND (m.role IN ('owner', 'admin', 'auditor')
               OR (m.role = 'member'
                   AND (creator = collab_current_user() OR w.default_document_role IS NOT NULL))))
    OR EXISTS (
        SELECT 1 FROM rm_document_shares s
        WHERE s.document_id = doc AND s.user_id = collab_current_user())
$$;
