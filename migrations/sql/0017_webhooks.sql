-- Webhooks. `rm_webhooks` is a read model (folded from workspace streams); the rest is the
-- delivery worker's own record and is not rebuilt: the fold writes each delivery once
-- (its id is a v5 UUID of the event's id and the webhook's), so a rebuild neither loses
-- one nor sends one again.
CREATE TABLE rm_webhooks (
    webhook_id      uuid        PRIMARY KEY,
    workspace_id    uuid        NOT NULL,
    url             text        NOT NULL,
    events          text[]      NOT NULL,
    -- standard | slack
    format          text        NOT NULL,
    enabled         boolean     NOT NULL,
    disabled_reason text,
    created_by      text        NOT NULL,
    created_at      timestamptz NOT NULL,
    position        bigint      NOT NULL
);
CREATE INDEX rm_webhooks_workspace ON rm_webhooks (workspace_id);

-- Each webhook's signing secret: outside the log (events reach JetStream and replay).
CREATE TABLE webhook_secrets (
    webhook_id uuid  PRIMARY KEY,
    secret     bytea NOT NULL
);

-- One delivery per event and webhook.
CREATE TABLE webhook_deliveries (
    delivery_id     uuid        PRIMARY KEY,
    webhook_id      uuid        NOT NULL,
    workspace_id    uuid        NOT NULL,
    position        bigint      NOT NULL,
    event_type      text        NOT NULL,
    -- pending | sending | retry | succeeded | failed
    state           text        NOT NULL,
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE state IN ('pending', 'retry');
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook_id, position DESC);

-- Every attempt: when, what came back, how long it took.
CREATE TABLE webhook_attempts (
    delivery_id  uuid        NOT NULL,
    attempt      integer     NOT NULL,
    at           timestamptz NOT NULL,
    status       integer,
    error        text,
    duration_ms  integer     NOT NULL,
    PRIMARY KEY (delivery_id, attempt)
);

-- Failed attempts in a row per webhook (a success resets it); at the limit the worker
-- disables the webhook.
CREATE TABLE webhook_health (
    webhook_id           uuid    PRIMARY KEY,
    consecutive_failures integer NOT NULL,
    last_error           text
);

GRANT SELECT ON rm_webhooks, webhook_deliveries, webhook_attempts TO collab_reader;
ALTER TABLE rm_webhooks ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON rm_webhooks FOR SELECT TO collab_reader
    USING (collab_visible_workspace(workspace_id));
ALTER TABLE webhook_deliveries ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON webhook_deliveries FOR SELECT TO collab_reader
    USING (collab_visible_workspace(workspace_id));
ALTER TABLE webhook_attempts ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON webhook_attempts FOR SELECT TO collab_reader
    USING (EXISTS (SELECT 1 FROM webhook_deliveries d
                   WHERE d.delivery_id = webhook_attempts.delivery_id
                     AND collab_visible_workspace(d.workspace_id)));
