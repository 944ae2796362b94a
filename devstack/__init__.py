"""The no-Docker local stack (Kafka, FerretDB, InfluxDB) and synthetic LLM traffic for demos and tests."""
