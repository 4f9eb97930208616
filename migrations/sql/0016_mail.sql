-- The mailer's record: one row per notification it has taken on (not a read model: nothing
-- in the log brings it back, and a rebuild of `notifications` gives the rows their ids
-- again, so nothing is emailed twice). A row is committed `sending` before the SMTP
-- exchange: at most once.
CREATE TABLE mail_deliveries (
    notification_id uuid        PRIMARY KEY,
    recipient       text        NOT NULL,
    -- immediate | digest
    mode            text        NOT NULL,
    -- The email it went in (a digest's notifications share one).
    message_id      uuid        NOT NULL,
    -- sending | sent | retry | failed | unknown | skipped_read | skipped | no_address
    state           text        NOT NULL,
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz,
    last_error      text,
    sent_at         timestamptz,
    updated_at      timestamptz NOT NULL
);
CREATE INDEX mail_deliveries_message ON mail_deliveries (message_id);
CREATE INDEX mail_deliveries_retry ON mail_deliveries (next_attempt_at) WHERE state = 'retry';
-- What the mailer looks for: notifications to email, by when they were caused.
CREATE INDEX rm_notifications_to_email ON rm_notifications (email, created_at)
    WHERE email <> 'off';

-- A person sees how their own notifications were emailed.
GRANT SELECT ON mail_deliveries TO collab_reader;
ALTER TABLE mail_deliveries ENABLE ROW LEVEL SECURITY;
CREATE POLICY recipient ON mail_deliveries FOR SELECT TO collab_reader
    USING (recipient = collab_current_user());
