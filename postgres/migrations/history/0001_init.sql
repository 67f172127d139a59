-- The history log: every recorded event of every domain, once, in the order
-- the history writer first saw it. sequence is the history's own position;
-- origin_sequence is the event's sequence in the event log it came from.
CREATE TABLE history (
    sequence        BIGINT GENERATED ALWAYS AS IDENTITY CONSTRAINT history_pkey PRIMARY KEY,
    event_id        TEXT COLLATE "C" NOT NULL CONSTRAINT history_event_id_key UNIQUE,
    origin_sequence BIGINT NOT NULL,
    correlation_id  TEXT   NOT NULL,
    causation_id    TEXT   NOT NULL,
    timestamp       TEXT   NOT NULL, -- UTC, 2006-01-02T15:04:05.000000000Z (nanoseconds)
    source_name     TEXT   NOT NULL,
    source_id       TEXT   NOT NULL,
    type_name       TEXT   NOT NULL,
    domain          TEXT   NOT NULL,
    entity_id       TEXT   NOT NULL,
    command         TEXT   NOT NULL,
    data            JSON,
    idempotency_key TEXT,            -- NULL when the event has none; not unique across domains
    request_hash    TEXT   NOT NULL,
    version         BIGINT NOT NULL,
    outcome         TEXT   NOT NULL,
    reason          TEXT   NOT NULL,
    message         TEXT   NOT NULL,
    reply           JSON
);
