-- The event log: every command attempt, accepted or rejected, in the order
-- it was appended. sequence is an identity column; Append takes an advisory
-- lock before it inserts, so that sequences become visible in order (see
-- doc.go). Failed Appends leave gaps; readers page by sequence, never count.
CREATE TABLE event (
    sequence        BIGINT GENERATED ALWAYS AS IDENTITY CONSTRAINT event_pkey PRIMARY KEY,
    event_id        TEXT COLLATE "C" NOT NULL CONSTRAINT event_event_id_key UNIQUE,
    correlation_id  TEXT   NOT NULL,
    causation_id    TEXT   NOT NULL,
    timestamp       TEXT   NOT NULL, -- UTC, 2006-01-02T15:04:05.000000000Z (nanoseconds)
    source_name     TEXT   NOT NULL,
    source_id       TEXT   NOT NULL,
    type_name       TEXT   NOT NULL,
    domain          TEXT COLLATE "C" NOT NULL,
    entity_id       TEXT COLLATE "C" NOT NULL,
    command         TEXT   NOT NULL,
    data            JSON,            -- kept byte for byte
    idempotency_key TEXT COLLATE "C" CONSTRAINT event_idempotency_key_key UNIQUE, -- NULL when the event has none
    request_hash    TEXT   NOT NULL,
    version         BIGINT NOT NULL,
    outcome         TEXT   NOT NULL,
    reason          TEXT   NOT NULL,
    message         TEXT   NOT NULL,
    reply           JSON
);

-- Pages one stream's events by version; sequence is the last column, so
-- ORDER BY version, sequence needs no sort.
CREATE INDEX event_stream ON event (domain, entity_id, version, sequence);

-- The state log: an entity's state after each accepted change. The primary
-- key is the expected-version guard: a version can be taken only once.
CREATE TABLE state (
    domain    TEXT COLLATE "C" NOT NULL,
    entity_id TEXT COLLATE "C" NOT NULL,
    version   BIGINT NOT NULL,
    timestamp TEXT   NOT NULL, -- as event.timestamp
    event_id  TEXT   NOT NULL,
    data      JSON,
    CONSTRAINT state_pkey PRIMARY KEY (domain, entity_id, version)
);

-- Positions of relays and projectors in the event log.
CREATE TABLE checkpoint (
    name     TEXT COLLATE "C" CONSTRAINT checkpoint_pkey PRIMARY KEY,
    position BIGINT NOT NULL
);
