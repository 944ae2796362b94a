"""Everything that runs udfs/ on Flink or the stores, in three parts: streaming/ (the streaming audit job),
offline/ (audit-archive, replay, erasure and reports over the archive and the stores) and cli/ (the `llm-audit`
commands). The modules here are what they share: settings, credentials, the Kafka configuration, the checks at
submission, erasure tombstones and the rules topic's records. docs/architecture.md follows one event through it."""
