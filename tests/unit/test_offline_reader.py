"""Reading the archive (flink_jobs/offline/reader.py): files of every schema version."""

def test_an_archive_of_schema_1_reads_as_before(tmp_path):
    """Files written before tenant_full: read_archive takes the tenant from the directory, as it did."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from flink_jobs.offline.reader import ARCHIVE_SCHEMA, read_archive

    old = pa.schema([f for f in ARCHIVE_SCHEMA if f.name not in ("tenant_full", "date", "tenant")])
    for tenant, directory in (("acme", "acme"), ("a/b", "a%2Fb")):
        path = tmp_path / "date=2026-11-19" / f"tenant={directory}"
        path.mkdir(parents=True)
        columns = {f.name: pa.array([None], f.type) for f in old} | {"event_id": pa.array([f"e-{tenant}"])}
        pq.write_table(pa.table(columns, schema=old), path / "part-0-0-0")
    rows = read_archive(tmp_path.as_uri()).select("event_id, tenant, date").order("event_id").fetchall()
    assert rows == [("e-a/b", "a/b", "2026-11-19"), ("e-acme", "acme", "2026-11-19")]
    assert "tenant_full" not in read_archive(tmp_path.as_uri()).columns
