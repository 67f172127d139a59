-- The event log: every command attempt, accepted or rejected, in the order
-- it was appended. sequence is the rowid, so appending is O(1) and paging by
-- sequence is a range scan.
CREATE TABLE event (
    sequence        INTEGER PRIMARY KEY,
    event_id        TEXT    NOT NULL UNIQUE,
    correlation_id  TEXT    NOT NULL,
    causation_id    TEXT    NOT NULL,
    timestamp       TEXT    NOT NULL, -- UTC, 2006-01-02T15:04:05.000000000Z
    source_name     TEXT    NOT NULL,
    source_id       TEXT    NOT NULL,
    type_name       TEXT    NOT NULL,
    domain          TEXT    NOT NULL,
    entity_id       TEXT    NOT NULL,
    command         TEXT    NOT NULL,
    data            TEXT,             -- JSON
    idempotency_key TEXT    UNIQUE,   -- NULL when the event has none
    request_hash    TEXT    NOT NULL,
    version         INTEGER NOT NULL,
    outcome         TEXT    NOT NULL,
    reason          TEXT    NOT NULL,
    message         TEXT    NOT NULL,
    reply           TEXT              -- JSON
) STRICT;

-- Pages one stream's events by version; the rowid (sequence) is the index's
-- last column, so ORDER BY version, sequence needs no sort.
CREATE INDEX event_stream ON event (domain, entity_id, version);

-- The state log: an entity's state after each accepted change. The primary
-- key is the expected-version guard: a version can be taken only once.
CREATE TABLE state (
    domain    TEXT    NOT NULL,
    entity_id TEXT    NOT NULL,
    version   INTEGER NOT NULL,
    timestamp TEXT    NOT NULL,
    event_id  TEXT    NOT NULL,
    data      TEXT,               -- JSON
    PRIMARY KEY (domain, entity_id, version)
) STRICT, WITHOUT ROWID;

-- Positions of relays and projectors in the event log.
CREATE TABLE checkpoint (
    name     TEXT    PRIMARY KEY,
    position INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
