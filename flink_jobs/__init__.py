"""Everything that runs udfs/ on Flink or the stores: the streaming job (audit_job and its operators, sinks
and settings), the offline path over the archive (archive_audit, replay, erasure, report) and the
`llm-audit` CLI (cli/). The detection logic itself lives in udfs/."""
