"""Change-event sources: kafka (Debezium topics), debezium (embedded engine), sqlite (triggers)."""
