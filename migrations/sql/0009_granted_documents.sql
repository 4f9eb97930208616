-- A document whose access the aggregates granted to someone outside its workspace (a
-- share link's holder, a user it is shared with) is readable by them alone: a reader
-- transaction names it in `collab.documents`, and only that document's row and presence
-- become visible — never the rest of its workspace.
CREATE FUNCTION collab_granted_document(doc uuid) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT doc::text = ANY (string_to_array(coalesce(current_setting('collab.documents', true), ''), ','))
$$;

CREATE POLICY granted_document ON rm_documents FOR SELECT TO collab_reader
    USING (collab_granted_document(document_id));

CREATE POLICY granted_document ON presence_now FOR SELECT TO collab_reader
    USING (collab_granted_document(document_id));
