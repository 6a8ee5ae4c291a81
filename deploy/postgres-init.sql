-- One PostgreSQL server for the stack, one database per owner: the monolith's (shop,
-- created by POSTGRES_DB) and each service's own. Run once, on first start.
CREATE DATABASE customers;
CREATE DATABASE catalog;
