"""The Parquet archive, read: its committed part files (PyArrow, local or S3) as a DuckDB relation.

The job writes it (flink_jobs.streaming.sinks.archive): Hive-style partitions date=YYYY-MM-DD/tenant=T/,
part files committed at checkpoints; in-progress ones are hidden (`.part-*`) and skipped here.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs

from udfs.archive import ARCHIVE_COLUMNS, PARTITION_COLUMNS


def archive_fs(path: str) -> tuple[pafs.FileSystem, str]:
    """The filesystem of an archive URI (file://, s3://; Flink's s3a:// and s3p:// are S3 too) and the
    archive's root in it."""
    for scheme in ("s3a://", "s3p://"):
        if path.startswith(scheme):
            path = "s3://" + path.removeprefix(scheme)
    if "://" not in path:
        path = Path(path).resolve().as_uri()
    return pafs.FileSystem.from_uri(path.rstrip("/"))


def _committed(name: str) -> bool:
    return name.startswith("part-")  # in-progress files and an erasure's rewrites are hidden (.name)


ARCHIVE_SCHEMA = pa.schema([(name, kind.arrow) for name, kind in ARCHIVE_COLUMNS.items()])


def archive_dataset(path: str) -> ds.Dataset:
    """The archive's committed files as a dataset (partition columns `date` and `tenant`, strings); an
    archive with no files yet is an empty one."""
    fs, root = archive_fs(path)
    partitioning = ds.partitioning(
        pa.schema([(name, kind.arrow) for name, kind in PARTITION_COLUMNS.items()]), flavor="hive"
    )
    files = [
        info.path
        for info in fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
        if info.type == pafs.FileType.File and _committed(info.base_name)
    ]
    return ds.dataset(
        files, ARCHIVE_SCHEMA, filesystem=fs, format="parquet", partitioning=partitioning, partition_base_dir=root
    )


def read_archive(path: str, connection: duckdb.DuckDBPyConnection | None = None) -> duckdb.DuckDBPyRelation:
    """The archive as a DuckDB relation, on any filesystem pyarrow reads (DuckDB's own S3 support is an
    extension it would download at run time). Its `tenant` is the tenant as sent: a row's tenant_full, or
    for a row of schema 1 (none) its directory's."""
    connection = connection or duckdb.connect()
    return connection.from_arrow(archive_dataset(path)).project(
        "* EXCLUDE (tenant_full) REPLACE (coalesce(tenant_full, tenant) AS tenant)"
    )
