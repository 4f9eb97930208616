-- Tenant isolation in depth: read models are queried as `collab_reader`, a role that row
-- level security applies to, with the caller in per-transaction settings:
--   collab.user_id     the requesting user
--   collab.workspaces  comma-separated ids of the workspaces the user belongs to
-- Without them a query sees no rows. Projectors write as the owning role (not subject to
-- these policies). Roles are cluster-wide, hence the existence check.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'collab_reader') THEN
        CREATE ROLE collab_reader NOLOGIN;
    END IF;
END
$$;

GRANT USAGE ON SCHEMA public TO collab_reader;
GRANT SELECT ON rm_workspaces, rm_workspace_members, rm_documents, rm_document_shares,
                presence_now, projector_checkpoints TO collab_reader;

CREATE FUNCTION collab_visible_workspace(ws uuid) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT ws::text = ANY (string_to_array(coalesce(current_setting('collab.workspaces', true), ''), ','))
$$;

CREATE FUNCTION collab_current_user() RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT nullif(current_setting('collab.user_id', true), '')
$$;

ALTER TABLE rm_workspaces ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON rm_workspaces FOR SELECT TO collab_reader
    USING (collab_visible_workspace(workspace_id));

ALTER TABLE rm_workspace_members ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON rm_workspace_members FOR SELECT TO collab_reader
    USING (user_id = collab_current_user() OR collab_visible_workspace(workspace_id));

ALTER TABLE rm_document_shares ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON rm_document_shares FOR SELECT TO collab_reader
    USING (user_id = collab_current_user() OR collab_visible_workspace(workspace_id));

ALTER TABLE rm_documents ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON rm_documents FOR SELECT TO collab_reader
    USING (collab_visible_workspace(workspace_id)
           OR EXISTS (SELECT 1 FROM rm_document_shares s
                      WHERE s.document_id = rm_documents.document_id
                        AND s.user_id = collab_current_user()));

ALTER TABLE presence_now ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON presence_now FOR SELECT TO collab_reader
    USING (collab_visible_workspace(workspace_id));
