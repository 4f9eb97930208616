-- People's data keys. Personal data in events (profile names and emails) is sealed with
-- its owner's key (XChaCha20-Poly1305; see collab_domain::personal); erasure deletes the
-- owner's rows here, after which no copy of those events can be read. Not a read model:
-- nothing in the log brings a key back, and readers (collab_reader) are granted nothing
-- on it.
CREATE TABLE user_keys (
    key_id     uuid        PRIMARY KEY,
    -- One live key per person.
    user_id    text        NOT NULL UNIQUE,
    key        bytea       NOT NULL CHECK (length(key) = 32),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- People's profiles as their events say, opened with their keys: empty fields and
-- `erased` once the keys are gone.
CREATE TABLE rm_profiles (
    user_id        text        PRIMARY KEY,
    display_name   text,
    email          text,
    avatar_file_id uuid,
    -- Erased: the person's data keys are destroyed (or a field could not be opened).
    erased         boolean     NOT NULL,
    updated_at     timestamptz NOT NULL,
    position       bigint      NOT NULL
);

GRANT SELECT ON rm_profiles TO collab_reader;

-- A person sees their own profile and those of the people they share a workspace with.
ALTER TABLE rm_profiles ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON rm_profiles FOR SELECT TO collab_reader
    USING (user_id = collab_current_user() OR EXISTS (
        SELECT 1 FROM rm_workspace_members m
        WHERE m.user_id = rm_profiles.user_id AND collab_visible_workspace(m.workspace_id)));
