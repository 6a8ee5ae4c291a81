"""Change data capture: Debezium change events applied through adapters into service databases."""
