-- What the recommender writes: one recommendation per processed reading, RED alerts, and the
-- per-property alert state that makes hysteresis and cooldown survive restarts.
--
-- Every write is keyed by the reading's event id (or the alert id derived from it), so a Kafka
-- redelivery after a crash inserts nothing new.

CREATE TABLE recommendations (
    event_id        uuid PRIMARY KEY,
    property_id     text NOT NULL,
    kwh             double precision NOT NULL,
    kg_co2e         double precision NOT NULL,
    grams_per_kwh   double precision NOT NULL,
    rating          text NOT NULL,
    -- The emission factor used, with its region, year, basis and source.
    factor          jsonb NOT NULL,
    -- Advice items: action, kind, savings in kWh and kgCO2e.
    advice          jsonb NOT NULL,
    kafka_partition integer NOT NULL,
    kafka_offset    bigint NOT NULL,
    -- Order in which the recommender stored results, to check processing order per property.
    processed_seq   bigint GENERATED ALWAYS AS IDENTITY,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX recommendations_by_property ON recommendations (property_id, processed_seq);

CREATE TABLE alerts (
    alert_id     uuid PRIMARY KEY,
    event_id     uuid NOT NULL,
    property_id  text NOT NULL,
    kwh          double precision NOT NULL,
    threshold    double precision NOT NULL,
    reason       text NOT NULL,
    kg_co2e      double precision NOT NULL,
    raised_at    timestamptz NOT NULL,
    -- Set once RabbitMQ confirmed the publication.
    published_at timestamptz
);

CREATE INDEX alerts_by_property ON alerts (property_id, raised_at);

CREATE TABLE alert_state (
    property_id text PRIMARY KEY,
    state       jsonb NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
