"""The Parquet archive: Flink SQL's filesystem sink (the FileSink's bucket writers, bulk Parquet format).

Part files are written in-progress under hidden names (`.part-*`) and committed at checkpoints, so a
reader sees whole checkpoints only and a restore never duplicates a row; partitions are Hive-style,
date=YYYY-MM-DD/tenant=T/ (T: udfs.archive.tenant_partition, bounded). The job's image and local runs
ship flink-sql-parquet with Hadoop's shaded client (the Parquet writer's configuration classes), see
devstack.artifacts.archive_jars.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
from pyflink.datastream import DataStream
from pyflink.table import StreamTableEnvironment

from flink_jobs.pyflink_internals import table_env_of
from udfs.archive import COLUMNS, PARTITION_COLUMNS

# Part files roll at every checkpoint (bulk formats can only); these bound a file between two.
ROLLING = {"sink.rolling-policy.file-size": "128MB", "sink.rolling-policy.rollover-interval": "15 min"}


def archive_table(t_env: StreamTableEnvironment, path: str, extra: dict[str, str] | None = None) -> str:
    """Declares the archive under `path` as a temporary table (sink or source) -> its name."""
    name = f"archive_{uuid.uuid4().hex[:8]}"
    columns = ", ".join(f"`{column}` {kind}" for column, kind in {**COLUMNS, **PARTITION_COLUMNS}.items())
    options = {"connector": "filesystem", "path": path, "format": "parquet", **(extra or {})}
    with_ = ", ".join(f"'{key}' = '{value}'" for key, value in options.items())
    partitions = ", ".join(f"`{column}`" for column in PARTITION_COLUMNS)
    t_env.execute_sql(f"CREATE TEMPORARY TABLE {name} ({columns}) PARTITIONED BY ({partitions}) WITH ({with_})")
    return name


def write_archive(rows: DataStream, path: str) -> None:
    """Adds the archive's sink for ARCHIVED rows to their job (executed with the rest of it)."""
    t_env = table_env_of(rows)
    # Uids of the planner's own, not hashes of the topology: the writer chains to its committer at
    # parallelism 1 and not at 2, which would change a hash and orphan the writer's state on a rescale.
    t_env.get_config().set("table.exec.uid.generation", "ALWAYS")
    t_env.get_config().set("table.exec.uid.format", "archive_<type>_<version>_<transformation>")
    name = archive_table(t_env, path, ROLLING)
    statements = t_env.create_statement_set()
    statements.add_insert(name, t_env.from_data_stream(rows))
    statements.attach_as_datastream()


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


_ARROW_TYPES = {
    "STRING": pa.string(),
    "INT": pa.int32(),
    "BIGINT": pa.int64(),
    "DOUBLE": pa.float64(),
    "BYTES": pa.binary(),
}
ARCHIVE_SCHEMA = pa.schema([(name, _ARROW_TYPES[kind]) for name, kind in {**COLUMNS, **PARTITION_COLUMNS}.items()])


def archive_dataset(path: str) -> ds.Dataset:
    """The archive's committed files as a dataset (partition columns `date` and `tenant`, strings); an
    archive with no files yet is an empty one."""
    fs, root = archive_fs(path)
    partitioning = ds.partitioning(pa.schema([(name, pa.string()) for name in PARTITION_COLUMNS]), flavor="hive")
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
