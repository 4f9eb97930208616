-- In-app notifications (read model `notifications`, folded from thread, document and user
-- streams): who is told what, and whether they read it. A notification names what caused
-- it (document, thread, comment); the text is read from the read models it points to at
-- query time, so a deleted comment or an erased name is gone from its notifications too.
CREATE TABLE rm_notifications (
    -- A v5 UUID of the causing event's id and the recipient (stable across rebuilds).
    notification_id uuid        PRIMARY KEY,
    recipient       text        NOT NULL,
    -- mention | reply | share | resolved
    kind            text        NOT NULL,
    workspace_id    uuid        NOT NULL,
    document_id     uuid        NOT NULL,
    thread_id       uuid,
    comment_id      uuid,
    -- Who caused it.
    actor           text        NOT NULL,
    -- For a share: the role given.
    role            text,
    -- The recipient's preferences when it was caused: shown in the app; emailed
    -- (immediate | digest | off).
    in_app          boolean     NOT NULL,
    email           text        NOT NULL,
    created_at      timestamptz NOT NULL,
    -- The causing event's log position (the cursor, and the live feed's id).
    position        bigint      NOT NULL,
    read_at         timestamptz
);
CREATE INDEX rm_notifications_recipient ON rm_notifications (recipient, position DESC);
CREATE INDEX rm_notifications_comment ON rm_notifications (comment_id);

-- Who takes part in each thread (its author and everyone who replied): a reply tells them.
CREATE TABLE rm_notification_threads (
    thread_id    uuid    NOT NULL,
    user_id      text    NOT NULL,
    author       boolean NOT NULL,
    workspace_id uuid    NOT NULL,
    document_id  uuid    NOT NULL,
    PRIMARY KEY (thread_id, user_id)
);

-- What each person set (absent: the defaults).
CREATE TABLE rm_notification_preferences (
    user_id     text        PRIMARY KEY,
    preferences jsonb       NOT NULL,
    updated_at  timestamptz NOT NULL,
    position    bigint      NOT NULL
);

GRANT SELECT ON rm_notifications, rm_notification_threads, rm_notification_preferences
    TO collab_reader;

-- A person sees their own notifications, and only about documents they can still read.
ALTER TABLE rm_notifications ENABLE ROW LEVEL SECURITY;
CREATE POLICY recipient ON rm_notifications FOR SELECT TO collab_reader
    USING (recipient = collab_current_user()
           AND (collab_visible_workspace(workspace_id) OR collab_granted_document(document_id)));
ALTER TABLE rm_notification_threads ENABLE ROW LEVEL SECURITY;
CREATE POLICY own ON rm_notification_threads FOR SELECT TO collab_reader
    USING (user_id = collab_current_user()
           AND (collab_visible_workspace(workspace_id) OR collab_granted_document(document_id)));
ALTER TABLE rm_notification_preferences ENABLE ROW LEVEL SECURITY;
CREATE POLICY own ON rm_notification_preferences FOR SELECT TO collab_reader
    USING (user_id = collab_current_user());
