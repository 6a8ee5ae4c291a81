-- One PostgreSQL server for the stack, one database per owner: the monolith's (shop,
-- created by POSTGRES_DB) and each service's own. Run once, on first start.
CREATE DATABASE customers;
CREATE DATABASE catalog;

-- A cutover's drain writes a watermark row into the database of the side that owned the
-- context and waits until sync has read it back from that side's topic. The table must
-- exist before Debezium creates its filtered publications (strangler creates it too, as
-- CREATE TABLE IF NOT EXISTS, with this same definition).
CREATE TABLE strangler_watermarks (context VARCHAR(200) PRIMARY KEY, seq BIGINT NOT NULL,
    epoch BIGINT NOT NULL, written_at DOUBLE PRECISION NOT NULL);
\connect customers
CREATE TABLE strangler_watermarks (context VARCHAR(200) PRIMARY KEY, seq BIGINT NOT NULL,
    epoch BIGINT NOT NULL, written_at DOUBLE PRECISION NOT NULL);
