"""Throwaway servers and helpers for the demo, the tests and the benchmarks.

Not part of the proxy or of the CDC worker: ``localstack`` starts a logical-decoding
PostgreSQL cluster and a Kafka-protocol broker (Tansu) as child processes;
``relay`` runs Debezium embedded and produces its records to Kafka, standing in for
Kafka Connect. Nothing in ``strangler.sync`` imports this package.
"""
