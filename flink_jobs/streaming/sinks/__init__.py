"""Where the streaming job writes: MongoDB, InfluxDB, the dead-letter topic and the Parquet archive."""
