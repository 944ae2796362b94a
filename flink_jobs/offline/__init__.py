"""The offline path over the archive and the stores: audit-archive (Flink batch), replay, erasure, reports."""
