-- Readings as accepted, and the transactional outbox that carries each one to Kafka.
--
-- A reading and its outbox row are written in one transaction; the relay publishes outbox rows
-- in order and stamps sent_at when the broker confirms. Nothing is deleted here: history is the
-- product.

CREATE TABLE readings (
    event_id        uuid PRIMARY KEY,
    property_id     text NOT NULL
        CHECK (property_id ~ '^[A-Za-z0-9._-]{1,64}$'),
    meter_id        text,
    kind            text NOT NULL CHECK (kind IN ('electricity', 'gas')),
    kwh             double precision NOT NULL
        CHECK (kwh >= 0 AND kwh < 'Infinity'::double precision),
    period_start    timestamptz NOT NULL,
    period_end      timestamptz NOT NULL,
    -- The sender's UTC offset, so the reading can be shown in the time the meter reported.
    utc_offset_secs integer NOT NULL CHECK (utc_offset_secs BETWEEN -86399 AND 86399),
    region          text NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now(),
    -- A client retry with the same key is answered with the stored reading, not stored again.
    idempotency_key text UNIQUE,
    CHECK (period_end > period_start)
);

CREATE INDEX readings_by_property_and_time ON readings (property_id, period_start);

CREATE TABLE outbox (
    -- Identity values are handed out before commit, not in commit order: the relay must not
    -- read "everything above the last seq seen" (see DESIGN.md section 2).
    seq        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id   uuid NOT NULL UNIQUE REFERENCES readings (event_id),
    topic      text NOT NULL,
    msg_key    text NOT NULL,
    payload    bytea NOT NULL,
    headers    jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    sent_at    timestamptz
);

-- The relay's work list: small, because sent rows leave it.
CREATE INDEX outbox_unsent ON outbox (seq) WHERE sent_at IS NULL;
