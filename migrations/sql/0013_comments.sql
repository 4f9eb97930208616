-- Comment threads on documents (read model `comments`, folded from `thread-*` streams).
-- Anchors stay encoded (Yjs relative positions): the API resolves them against the live
-- content when it reads a thread.
CREATE TABLE rm_comment_threads (
    thread_id    uuid        PRIMARY KEY,
    workspace_id uuid        NOT NULL,
    document_id  uuid        NOT NULL,
    author       text        NOT NULL,
    root         text        NOT NULL,
    anchor_start bytea       NOT NULL,
    anchor_end   bytea       NOT NULL,
    -- The passage's text when the thread was opened.
    quote        text        NOT NULL,
    resolved     boolean     NOT NULL,
    resolved_by  text,
    resolved_at  timestamptz,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    -- The thread stream's version (what If-Match compares with).
    version      bigint      NOT NULL,
    position     bigint      NOT NULL
);
CREATE INDEX rm_comment_threads_document ON rm_comment_threads (document_id, created_at);

CREATE TABLE rm_comments (
    comment_id   uuid        PRIMARY KEY,
    thread_id    uuid        NOT NULL,
    workspace_id uuid        NOT NULL,
    document_id  uuid        NOT NULL,
    author       text        NOT NULL,
    -- NULL once deleted (the tombstone stays in the log and the history).
    body         text,
    mentions     text[]      NOT NULL,
    created_at   timestamptz NOT NULL,
    edited_at    timestamptz,
    deleted_at   timestamptz,
    deleted_by   text,
    position     bigint      NOT NULL
);
CREATE INDEX rm_comments_thread ON rm_comments (thread_id, created_at);

CREATE TABLE rm_comment_reactions (
    comment_id   uuid        NOT NULL,
    emoji        text        NOT NULL,
    user_id      text        NOT NULL,
    workspace_id uuid        NOT NULL,
    document_id  uuid        NOT NULL,
    reacted_at   timestamptz NOT NULL,
    PRIMARY KEY (comment_id, emoji, user_id)
);

GRANT SELECT ON rm_comment_threads, rm_comments, rm_comment_reactions TO collab_reader;

-- Who can read the document reads its comments: its workspace's members, and those it is
-- granted to (shares, links, service accounts; see migration 0009).
ALTER TABLE rm_comment_threads ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON rm_comment_threads FOR SELECT TO collab_reader
    USING (collab_visible_workspace(workspace_id) OR collab_granted_document(document_id));
ALTER TABLE rm_comments ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON rm_comments FOR SELECT TO collab_reader
    USING (collab_visible_workspace(workspace_id) OR collab_granted_document(document_id));
ALTER TABLE rm_comment_reactions ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON rm_comment_reactions FOR SELECT TO collab_reader
    USING (collab_visible_workspace(workspace_id) OR collab_granted_document(document_id));

-- Comment authors' names reach the readers of the document they commented on.
CREATE POLICY comment_author ON rm_profiles FOR SELECT TO collab_reader
    USING (EXISTS (SELECT 1 FROM rm_comments c
                   WHERE c.author = rm_profiles.user_id
                     AND collab_granted_document(c.document_id)));
