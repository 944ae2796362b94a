"""The streaming job: Kafka events -> parse, rules, scorers, sequences, windows -> MongoDB, InfluxDB, DLQ, archive."""
