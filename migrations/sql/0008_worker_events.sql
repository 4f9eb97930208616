-- Workers (consumers with side effects outside Postgres) record what became of each
-- event they handled, so an effect is never repeated when a checkpoint moves back, and
-- a failure that will not heal is parked with its reason instead of blocking the rest.
CREATE TABLE worker_events (
    worker      text        NOT NULL,
    event_id    uuid        NOT NULL,
    position    bigint      NOT NULL,
    status      text        NOT NULL CHECK (status IN ('done', 'parked')),
    attempts    integer     NOT NULL,
    reason      text,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (worker, event_id)
);

CREATE INDEX worker_events_parked ON worker_events (worker, position) WHERE status = 'parked';
